//! Ids as an open session holds them, without an allocation of their own
//! for the ids storefronts usually send.
//!
//! A visitor id is a cookie or device id: a UUID (Segment's and
//! RudderStack's `anonymousId`, most storefront SDKs), or a short token
//! (`GA1.2.…`-style ids, numeric ids). A million open sessions each held
//! theirs in an `Arc<str>` of its own: 56 bytes of heap for a UUID, 32
//! for a 15-byte token. [`SmallId`] keeps an id of up to 22 bytes inline
//! and a lowercase hyphenated UUID as its 16 bytes, in 24 bytes; any other
//! id is boxed. It reads, writes, compares and orders as the string it
//! stands for, so checkpoints and the order of equal deadlines are as they
//! were with the string.

use std::cmp::Ordering;
use std::sync::Arc;

/// Bytes kept inline.
const INLINE: usize = 22;

/// The length of a hyphenated UUID, and where its hyphens are.
const UUID_LEN: usize = 36;
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// An id: inline, a packed UUID, or boxed (24 bytes; a test pins it).
#[derive(Clone)]
pub(crate) enum SmallId {
    /// Up to [`INLINE`] bytes of UTF-8.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A lowercase hyphenated UUID, as the 16 bytes its hex digits spell.
    Uuid([u8; 16]),
    /// Anything else.
    Boxed(Box<str>),
}

impl SmallId {
    /// `id`, held as compactly as its form allows.
    pub(crate) fn new(id: &str) -> SmallId {
        if id.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            return SmallId::Inline {
                len: id.len() as u8,
                bytes,
            };
        }
        match uuid_bytes(id) {
            Some(b) => SmallId::Uuid(b),
            None => SmallId::Boxed(id.into()),
        }
    }

    /// Calls `f` with the id as a string (a UUID is spelled out on the
    /// stack).
    pub(crate) fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            SmallId::Inline { len, bytes } => f(inline_str(bytes, *len)),
            SmallId::Uuid(b) => {
                let text = uuid_text(b);
                // Hex digits and hyphens only: ASCII.
                f(std::str::from_utf8(&text).unwrap_or_default())
            }
            SmallId::Boxed(s) => f(s),
        }
    }

    /// Calls `f` with the id's UTF-8 bytes, unchecked: comparing and
    /// ordering need no validation (a string orders as its bytes), and
    /// checking an inline id's bytes at each comparison was about 700
    /// instructions per event in the sessions' lookups and deadlines.
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            SmallId::Inline { len, bytes } => f(&bytes[..usize::from(*len)]),
            SmallId::Uuid(b) => f(&uuid_text(b)),
            SmallId::Boxed(s) => f(s.as_bytes()),
        }
    }

    /// Whether this is `id` (read as a UUID only when this is one).
    pub(crate) fn is(&self, id: &str) -> bool {
        match self {
            SmallId::Uuid(b) => uuid_bytes(id) == Some(*b),
            _ => self.is_probe(&Probe { id, uuid: None }),
        }
    }

    /// Whether this is the id `p` stands for.
    pub(crate) fn is_probe(&self, p: &Probe<'_>) -> bool {
        match self {
            SmallId::Inline { len, bytes } => &bytes[..usize::from(*len)] == p.id.as_bytes(),
            SmallId::Uuid(b) => p.uuid == Some(*b),
            SmallId::Boxed(s) => &**s == p.id,
        }
    }

    /// The id as a shared string (for a row).
    pub(crate) fn to_arc(&self) -> Arc<str> {
        self.with_str(|s| Arc::from(s))
    }
}

/// An id to look for among [`SmallId`]s, its UUID bytes read once: an
/// event's visitor is compared in several lookups, and a UUID is parsed
/// for the first only.
#[derive(Clone, Copy)]
pub(crate) struct Probe<'a> {
    id: &'a str,
    uuid: Option<[u8; 16]>,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(id: &'a str) -> Probe<'a> {
        Probe {
            id,
            uuid: uuid_bytes(id),
        }
    }

    /// The id.
    pub(crate) fn id(&self) -> &'a str {
        self.id
    }
}

impl std::fmt::Display for SmallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

impl std::fmt::Debug for SmallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|s| write!(f, "{s:?}"))
    }
}

impl PartialEq for SmallId {
    fn eq(&self, other: &SmallId) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SmallId {}

impl PartialOrd for SmallId {
    fn partial_cmp(&self, other: &SmallId) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallId {
    /// As the strings order. Two UUIDs order as their bytes do: hex digits
    /// sort as the values they spell, and the hyphens stand in the same
    /// places.
    fn cmp(&self, other: &SmallId) -> Ordering {
        match (self, other) {
            (SmallId::Uuid(a), SmallId::Uuid(b)) => a.cmp(b),
            _ => self.with_bytes(|a| other.with_bytes(|b| a.cmp(b))),
        }
    }
}

impl serde::Serialize for SmallId {
    /// As the string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_str(|id| s.serialize_str(id))
    }
}

impl<'de> serde::Deserialize<'de> for SmallId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SmallId, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(SmallId::new(&id))
    }
}

/// The inline bytes as the string they were made from.
fn inline_str(bytes: &[u8; INLINE], len: u8) -> &str {
    // Made from a `&str` cut at its own length: valid UTF-8.
    std::str::from_utf8(&bytes[..usize::from(len)]).unwrap_or_default()
}

/// Where a hyphenated UUID's 32 hex digits stand (around the hyphens).
const DIGITS: [usize; 32] = {
    let mut at = [0; 32];
    let (mut i, mut pos) = (0, 0);
    while i < 32 {
        if pos == HYPHENS[0] || pos == HYPHENS[1] || pos == HYPHENS[2] || pos == HYPHENS[3] {
            pos += 1;
        }
        at[i] = pos;
        i += 1;
        pos += 1;
    }
    at
};

/// Each byte's value as a lowercase hex digit; `0xff` for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut v = [0xff; 256];
    let mut d = 0;
    while d < 10 {
        v[b'0' as usize + d] = d as u8;
        d += 1;
    }
    let mut d = 0;
    while d < 6 {
        v[b'a' as usize + d] = 10 + d as u8;
        d += 1;
    }
    v
};

/// The 16 bytes of `id` when it is a lowercase hyphenated UUID (other
/// spellings of the same UUID are other ids, and stay strings). Read with
/// fixed digit places and a table, as every event's visitor is: a scan
/// that looked up each place among the hyphens cost about 600
/// instructions per UUID.
fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    let s = id.as_bytes();
    if s.len() != UUID_LEN || HYPHENS.iter().any(|&h| s[h] != b'-') {
        return None;
    }
    let mut out = [0; 16];
    let mut bad = 0;
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = HEX_VALUE[usize::from(s[DIGITS[2 * i]])];
        let lo = HEX_VALUE[usize::from(s[DIGITS[2 * i + 1]])];
        bad |= hi | lo;
        *byte = (hi << 4) | lo;
    }
    // A digit's value has no high bits; `0xff` has.
    (bad & 0xf0 == 0).then_some(out)
}

/// The hyphenated lowercase spelling of a UUID's bytes.
fn uuid_text(b: &[u8; 16]) -> [u8; UUID_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; UUID_LEN];
    for (i, byte) in b.iter().enumerate() {
        out[DIGITS[2 * i]] = HEX[usize::from(byte >> 4)];
        out[DIGITS[2 * i + 1]] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 9] = [
        "",
        "anon-0000151789",
        "exactly-twenty-two-byt",
        "twenty-three-bytes-long",
        "04e6cdfb-3568-4746-bb21-cdb99f21a56a",
        "04E6CDFB-3568-4746-BB21-CDB99F21A56A",
        "04e6cdfb-3568-4746-bb21-cdb99f21a56",
        "04e6cdfb+3568-4746-bb21-cdb99f21a56a",
        "ünïcödé-visitor-идентификатор",
    ];

    #[test]
    fn an_id_is_held_in_24_bytes_and_reads_back_as_it_was() {
        assert_eq!(std::mem::size_of::<SmallId>(), 24);
        assert_eq!(std::mem::size_of::<Option<SmallId>>(), 24);
        for id in IDS {
            let small = SmallId::new(id);
            assert_eq!(small.to_string(), id);
            assert!(small.is(id), "{id}");
            assert_eq!(&*small.to_arc(), id);
            let bytes = postcard::to_stdvec(&small).expect("encodes");
            assert_eq!(bytes, postcard::to_stdvec(id).expect("encodes"), "{id}");
            let back: SmallId = postcard::from_bytes(&bytes).expect("decodes");
            assert!(back.is(id), "{id}");
        }
    }

    #[test]
    fn only_short_ids_and_lowercase_uuids_are_held_inline() {
        let kind = |id: &str| match SmallId::new(id) {
            SmallId::Inline { .. } => "inline",
            SmallId::Uuid(_) => "uuid",
            SmallId::Boxed(_) => "boxed",
        };
        let kinds: Vec<&str> = IDS.iter().map(|id| kind(id)).collect();
        assert_eq!(
            kinds,
            ["inline", "inline", "inline", "boxed", "uuid", "boxed", "boxed", "boxed", "boxed"]
        );
    }

    /// Every byte at every digit place: a UUID only with lowercase hex
    /// digits there, read back as spelt; hyphens only where they stand.
    #[test]
    fn a_uuid_is_read_digit_by_digit_and_spelt_back() {
        let base = "0123abcd-ef45-6789-abcd-ef0123456789";
        for place in 0..UUID_LEN {
            for byte in 0..=255u8 {
                let mut id = base.as_bytes().to_vec();
                id[place] = byte;
                let Ok(id) = String::from_utf8(id) else {
                    continue;
                };
                let hex = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
                let want = if HYPHENS.contains(&place) {
                    byte == b'-'
                } else {
                    hex
                };
                let got = uuid_bytes(&id);
                assert_eq!(got.is_some(), want, "{id:?}");
                if let Some(b) = got {
                    assert_eq!(&uuid_text(&b)[..], id.as_bytes(), "{id:?}");
                }
            }
        }
        for id in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            let b = uuid_bytes(id).expect("a UUID");
            assert_eq!(&uuid_text(&b)[..], id.as_bytes());
        }
    }

    #[test]
    fn ids_compare_and_order_as_their_strings() {
        let mut more = IDS.to_vec();
        more.extend([
            "04e6cdfb-3568-4746-bb21-cdb99f21a56b",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "00000000-0000-0000-0000-000000000000",
            "04e6cdfb-3568-4746-bb21-cdb99f21a56a-and-more",
        ]);
        for a in &more {
            for b in &more {
                let (x, y) = (SmallId::new(a), SmallId::new(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} against {b}");
                assert_eq!(x == y, a == b, "{a} against {b}");
                assert_eq!(x.is(b), a == b, "{a} is {b}");
            }
        }
    }
}
