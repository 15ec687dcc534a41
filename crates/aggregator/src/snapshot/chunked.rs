//! A snapshot written into chunks that never move.
//!
//! A store's snapshot is tens of MB. Encoded into one vector it grew by
//! doubling: each step copied everything so far into fresh memory, which
//! the kernel zeroes first (a profile of `product.sh` put 4.5 % of the
//! pipeline's samples there, Round 15 of docs/performance.md). In chunks
//! of [`CHUNK`] bytes every byte is written once, and the chunks go to
//! ClickHouse as they are, one after another.

use postcard::ser_flavors::Flavor;

/// Bytes per chunk.
pub(super) const CHUNK: usize = 1 << 20;

/// The flavor: full chunks, then the one being filled.
#[derive(Default)]
pub(super) struct Chunked {
    chunks: Vec<Vec<u8>>,
}

impl Chunked {
    /// The chunk being filled, with room for at least one byte.
    fn room(&mut self) -> &mut Vec<u8> {
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk with room")
    }
}

impl Flavor for Chunked {
    type Output = Vec<Vec<u8>>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.room().push(byte);
        Ok(())
    }

    fn try_extend(&mut self, mut data: &[u8]) -> postcard::Result<()> {
        while !data.is_empty() {
            let chunk = self.room();
            let n = data.len().min(CHUNK - chunk.len());
            chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<Vec<u8>>> {
        Ok(self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings across chunk boundaries, and single bytes: the chunks
    /// joined are what one vector would hold, and no chunk passes
    /// [`CHUNK`].
    #[test]
    fn chunks_joined_are_the_plain_encoding() {
        let value: Vec<(u64, String)> = (0..40_000u64)
            .map(|i| (i * 977, "x".repeat((i % 97) as usize)))
            .collect();
        let chunks = postcard::serialize_with_flavor(&value, Chunked::default()).expect("encodes");
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(chunks
            .iter()
            .all(|c| c.len() <= CHUNK && c.capacity() == CHUNK));
        assert_eq!(
            chunks.concat(),
            postcard::to_stdvec(&value).expect("encodes")
        );
    }
}
