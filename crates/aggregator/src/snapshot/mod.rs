//! Snapshots of the state, so that a partition's next owner (after a crash,
//! a restart or a rebalance) continues exactly where the last one stopped.
//!
//! A snapshot is one format byte followed by the state in postcard's compact
//! binary encoding. It records the settings it was taken under; restoring it
//! under different settings is refused, since the state would not mean what
//! the new settings say.

use serde::Serialize;

use crate::{Aggregator, AggregatorConfig, CustomerBook};

mod chunked;
mod format1;
mod format2;

use postcard::ser_flavors::Flavor;

/// The snapshot layout this build writes. It also reads format 2, whose
/// customer books remember no orders and whose aggregators keep no touches,
/// and format 1, which lacks the settlements waiting for their order (none
/// were kept then).
pub const FORMAT: u8 = 3;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Written by a build with another layout.
    #[error("snapshot format {found}, this build reads formats 1 to {FORMAT}")]
    Format {
        /// The format byte found.
        found: u8,
    },
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// Taken under other settings.
    #[error("snapshot was taken under other settings ({0})")]
    Settings(&'static str),
}

/// `state` after the format byte, in chunks ([`chunked`]).
fn encode<T: Serialize>(state: &T) -> Vec<Vec<u8>> {
    let mut flavor = chunked::Chunked::default();
    // Pushing into memory cannot fail.
    let _ = flavor.try_push(FORMAT);
    // Serializing plain data into memory cannot fail.
    postcard::serialize_with_flavor(state, flavor).unwrap_or_else(|_| vec![vec![FORMAT]])
}

/// The format byte and the body of a snapshot this build reads.
fn split(bytes: &[u8]) -> Result<(u8, &[u8]), SnapshotError> {
    match bytes.split_first() {
        Some((&format @ 1..=FORMAT, rest)) => Ok((format, rest)),
        Some((&found, _)) => Err(SnapshotError::Format { found }),
        None => Err(SnapshotError::Format { found: 0 }),
    }
}

/// The checkpoint layout, field by field: the derived `Deserialize` reads
/// the same fields in the same order. The open sessions' page state is
/// written inside the page windows, as a map by visitor.
impl Serialize for Aggregator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Aggregator", 15)?;
        st.serialize_field("cfg", &self.cfg)?;
        st.serialize_field("watermark_ms", &self.watermark_ms)?;
        st.serialize_field("dedup", &self.dedup)?;
        st.serialize_field("pending", &self.pending)?;
        st.serialize_field("pending_len", &self.pending.len())?;
        st.serialize_field("held", &self.held)?;
        st.serialize_field("sessions", &self.sessions)?;
        st.serialize_field("session_windows", &self.session_windows)?;
        st.serialize_field("pages", &self.pages.layout(self.sessions.visits()))?;
        st.serialize_field("commerce", &self.commerce)?;
        st.serialize_field("carts", &self.carts)?;
        st.serialize_field("stats", &self.stats)?;
        st.serialize_field("early", &self.early)?;
        st.serialize_field("touches", &self.touches)?;
        st.serialize_field("stage_times", &self.stage_times)?;
        st.end()
    }
}

/// A customer book of format 1, 2 or 3.
fn decode_book(bytes: &[u8]) -> Result<CustomerBook, SnapshotError> {
    match split(bytes)? {
        (FORMAT, body) => Ok(postcard::from_bytes(body)?),
        (2, body) => format2::book(body),
        (_, body) => format1::book(body),
    }
}

/// An aggregator of format 1, 2 or 3.
fn decode_aggregator(bytes: &[u8]) -> Result<Aggregator, SnapshotError> {
    match split(bytes)? {
        (FORMAT, body) => Ok(postcard::from_bytes(body)?),
        (2, body) => format2::aggregator(body),
        (_, body) => format1::aggregator(body),
    }
}

impl Aggregator {
    /// The whole state (open sessions, carts, orders, windows, the buffer
    /// ahead of the watermark, the dedup and visitor sets) as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_chunks().concat()
    }

    /// [`Aggregator::snapshot`] in the chunks it was written in (each
    /// written once, none moved; joined, they are the snapshot).
    pub fn snapshot_chunks(&self) -> Vec<Vec<u8>> {
        encode(self)
    }

    /// The aggregator `bytes` were taken from, provided `cfg` is the
    /// configuration it ran under.
    pub fn restore(cfg: &AggregatorConfig, bytes: &[u8]) -> Result<Aggregator, SnapshotError> {
        let mut restored = decode_aggregator(bytes)?;
        if postcard::to_stdvec(restored.config()).ok() != postcard::to_stdvec(cfg).ok() {
            return Err(SnapshotError::Settings("aggregator"));
        }
        restored.cfg.max_open_sessions = cfg.max_open_sessions;
        restored.cfg.max_open_carts = cfg.max_open_carts;
        restored.cfg.max_abandoned_carts = cfg.max_abandoned_carts;
        restored.cfg.settle_grace_ms = cfg.settle_grace_ms;
        restored.carts.reindex();
        restored.carts.bounds = crate::carts::CartBounds::of(&restored.cfg);
        let holds =
            (restored.sessions.holds().chain(restored.carts.holds())).chain(restored.early.holds());
        restored.held.rebuild(holds);
        let visits = restored.pages.take_restored();
        restored.sessions.rejoin(visits);
        Ok(restored)
    }
}

impl CustomerBook {
    /// The whole state (histories, pending facts, open days) as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_chunks().concat()
    }

    /// [`CustomerBook::snapshot`] in the chunks it was written in.
    pub fn snapshot_chunks(&self) -> Vec<Vec<u8>> {
        encode(self)
    }

    /// The book `bytes` were taken from, provided it was built like `like`
    /// (same lapse minimum, currency and bound); it takes `like`'s order
    /// memory bounds.
    pub fn restore(like: &CustomerBook, bytes: &[u8]) -> Result<CustomerBook, SnapshotError> {
        let mut restored = decode_book(bytes)?;
        if !restored.same_settings(like) {
            return Err(SnapshotError::Settings("customers"));
        }
        restored.orders.bounds_of(&like.orders);
        Ok(restored)
    }
}
