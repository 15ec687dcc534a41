//! Heap allocations on the aggregator's per-event path, counted by a
//! global allocator: once the state an event touches exists (its visitor's
//! open session, the page, this minute's windows), pushing and releasing
//! the event allocates nothing. New state (a session, a cart, a window)
//! allocates when it is made, not per event.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use aggregator::{Aggregator, AggregatorConfig, Position, Source};
use common::T0;
use contract::{Event, EventKind};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const VISITORS: usize = 1_000;
const PAGES: usize = 10;

/// Page view `n` of the run: visitor `n % VISITORS` on page `n % PAGES`,
/// `n` ms after the minute's start, from a campaign.
fn page_view(n: usize) -> Event {
    let visitor = format!("visitor-{:04}", n % VISITORS);
    let mut e = common::event(
        &format!("event-{n:08}"),
        &visitor,
        T0 + n as i64,
        EventKind::PageView,
    );
    e.page = Some(common::page(&format!("/product/{}", n % PAGES)));
    e.campaign_mut().source = Some("newsletter".into());
    e.campaign_mut().medium = Some("email".into());
    e
}

/// Pushes events `from..to` and advances to the last one's time; returns
/// the heap allocations that took (the events are built before counting).
fn allocations(agg: &mut Aggregator, from: usize, to: usize) -> u64 {
    let events: Vec<Event> = (from..to).map(page_view).collect();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for (n, e) in (from..to).zip(events) {
        let pos = Position {
            source: Source::new(0, 0),
            offset: n as i64,
        };
        agg.push(e, pos).expect("accepted");
    }
    let out = agg.advance(T0 + to as i64);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(out.is_empty(), "nothing closes within the minute");
    drop(out);
    after - before
}

#[test]
fn events_of_open_sessions_on_pages_seen_allocate_nothing() {
    let mut agg = Aggregator::new(AggregatorConfig::default());
    // Every visitor opens a session and sees every page, four times over:
    // the buffers reach the size they keep, and the dedup set room for
    // the ids to come (in a live stream, ids leave it as fast as they come
    // once its horizon has passed).
    let warm = 4 * VISITORS * PAGES;
    assert!(allocations(&mut agg, 0, warm) > 0, "the state was made");
    assert_eq!(agg.open_sessions(), VISITORS);
    // Then as many events again, of the same sessions and pages, in the
    // same minute.
    let measured = VISITORS * PAGES;
    assert_eq!(allocations(&mut agg, warm, warm + measured), 0);
}
