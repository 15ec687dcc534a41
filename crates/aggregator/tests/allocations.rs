//! Heap allocations on the per-event path, counted by a global allocator.
//! Decoding: an event's strings of at most 24 bytes (visitor and session
//! ids, hosts, paths, campaign fields) are held inline, and its campaign is
//! boxed only when it has one. The aggregator: once the state an event
//! touches exists (its visitor's open session, the page, this minute's
//! windows), pushing and releasing the event allocates nothing. New state
//! (a session, a cart, a window) allocates when it is made, not per event.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use aggregator::{Aggregator, AggregatorConfig, Position, Source};
use common::T0;
use contract::{Decoder, Event, EventKind, Stream};

/// The system allocator, counting the allocations and reallocations of
/// each thread (tests run side by side in threads of one process).
struct Counting;

thread_local! {
    // A const-initialised `Cell` has no destructor to register, so the
    // allocator may touch it from any allocation.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

/// Allocations this thread has made so far.
fn allocated() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A storefront page view as `../shared/bench` and tracking libraries send
/// it: ids, a signed-in user, a session, the URL's `query`, a referrer.
fn page_view_json(event_id: &str, query: &str) -> String {
    format!(
        r#"{{"event_id":"{event_id}","type":"page_view","timestamp":"2024-03-01T00:00:08.623Z","anonymous_id":"anon-0000151789","user_id":"user-2198640","session_id":"sess-0000151789-0","context":{{"device":"desktop","page":{{"url":"https://shop.example.com/c/books{query}","referrer":"https://duckduckgo.com/","title":"Shop - books"}}}}}}"#
    )
}

/// Allocations of decoding `json` (the event is dropped after counting).
fn decode_allocations(json: &str) -> u64 {
    let decoder = Decoder::default();
    let before = allocated();
    let event = decoder
        .decode(json.as_bytes(), Stream::Clickstream, None)
        .expect("valid");
    let after = allocated();
    let page = event.page.as_ref().expect("a page view has its page");
    assert_eq!(
        (page.host.as_str(), page.path.as_str()),
        ("shop.example.com", "/c/books")
    );
    assert_eq!(page.referrer_host.as_deref(), Some("duckduckgo.com"));
    let utm = json.contains("utm_source");
    let source = event.campaign().source.as_deref();
    assert_eq!(source, utm.then_some("newsletter"));
    after - before
}

#[test]
fn decoding_allocates_only_for_a_long_id_and_a_campaign() {
    let utm = "?utm_source=newsletter&utm_medium=email";
    let (short, long) = ("e-151789-0", "04e6cdfb-3568-4746-bb21-cdb99f21a56a");
    assert_eq!(decode_allocations(&page_view_json(short, "")), 0);
    let id = decode_allocations(&page_view_json(long, ""));
    assert_eq!(id, 1, "the 36-byte event id");
    let campaign = decode_allocations(&page_view_json(short, utm));
    assert_eq!(campaign, 1, "the campaign's box");
    assert_eq!(decode_allocations(&page_view_json(long, utm)), 2);
}

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
/// the heap allocations that took (the events are built and boxed before
/// counting, as the pipeline decodes them into boxes).
fn allocations(agg: &mut Aggregator, from: usize, to: usize) -> u64 {
    let events: Vec<Box<Event>> = (from..to).map(|n| Box::new(page_view(n))).collect();
    let before = allocated();
    for (n, e) in (from..to).zip(events) {
        let pos = Position {
            source: Source::new(0, 0),
            offset: n as i64,
        };
        agg.push(e, pos).expect("accepted");
    }
    let out = agg.advance(T0 + to as i64);
    let after = allocated();
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
