//! Stores of revoked partitions, kept for a while: an eager rebalance
//! revokes every partition and assigns most of them back within seconds,
//! and a store given back goes on where it was instead of being restored.

use aggregator::{Aggregator, CustomerBook, Source};
use exporter::Checkpoint;
use ingest::Topology;

use super::{Kind, Saved, Slot, Stores};

/// The state of one store, whichever kind it is.
pub(super) enum State {
    Aggregator(Box<Aggregator>),
    Book(Box<CustomerBook>),
}

/// A revoked store, kept for a while.
pub(super) struct Parked {
    state: State,
    next: Vec<(Source, i64)>,
    event_times: Vec<(Source, i64)>,
    saved: Option<Saved>,
    /// When it was revoked, on the caller's clock.
    since_ms: u64,
}

impl Stores {
    /// Takes `slot` out of the held stores (its partition was revoked) but
    /// keeps it, so that [`Stores::unpark`] can put it back if the partition
    /// returns. `now_ms` is the caller's clock, for [`Stores::expire_parked`].
    pub fn park(&mut self, slot: Slot, now_ms: u64) {
        let of_slot = |m: &super::BySource| -> Vec<(Source, i64)> {
            m.iter()
                .filter(|(s, _)| Slot::of(**s) == slot)
                .map(|(s, v)| (*s, *v))
                .collect()
        };
        let state = match slot.kind {
            Kind::Customers => self
                .books
                .remove(&slot.partition)
                .map(|b| State::Book(Box::new(b))),
            _ => self
                .aggregators
                .remove(&slot)
                .map(|a| State::Aggregator(Box::new(a))),
        };
        if let Some(state) = state {
            let parked = Parked {
                state,
                next: of_slot(&self.next),
                event_times: of_slot(&self.event_times),
                saved: self.saved.get(&slot).cloned(),
                since_ms: now_ms,
            };
            self.parked.insert(slot, parked);
        }
        self.drop_slot(slot);
    }

    /// Puts back the store of `slot` parked at its revocation, unless
    /// `furthest` (the furthest checkpoint saved for it, by whichever
    /// instance) is further along some topic: then another owner moved the
    /// partition on, and the parked store is dropped. Returns whether the
    /// parked store is held again.
    pub fn unpark(
        &mut self,
        slot: Slot,
        furthest: Option<&Checkpoint>,
        topology: &Topology,
    ) -> bool {
        let Some(p) = self.parked.remove(&slot) else {
            return false;
        };
        let moved_on = furthest.is_some_and(|c| {
            c.offsets.iter().any(|(topic, offset)| {
                let ours = p
                    .next
                    .iter()
                    .find(|(s, _)| topology.topic(*s) == Some(topic.as_str()))
                    .map_or(i64::MIN, |(_, n)| *n);
                *offset > ours
            })
        });
        if moved_on {
            return false;
        }
        self.drop_slot(slot);
        match p.state {
            State::Aggregator(a) => {
                self.aggregators.insert(slot, *a);
            }
            State::Book(b) => {
                self.books.insert(slot.partition, *b);
            }
        }
        self.next.extend(p.next);
        self.event_times.extend(p.event_times);
        if let Some(saved) = p.saved {
            self.saved.insert(slot, saved);
        }
        true
    }

    /// Drops stores parked for longer than `max_age_ms` at `now_ms`: their
    /// partitions went to another owner for good.
    pub fn expire_parked(&mut self, now_ms: u64, max_age_ms: u64) {
        self.parked
            .retain(|_, p| now_ms.saturating_sub(p.since_ms) <= max_age_ms);
    }

    /// Stores parked now.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}
