//! The sessions in use, one per visitor, found by the visitor id.
//!
//! A table of boxed sessions, each slot one pointer: the session holds its
//! visitor id, so the table keeps no second copy of it as a map's key
//! would (a map slot was 24 bytes). An event's visitor id is hashed once
//! ([`InUse::key`]) and every lookup the event makes uses that hash.
//!
//! Checkpoints write the sessions in use as a map by visitor id, with the
//! parked ones under their keys ([`super::parked`]); reading one back keeps
//! the parked entries aside ([`InUse::restored`]) until their page state
//! has joined them.

use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::hash::State;
use crate::small_id::Probe;

use super::parked::MARK;
use super::Open;

/// A visitor id with its hash in the table and its UUID bytes, each
/// computed once per event.
#[derive(Clone, Copy)]
pub(crate) struct Key<'a> {
    pub(super) id: Probe<'a>,
    hash: u64,
}

/// The sessions in use, by visitor.
#[derive(Default)]
pub(super) struct InUse {
    hasher: State,
    table: HashTable<Box<Open>>,
    /// Parked sessions read from a checkpoint, under their keys, until the
    /// sessionizer parks them again.
    pub(super) restored: Vec<(Box<str>, Box<Open>)>,
}

impl InUse {
    /// `id` with its hash.
    pub(super) fn key<'a>(&self, id: &'a str) -> Key<'a> {
        Key {
            id: Probe::new(id),
            hash: self.hasher.hash_one(id),
        }
    }

    pub(super) fn get(&self, k: Key<'_>) -> Option<&Open> {
        let found = self.table.find(k.hash, |s| s.visitor.is_probe(&k.id));
        found.map(|s| &**s)
    }

    pub(super) fn get_mut(&mut self, k: Key<'_>) -> Option<&mut Open> {
        let found = self.table.find_mut(k.hash, |s| s.visitor.is_probe(&k.id));
        found.map(|s| &mut **s)
    }

    /// Takes out the session of `k`'s visitor.
    pub(super) fn remove(&mut self, k: Key<'_>) -> Option<Box<Open>> {
        let entry = self.table.find_entry(k.hash, |s| s.visitor.is_probe(&k.id));
        entry.ok().map(|e| e.remove().0)
    }

    /// Puts `s` in use for its visitor, `k`'s, who has none in use.
    pub(super) fn insert(&mut self, k: Key<'_>, s: Box<Open>) {
        debug_assert!(s.visitor.is_probe(&k.id) && self.get(k).is_none());
        let hasher = &self.hasher;
        let rehash = |s: &Open| s.visitor.with_str(|v| hasher.hash_one(v));
        self.table.insert_unique(k.hash, s, |s| rehash(s));
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every session in use.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Open> + '_ {
        self.table.iter().map(|s| &**s)
    }

    /// Takes out the sessions `pick` names.
    #[allow(clippy::vec_box)]
    pub(super) fn take_where(&mut self, mut pick: impl FnMut(&Open) -> bool) -> Vec<Box<Open>> {
        self.table.extract_if(|s| pick(s)).collect()
    }

    /// The session a checkpoint wrote under `key`: in use under its
    /// visitor's id, or parked under a key with [`MARK`].
    pub(super) fn restored_mut(&mut self, key: &str) -> Option<&mut Open> {
        if key.contains(MARK) {
            let found = self.restored.iter_mut().find(|(k, _)| &**k == key);
            found.map(|(_, s)| &mut **s)
        } else {
            self.get_mut(self.key(key))
        }
    }
}

impl<'de> serde::Deserialize<'de> for InUse {
    /// Reads the checkpoint's map of sessions: those in use by visitor id,
    /// the parked ones kept aside under their keys.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all: Vec<(String, Box<Open>)> = d.deserialize_map(Pairs)?;
        let mut in_use = InUse::default();
        for (key, s) in all {
            if key.contains(MARK) {
                in_use.restored.push((key.into(), s));
                continue;
            }
            let visitor = s.visitor.to_string();
            let k = in_use.key(&visitor);
            // A visitor has one session in use: a second entry replaces it.
            in_use.remove(k);
            in_use.insert(k, s);
        }
        Ok(in_use)
    }
}

/// A map read as its entries, in order.
struct Pairs;

impl<'de> serde::de::Visitor<'de> for Pairs {
    type Value = Vec<(String, Box<Open>)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of open sessions")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(pair) = map.next_entry()? {
            all.push(pair);
        }
        Ok(all)
    }
}
