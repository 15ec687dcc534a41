//! Deadline heaps with lazy updates, shared by sessions and carts.
//!
//! Each open item keeps at most one live entry in a min-heap of
//! `(deadline, key)`. Activity moves an item's deadline later without
//! touching the heap; when the old entry comes up, it is pushed again at
//! the item's true deadline. Entries of items gone, or of an earlier item
//! under the same key, are stale and dropped when they come up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A min-heap of `(deadline, key)` entries.
pub(crate) type Deadlines<K> = BinaryHeap<Reverse<(i64, K)>>;

/// What the owner of a key says of an entry of it due at some time.
pub(crate) enum Due {
    /// Not the item's live entry (the item is gone, or this entry belongs
    /// to an earlier item under the same key): drop it.
    Stale,
    /// The item's deadline moved to this later time, which the owner has
    /// recorded as its live entry: queue it again.
    Later(i64),
    /// The item is due now.
    Now,
}

/// Pops entries until one whose item is due at or before `until` (any
/// time when `None`: the soonest of all), and returns its key. `check`
/// judges each entry `(key, at)` that comes up.
pub(crate) fn pop_due<K: Ord>(
    heap: &mut Deadlines<K>,
    until: Option<i64>,
    mut check: impl FnMut(&K, i64) -> Due,
) -> Option<K> {
    while let Some(Reverse((at, _))) = heap.peek() {
        if until.is_some_and(|w| *at > w) {
            return None;
        }
        let Reverse((at, key)) = heap.pop()?;
        match check(&key, at) {
            Due::Stale => {}
            Due::Later(later) => heap.push(Reverse((later, key))),
            Due::Now => return Some(key),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_entries_are_dropped_and_moved_deadlines_wait_their_turn() {
        let mut heap: Deadlines<&str> = Deadlines::new();
        for (at, key) in [(10, "a"), (20, "b"), (15, "gone")] {
            heap.push(Reverse((at, key)));
        }
        // "a" was active since: its true deadline is 30.
        let mut live = std::collections::HashMap::from([("a", 30), ("b", 20)]);
        let mut check = |key: &&str, at: i64| match live.get(key) {
            None => Due::Stale,
            Some(&due) if due > at => Due::Later(due),
            Some(_) => Due::Now,
        };
        assert_eq!(pop_due(&mut heap, Some(19), &mut check), None);
        assert_eq!(pop_due(&mut heap, Some(25), &mut check), Some("b"));
        assert_eq!(pop_due(&mut heap, None, &mut check), Some("a"));
        live.clear();
        assert!(heap.is_empty());
    }
}
