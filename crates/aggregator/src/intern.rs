//! Shared copies of strings the state holds many times over: campaign
//! fields, paths, experiments, product ids and currencies. Most sessions
//! come from a few campaigns and land on a few pages, and a product is
//! counted in many windows; each distinct string is allocated once.

use std::sync::Arc;

use crate::hash::Set;

/// A bounded set of shared strings: at most [`Interner::MAX`] of them and
/// [`Interner::MAX_BYTES`] of text. When either is reached the set is
/// emptied (holders keep their copies, new ones share again), so hostile
/// input with a new long value per event costs a bounded set per store.
#[derive(Default)]
pub(crate) struct Interner {
    set: Set<Arc<str>>,
    /// Bytes of text in the set.
    bytes: usize,
    /// The empty string, kept apart: a new session asks for it four times
    /// (no entry or exit page yet, no experiment), hashing nothing.
    empty: Option<Arc<str>>,
}

impl Interner {
    const MAX: usize = 65_536;
    const MAX_BYTES: usize = 2 << 20;

    /// The shared copy of `s`.
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if s.is_empty() {
            return self.empty.get_or_insert_with(|| Arc::from("")).clone();
        }
        if let Some(shared) = self.set.get(s) {
            return shared.clone();
        }
        if self.set.len() >= Self::MAX || self.bytes + s.len() > Self::MAX_BYTES {
            self.set.clear();
            self.bytes = 0;
        }
        let shared: Arc<str> = Arc::from(s);
        self.set.insert(shared.clone());
        self.bytes += s.len();
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_string_and_the_set_stays_bounded() {
        let mut strings = Interner::default();
        let a = strings.get("/products/1");
        assert!(Arc::ptr_eq(&a, &strings.get("/products/1")));
        assert!(Arc::ptr_eq(&strings.get(""), &strings.get("")));
        for i in 0..Interner::MAX + 10 {
            strings.get(&format!("/p/{i}"));
        }
        assert!(strings.set.len() <= Interner::MAX);
        assert_eq!(&*a, "/products/1", "holders keep their copies");
    }

    #[test]
    fn long_values_are_bounded_by_their_bytes() {
        let mut strings = Interner::default();
        for i in 0..10_000 {
            strings.get(&format!("{i:0>512}"));
            assert!(strings.bytes <= Interner::MAX_BYTES);
        }
        let text: usize = strings.set.iter().map(|s| s.len()).sum();
        assert_eq!(text, strings.bytes);
    }
}
