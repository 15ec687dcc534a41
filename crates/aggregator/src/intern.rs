//! Shared copies of strings the state holds many times over: campaign
//! fields, paths, experiments, product ids and currencies. Most sessions
//! come from a few campaigns and land on a few pages, and a product is
//! counted in many windows; each distinct string is allocated once.
//! Strings that come together (a session's campaign, its experiment) are
//! shared as one group, so an open session holds one pointer for them.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::hash::{Set, State};

/// Strings shared as one: a session's origin (source, medium, campaign
/// name) or its experiment (id, variant). A thin pointer: 8 bytes where
/// the strings' own pointers take 16 each.
pub(crate) type Group<const N: usize> = Arc<[Arc<str>; N]>;

/// A bounded set of shared strings: at most [`Interner::MAX`] of them and
/// [`Interner::MAX_BYTES`] of text. When either is reached the set is
/// emptied (holders keep their copies, new ones share again), so hostile
/// input with a new long value per event costs a bounded set per store.
#[derive(Default)]
pub(crate) struct Interner {
    set: Set<Arc<str>>,
    /// Bytes of text in the set.
    bytes: usize,
    /// The empty string, kept apart: a new session asks for it twice (no
    /// entry or exit page yet), hashing nothing.
    empty: Option<Arc<str>>,
    /// The empty experiment, kept apart as the empty string is: every new
    /// session starts with it.
    no_experiment: Option<Group<2>>,
    hasher: State,
    origins: HashTable<Group<3>>,
    experiments: HashTable<Group<2>>,
}

/// The shared group of `parts` in `table`, if there is one.
fn find<const N: usize>(
    table: &HashTable<Group<N>>,
    hash: u64,
    parts: [&str; N],
) -> Option<Group<N>> {
    let same = |g: &Group<N>| g.iter().zip(parts).all(|(a, b)| **a == *b);
    table.find(hash, same).cloned()
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

    /// The shared origin `[source, medium, campaign]`.
    pub(crate) fn origin(&mut self, parts: [&str; 3]) -> Group<3> {
        self.group(parts, |i| &mut i.origins)
    }

    /// The shared experiment `[id, variant]`.
    pub(crate) fn experiment(&mut self, parts: [&str; 2]) -> Group<2> {
        if parts == ["", ""] {
            if let Some(none) = &self.no_experiment {
                return none.clone();
            }
            let none = Arc::new([self.get(""), self.get("")]);
            return self.no_experiment.insert(none).clone();
        }
        self.group(parts, |i| &mut i.experiments)
    }

    /// The shared group of `parts` in the table `table` picks, made (and
    /// its parts shared) when it is not there; the table is emptied first
    /// when full, as the strings' set is.
    fn group<const N: usize>(
        &mut self,
        parts: [&str; N],
        table: fn(&mut Interner) -> &mut HashTable<Group<N>>,
    ) -> Group<N> {
        let hash = self.hasher.hash_one(parts);
        if let Some(g) = find(table(self), hash, parts) {
            return g;
        }
        let g = Arc::new(parts.map(|p| self.get(p)));
        let hasher = self.hasher.clone();
        let rehash = move |g: &Group<N>| hasher.hash_one(g.each_ref().map(|s| &**s));
        let t = table(self);
        if t.len() >= Self::MAX {
            t.clear();
        }
        t.insert_unique(hash, g.clone(), rehash);
        g
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
    fn groups_are_shared_whole_and_bounded() {
        let mut strings = Interner::default();
        let a = strings.origin(["google", "cpc", "spring"]);
        assert!(Arc::ptr_eq(
            &a,
            &strings.origin(["google", "cpc", "spring"])
        ));
        assert!(!Arc::ptr_eq(&a, &strings.origin(["google", "cpc", ""])));
        assert!(
            Arc::ptr_eq(&a[0], &strings.get("google")),
            "parts shared too"
        );
        let none = strings.experiment(["", ""]);
        assert!(Arc::ptr_eq(&none, &strings.experiment(["", ""])));
        for i in 0..Interner::MAX + 10 {
            strings.origin(["s", "m", &format!("c{i}")]);
        }
        assert!(strings.origins.len() <= Interner::MAX);
        assert_eq!(a.each_ref().map(|s| &**s), ["google", "cpc", "spring"]);
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
