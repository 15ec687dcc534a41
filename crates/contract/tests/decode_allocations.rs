//! Heap allocations of decoding, counted by a global allocator: an event's
//! strings of at most 24 bytes (visitor and session ids, hosts, paths,
//! campaign fields) are held inline, and its campaign is boxed only when it
//! has one. So a page view allocates for a 36-byte event id and for its
//! campaign, and one of short strings without a campaign not at all.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use contract::{Decoder, Stream};

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

/// A storefront page view as `../shared/bench` and tracking libraries send
/// it: ids, a signed-in user, a session, the URL's `query`, a referrer.
fn page_view(event_id: &str, query: &str) -> String {
    format!(
        r#"{{"event_id":"{event_id}","type":"page_view","timestamp":"2024-03-01T00:00:08.623Z","anonymous_id":"anon-0000151789","user_id":"user-2198640","session_id":"sess-0000151789-0","context":{{"device":"desktop","page":{{"url":"https://shop.example.com/c/books{query}","referrer":"https://duckduckgo.com/","title":"Shop - books"}}}}}}"#
    )
}

const UTM: &str = "?utm_source=newsletter&utm_medium=email";

/// Allocations of decoding `json` (the event is dropped after counting).
fn allocations(json: &str) -> u64 {
    let decoder = Decoder::default();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let event = decoder
        .decode(json.as_bytes(), Stream::Clickstream, None)
        .expect("valid");
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    let page = event.page.as_ref().expect("a page view has its page");
    assert_eq!(
        (page.host.as_str(), page.path.as_str()),
        ("shop.example.com", "/c/books")
    );
    let utm = json.contains("utm_source");
    let source = event.campaign().source.as_deref();
    assert_eq!(source, utm.then_some("newsletter"));
    assert_eq!(page.referrer_host.as_deref(), Some("duckduckgo.com"));
    after - before
}

#[test]
fn short_strings_are_inline_and_only_a_long_id_or_a_campaign_allocates() {
    let uuid = "04e6cdfb-3568-4746-bb21-cdb99f21a56a";
    let (short, long) = ("e-151789-0", uuid);
    assert_eq!(allocations(&page_view(short, "")), 0);
    assert_eq!(allocations(&page_view(long, "")), 1, "the 36-byte event id");
    assert_eq!(allocations(&page_view(short, UTM)), 1, "the campaign");
    assert_eq!(allocations(&page_view(long, UTM)), 2);
}
