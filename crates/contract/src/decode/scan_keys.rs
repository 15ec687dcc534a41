//! The keys the one-pass reader knows, matched as words.
//!
//! Scanning a key as a string costs a loop whose exit depends on the key's
//! length: a branch mispredicted per key. A store's messages keep their
//! fields in one order, so the reader expects the key that follows the last
//! one matched, and compares it with the message's next 16 bytes as two
//! masked words. Any other key is read as a string and looked up by name:
//! trying every known key as words first was slower on this machine
//! (decode 1.30-1.36M messages/s against 1.44-1.49M), though it counted
//! fewer instructions.

/// A known key with its closing quote: its first 16 bytes as two
/// little-endian words, and masks of the bytes that count.
#[derive(Clone, Copy)]
pub(super) struct Key {
    name: &'static str,
    words: [u64; 2],
    masks: [u64; 2],
}

impl Key {
    /// The key `name` (at most 15 bytes, no quote or backslash).
    pub(super) const fn new(name: &'static str) -> Key {
        let b = name.as_bytes();
        assert!(b.len() < 16, "a known key fits two words with its quote");
        let mut bytes = [0u8; 16];
        let mut mask = [0u8; 16];
        let mut i = 0;
        while i <= b.len() {
            bytes[i] = if i < b.len() { b[i] } else { b'"' };
            assert!(i == b.len() || (b[i] != b'"' && b[i] != b'\\'));
            mask[i] = 0xff;
            i += 1;
        }
        Key {
            name,
            words: [word(&bytes, 0), word(&bytes, 8)],
            masks: [word(&mask, 0), word(&mask, 8)],
        }
    }

    /// The bytes the key and its closing quote take.
    fn len(&self) -> usize {
        self.name.len() + 1
    }

    /// Whether `rest` (what follows a key's opening quote) starts with this
    /// key and its closing quote; `None` when fewer than 16 bytes are left
    /// to compare as words.
    fn starts(&self, rest: &[u8]) -> Option<bool> {
        let w = rest.get(..16)?;
        let (lo, hi) = w.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().ok()?);
        let hi = u64::from_le_bytes(hi.try_into().ok()?);
        let diff = ((lo ^ self.words[0]) & self.masks[0]) | ((hi ^ self.words[1]) & self.masks[1]);
        Some(diff == 0)
    }
}

/// Little-endian word of `bytes[at..at + 8]`, at compile time.
const fn word(bytes: &[u8; 16], at: usize) -> u64 {
    let mut w = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        w[i] = bytes[at + i];
        i += 1;
    }
    u64::from_le_bytes(w)
}

/// Whether the key at the start of `rest` (after its opening quote) is the
/// one at `guess` in `keys`: the bytes it takes with its closing quote.
/// `None` when it must be read as a string instead: it is another key, or
/// too near the end to compare as words. Inlined: it runs for every key,
/// and as a call it cost more than the comparison it makes.
#[inline]
pub(super) fn expected(keys: &[Key], guess: usize, rest: &[u8]) -> Option<usize> {
    let k = keys.get(guess)?;
    k.starts(rest)?.then(|| k.len())
}

/// Which of `keys` is `key`, read as a string.
pub(super) fn named(keys: &[Key], key: &str) -> Option<usize> {
    keys.iter().position(|k| k.name == key)
}
