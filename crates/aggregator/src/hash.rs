//! The hash maps of the state.
//!
//! Keys (visitor ids, cart ids, paths) come from the internet, so the
//! hasher is seeded at random per process, as std's is, which keeps
//! precomputed collisions (hash flooding) out. foldhash instead of std's
//! SipHash: one folded multiply per word instead of SipHash's rounds, which
//! took about 9 % of the in-process profile (docs/performance.md). Nothing
//! depends on iteration order: rows are sorted before they leave.

use std::collections::{HashMap, HashSet};

/// The hasher of every map in the state: foldhash, randomly seeded.
pub(crate) type State = foldhash::fast::RandomState;

/// A hash map of the state.
pub(crate) type Map<K, V> = HashMap<K, V, State>;

/// A hash set of the state.
pub(crate) type Set<K> = HashSet<K, State>;

/// A visitor id's 64-bit digest, as the returning-visitor memory and the
/// touches keep visitors (in snapshots too): std's SipHash with fixed keys,
/// so the same id gives the same digest in every process.
pub(crate) fn visitor_digest(visitor: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    visitor.hash(&mut h);
    h.finish()
}
