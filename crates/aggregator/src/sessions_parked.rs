//! Sessions of a visitor under other storefront session ids than the one
//! in use: a visitor who goes back to an earlier storefront session (another
//! tab, the app and the site) continues it instead of starting a new
//! session at every switch. The spec keys sessions by `session_id`.
//!
//! The session in use stays in the sessionizer's table, one per visitor;
//! the visitor's others wait here, each still closing on its own deadline.
//! Few visitors have any, so this costs the common path nothing.
//!
//! In a checkpoint a parked session is an entry of the open sessions' map
//! (and its page state of the visits' map) under the key `<visitor>` +
//! [`MARK`] + `<n>`, which no visitor id has; reading such a key parks the
//! session again.

use std::sync::Arc;

use crate::hash::Map;
use crate::Source;

use super::{Open, Sessionizer};

/// Separates a visitor id from a parked session's number in checkpoint keys.
pub(super) const MARK: &str = "\u{0}parked\u{0}";

/// The parked sessions, by visitor, and how many there are (asked once per
/// event, for the open-session bound). Boxed as in the table of sessions in
/// use, so a session moves between the two without being copied.
#[derive(Default)]
#[allow(clippy::vec_box)]
pub(super) struct Parked {
    by_visitor: Map<Arc<str>, Vec<Box<Open>>>,
    len: usize,
}

impl Parked {
    /// Parks `s`, a session of `visitor` no longer in use.
    pub(super) fn park(&mut self, visitor: Arc<str>, s: Box<Open>) {
        self.by_visitor.entry(visitor).or_default().push(s);
        self.len += 1;
    }

    /// Takes out `visitor`'s parked session under storefront id `id` that
    /// `live` accepts (one not past its deadline).
    pub(super) fn take(
        &mut self,
        visitor: &str,
        id: &str,
        live: impl Fn(&Open) -> bool,
    ) -> Option<Box<Open>> {
        self.take_where(visitor, |s| s.storefront_id_is(id) && live(s))
    }

    /// Whether `visitor` has a parked session under storefront id `id` that
    /// `live` accepts.
    pub(super) fn has(&self, visitor: &str, id: &str, live: impl Fn(&Open) -> bool) -> bool {
        self.by_visitor
            .get(visitor)
            .is_some_and(|l| l.iter().any(|s| s.storefront_id_is(id) && live(s)))
    }

    /// Takes out `visitor`'s parked session whose deadline entry is `at`.
    pub(super) fn take_queued(&mut self, visitor: &str, at: i64) -> Option<Box<Open>> {
        self.take_where(visitor, |s| s.queued_at() == at)
    }

    fn take_where(&mut self, visitor: &str, pick: impl Fn(&Open) -> bool) -> Option<Box<Open>> {
        if self.len == 0 {
            return None; // the common case: no hashing of the visitor
        }
        let list = self.by_visitor.get_mut(visitor)?;
        let i = list.iter().position(|s| pick(s))?;
        let s = list.swap_remove(i);
        if list.is_empty() {
            self.by_visitor.remove(visitor);
        }
        self.len -= 1;
        Some(s)
    }

    /// `visitor`'s parked session whose deadline entry is `at`.
    pub(super) fn queued_mut(&mut self, visitor: &str, at: i64) -> Option<&mut Open> {
        if self.len == 0 {
            return None; // the common case: no hashing of the visitor
        }
        let list = self.by_visitor.get_mut(visitor)?;
        list.iter_mut()
            .find(|s| s.queued_at() == at)
            .map(|s| &mut **s)
    }

    /// Parked sessions.
    /// Takes out the sessions `named` picks (their visitors to `visitors`),
    /// boxed as the open map keeps them.
    #[allow(clippy::vec_box)]
    pub(super) fn forget(
        &mut self,
        named: &dyn Fn(&str, &Open) -> bool,
        visitors: &mut Vec<String>,
    ) -> Vec<Box<Open>> {
        let mut dropped = Vec::new();
        for (visitor, list) in &mut self.by_visitor {
            let mut i = 0;
            while i < list.len() {
                if named(visitor, &list[i]) {
                    dropped.push(list.swap_remove(i));
                    visitors.push(visitor.to_string());
                } else {
                    i += 1;
                }
            }
        }
        self.by_visitor.retain(|_, list| !list.is_empty());
        self.len -= dropped.len();
        dropped
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The offsets the parked sessions hold.
    pub(super) fn holds(&self) -> impl Iterator<Item = (Source, i64)> + '_ {
        self.by_visitor.values().flatten().flat_map(|s| s.holds())
    }

    /// Every parked session with its checkpoint key.
    pub(super) fn keyed(&self) -> impl Iterator<Item = (String, &Open)> + '_ {
        self.by_visitor.iter().flat_map(|(visitor, list)| {
            list.iter()
                .enumerate()
                .map(move |(n, s)| (format!("{visitor}{MARK}{n}"), &**s))
        })
    }
}

impl Sessionizer {
    /// Moves the sessions a checkpoint wrote under parked keys back to the
    /// parked table (after their page state was given back).
    pub(super) fn unpark_restored(&mut self) {
        for (_, s) in std::mem::take(&mut self.open.restored) {
            self.parked.park(s.visitor.to_arc(), s);
        }
    }
}

/// The open sessions' map as checkpoints write it: the sessions in use by
/// visitor, then the parked ones under their keys.
pub(super) struct OpenRef<'a>(pub(super) &'a Sessionizer);

impl serde::Serialize for OpenRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = self.0;
        let mut map = serializer.serialize_map(Some(s.open.len() + s.parked.len()))?;
        for open in s.open.iter() {
            map.serialize_entry(&open.visitor, open)?;
        }
        for (key, open) in s.parked.keyed() {
            map.serialize_entry(&key, open)?;
        }
        map.end()
    }
}

/// The open sessions' page state as a map by visitor id (and parked key),
/// the layout checkpoints kept it in.
pub(crate) struct VisitsRef<'a>(pub(super) &'a Sessionizer);

impl serde::Serialize for VisitsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = self.0;
        let in_use = s
            .open
            .iter()
            .filter_map(|o| o.visit.as_ref().map(|v| (o.visitor.to_string(), v)));
        let parked = s
            .parked
            .keyed()
            .filter_map(|(k, o)| o.visit.as_ref().map(|v| (k, v)));
        let visits: Vec<_> = in_use.chain(parked).collect();
        let mut map = serializer.serialize_map(Some(visits.len()))?;
        for (key, visit) in visits {
            map.serialize_entry(&key, visit)?;
        }
        map.end()
    }
}

/// The sessionizer as checkpoints write it, field by field (the derived
/// `Deserialize` reads the same fields in the same order).
impl serde::Serialize for Sessionizer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = serializer.serialize_struct("Sessionizer", 9)?;
        st.serialize_field("gap_ms", &self.gap_ms)?;
        st.serialize_field("max_ms", &self.max_ms)?;
        st.serialize_field("bounce_ms", &self.bounce_ms)?;
        st.serialize_field("stages", &self.stages)?;
        st.serialize_field("currency", &self.currency)?;
        st.serialize_field("visitors", &self.visitors)?;
        st.serialize_field("rules", &self.rules)?;
        st.serialize_field("open", &OpenRef(self))?;
        st.serialize_field("deadlines", &self.deadlines)?;
        st.end()
    }
}
