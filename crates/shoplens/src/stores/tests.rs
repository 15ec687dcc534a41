//! Stores: which source feeds which store, restores, gaps and parking.

use super::*;

const CLICKS: &str = "storefront.clickstream";

fn topology() -> Topology {
    Topology::new(&ingest::TopicNames::default())
}

fn src(stream: u8, partition: i32) -> Source {
    Source { stream, partition }
}

#[test]
fn clickstream_and_orders_share_a_store_spend_and_facts_have_their_own() {
    assert_eq!(Slot::of(src(0, 3)), Slot::of(src(1, 3)));
    assert_eq!(Slot::of(src(2, 3)).kind, Kind::Spend);
    assert_eq!(Slot::of(src(Topology::FACTS, 3)).kind, Kind::Customers);
    assert_ne!(Slot::of(src(0, 3)), Slot::of(src(0, 4)));
}

#[test]
fn a_revoked_store_comes_back_unless_another_owner_saved_it_further() {
    let topic = &topology();
    let mut stores = Stores::new(AggregatorConfig::default(), 1, "USD", 10);
    let slot = Slot::of(src(0, 1));
    stores.load(slot, None, topic);
    for offset in 0..5 {
        stores.applied(src(0, 1), offset);
    }
    let saved = stores.checkpoints(topic);

    // Revoked, then given back with nothing further saved: kept as it was.
    stores.park(slot, 0);
    assert!(!stores.holds(slot));
    assert_eq!(stores.next_of(src(0, 1)), None);
    assert!(stores.unpark(slot, saved.first(), topic));
    assert!(stores.holds(slot));
    assert_eq!(stores.next_of(src(0, 1)), Some(5));
    assert_eq!(stores.arrival(src(0, 1), 4), Arrival::Applied);
    assert!(
        stores.checkpoints(topic).is_empty(),
        "still the state saved before"
    );

    // Another owner read on and saved further: the parked store goes.
    stores.park(slot, 0);
    let mut further = saved[0].clone();
    further.offsets.insert(CLICKS.into(), 9);
    assert!(!stores.unpark(slot, Some(&further), topic));
    assert!(!stores.holds(slot));
    assert_eq!(stores.parked(), 0);

    // Never given back: forgotten after the age limit.
    stores.load(slot, None, topic);
    stores.park(slot, 1_000);
    stores.expire_parked(60_000, 60_000);
    assert_eq!(stores.parked(), 1);
    stores.expire_parked(61_001, 60_000);
    assert_eq!(stores.parked(), 0);
}

#[test]
fn a_restored_store_skips_what_it_holds_and_notices_gaps() {
    let topic = &topology();
    let mut stores = Stores::new(AggregatorConfig::default(), 1, "USD", 10);
    let slot = Slot::of(src(0, 1));
    stores.load(slot, None, topic);
    for offset in 0..5 {
        assert_eq!(stores.arrival(src(0, 1), offset), Arrival::Next);
        stores.applied(src(0, 1), offset);
    }
    let checkpoints = stores.checkpoints(topic);
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].offsets.get(CLICKS), Some(&5));
    assert_eq!(checkpoints[0].version(), 5);
    assert!(
        stores.checkpoints(topic).is_empty(),
        "nothing read and no watermark moved since: nothing to save"
    );

    let mut other = Stores::new(AggregatorConfig::default(), 1, "USD", 10);
    let loaded = other.load(slot, Some(&checkpoints[0]), topic);
    assert_eq!(loaded, Loaded::Restored);
    assert!(
        other.checkpoints(topic).is_empty(),
        "restored: the state is saved already"
    );
    // Reading on, or a watermark advance, changes the state: saved again.
    stores.applied(src(0, 1), 5);
    assert_eq!(stores.checkpoints(topic).len(), 1);
    stores.aggregator(slot).expect("held").advance(1_000);
    assert_eq!(stores.checkpoints(topic).len(), 1);
    assert!(stores.checkpoints(topic).is_empty());
    assert_eq!(other.arrival(src(0, 1), 3), Arrival::Applied);
    assert_eq!(other.arrival(src(0, 1), 5), Arrival::Next);
    assert_eq!(other.arrival(src(0, 1), 9), Arrival::Gap);
    // Orders of the same partition were never read: anything is next.
    assert_eq!(other.arrival(src(1, 1), 9), Arrival::Next);

    let mut refused = Stores::new(
        AggregatorConfig {
            window_ms: 1_000,
            ..AggregatorConfig::default()
        },
        1,
        "USD",
        10,
    );
    let loaded = refused.load(slot, Some(&checkpoints[0]), topic);
    assert!(matches!(loaded, Loaded::Refused(_)), "{loaded:?}");
    assert!(refused.holds(slot));
}
