//! Unit tests of the sessionizer: the compact open session and its checkpoint layout.

use super::*;

/// The layout checkpoints were written in before `Open` was compacted.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct EarlierOpen {
    row: SessionRow,
    storefront_id: Option<String>,
    engaged: bool,
    held: Vec<(Source, i64)>,
    queued_at: i64,
}

fn event(json: &str) -> Event {
    contract::Decoder::default()
        .decode(json.as_bytes(), contract::Stream::Clickstream, None)
        .expect("valid")
}

fn page_view(id: u32, visitor: &str, ts: i64, session: Option<&str>) -> Event {
    let session = session.map_or(String::new(), |s| format!(r#""session_id":"{s}","#));
    event(&format!(
        r#"{{"event_id":"e{id}","type":"page_view","timestamp":{ts},"anonymous_id":"{visitor}",{session}"context":{{"page":{{"url":"https://shop.example/p{id}"}}}}}}"#
    ))
}

#[test]
fn an_open_session_fits_the_192_byte_size_class() {
    assert_size_at_most!(Open, 192);
}

#[test]
fn open_sessions_keep_the_checkpoint_layout() {
    let mut s = Sessionizer::new(&AggregatorConfig::default());
    let mut held = HeldOffsets::default();
    let t = 1_700_000_000_000;
    let at = |partition, offset| Position {
        source: Source {
            stream: partition as u8,
            partition,
        },
        offset,
    };
    // The storefront's id from the start; one that comes later; none.
    s.apply(
        &page_view(1, "a", t, Some("sa")),
        at(0, 10),
        &mut held,
        usize::MAX,
    );
    s.apply(
        &page_view(2, "b", t, None),
        at(0, 11),
        &mut held,
        usize::MAX,
    );
    s.apply(
        &page_view(3, "b", t + 1, Some("sb")),
        at(1, 5),
        &mut held,
        usize::MAX,
    );
    s.apply(
        &page_view(4, "c", t, None),
        at(0, 12),
        &mut held,
        usize::MAX,
    );
    let want = [
        ("a", Some("sa"), vec![(at(0, 0).source, 10)]),
        (
            "b",
            Some("sb"),
            vec![(at(0, 0).source, 11), (at(1, 0).source, 5)],
        ),
        ("c", None, vec![(at(0, 0).source, 12)]),
    ];
    for (visitor, storefront_id, want_held) in want {
        let open = s.open.get(s.open.key(visitor)).expect("open");
        let bytes = postcard::to_allocvec(open).expect("encodes");
        let earlier: EarlierOpen = postcard::from_bytes(&bytes).expect("earlier layout");
        assert_eq!(earlier.storefront_id.as_deref(), storefront_id, "{visitor}");
        assert_eq!(earlier.held, want_held, "{visitor}");
        assert_eq!(earlier.row, open.row(false));
        // Checkpoints written before read back the same.
        let back: Open = postcard::from_bytes(&postcard::to_allocvec(&earlier).expect("encodes"))
            .expect("reads the earlier layout");
        let back_id = back.storefront_id().map(ToString::to_string);
        assert_eq!(back_id.as_deref(), storefront_id, "{visitor}");
        assert_eq!(postcard::to_allocvec(&back).expect("encodes"), bytes);
    }
}
