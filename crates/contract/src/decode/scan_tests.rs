//! The one-pass reader against serde_json: where it reads a message, it
//! reads the same fields as serde_json; where serde_json rejects one, it
//! leaves it to serde_json; and it does read the shapes storefronts send.

use crate::decode::raw::Envelope;
use crate::decode::scan;
use crate::{Decoder, Stream};

/// Messages of every shape the decoder meets: each event type, pretty
/// printed, nulls and empty strings, unknown fields of every JSON type,
/// and the edge cases of JSON's grammar.
const CORPUS: &[&str] = &[
    r#"{"event_id":"04e6cdfb-3568-4746-bb21-cdb99f21a56a","type":"page_view","timestamp":"2024-03-01T00:00:08.623Z","anonymous_id":"anon-0000151789","user_id":"user-2198640","session_id":"sess-0000151789-0","context":{"device":"desktop","page":{"url":"https://shop.example.com/c/books?utm_source=newsletter&utm_medium=email","referrer":"https://duckduckgo.com/","title":"Shop - books"}}}"#,
    r#"{"event_id":"e2","type":"page_view","timestamp":1569888005000,"sent_at":"2019-10-01T00:00:06+02:00","anonymous_id":"a","user_id":null,"session_id":"","context":{"page":{"url":"/","referrer":""},"campaign":{"source":"News","medium":null,"name":""},"experiment":{"id":"x1","variant":"B"},"device":"mobile"}}"#,
    " \n{ \"event_id\" : \"e3\" ,\r\n\t\"type\":\"product_view\", \"timestamp\" : 1569888005000 , \"anonymous_id\":\"é∂\",\n \"properties\" : { \"product\" : { \"product_id\" : \"p\" , \"price\" : \"9.99\" , \"category\" : \"x\" } } } \n",
    r#"{"event_id":"e4","type":"add_to_cart","timestamp":1569888005000,"anonymous_id":"a","properties":{"cart_id":"c","currency":"EUR","product":{"product_id":"p","price":9.99,"quantity":"2"}}}"#,
    r#"{"event_id":"e5","type":"order_placed","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","total":-0.5e+10,"products":[{"product_id":"p","price":1E2,"quantity":3},null,[],{}],"currency":"USD"}}"#,
    r#"{"event_id":"e6","type":"survey_response","timestamp":0,"anonymous_id":"a","properties":{"survey":"csat","score":4.5,"scale_max":5}}"#,
    r#"{"event_id":"e7","type":"ad_spend","timestamp":1569888005000,"anonymous_id":"a","properties":{"channel":"Paid Search","amount":"100.00","period_start":"2019-10-01T00:00:00Z","period_end":"2019-10-02T00:00:00Z","campaign":null}}"#,
    r#"{"event_id":"e8","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":5,"value":true,"referral_code":false}}"#,
    r#"{"extra":{"a":[1,2,{"b":null}],"c":true,"d":-0.0,"e":[[[]]]},"event_id":"e9","extra":"twice","type":"checkout_started","timestamp":1569888005000,"anonymous_id":"a","properties":{"cart_id":"c","value":"19.98","other":{"x":[true,false,null,"s",0.1]}}}"#,
    r#"{"event_id":"e10","type":"page_view","timestamp":1569888005000,"anonymous_id":"a","context":{"page":[],"campaign":"","experiment":null,"device":""}}"#,
    r#"{"event_id":"e11","type":"page_view","timestamp":1569888005000,"anonymous_id":"a","context":{"page":"x","campaign":[1,{"a":2}],"experiment":true}}"#,
    r#"{"event_id":"e12","context":false,"properties":[],"type":"signup","timestamp":1569888005000,"anonymous_id":"a"}"#,
    r#"{"event_id":"e13","type":"product_view","timestamp":1569888005000,"anonymous_id":"a","properties":{"product":""}}"#,
    r#"{"event_id":"e14","type":"product_view","timestamp":1569888005000,"anonymous_id":"a","properties":{"product":null}}"#,
    r#"{"event_id":"e15","context":{},"properties":{}}"#,
    r#"{}"#,
    // Keys that extend or start a known one, and a known key too near the
    // end to compare as words.
    r#"{"event_idx":"a","event_id":"b","typ":1,"types":2,"type":"page_view"}"#,
    r#"{"x":0,"type":"y"}"#,
    // Left to serde_json: an escape, a number where an object goes (out of
    // f64's range here), a repeated field, deep nesting, a control
    // character, and errors.
    r#"{"event_id":"\u00e9","type":"page_view"}"#,
    r#"{"event_id":"e","context":1e999}"#,
    r#"{"event_id":"e","context":5}"#,
    r#"{"event_id":"e","event_id":"f"}"#,
    r#"{"event_id":"e","context":{"device":"a","device":"b"}}"#,
    r#"{"x":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}"#,
    "{\"event_id\":\"a\tb\"}",
    r#"{"event_id":"e",}"#,
    r#"{"event_id":"e"} x"#,
    r#"{"event_id":01}"#,
    r#"{"total":1.}"#,
    r#"{"total":.5}"#,
    r#"{"total":1e}"#,
    r#"{"total":-}"#,
    r#"{"user_id":nul}"#,
    r#"["e","page_view"]"#,
    r#""text""#,
    r#"null"#,
    r#"{"a":[1,]}"#,
    r#"{"a" 1}"#,
    r#"{"a":{1:2}}"#,
];

/// Bytes a mutation puts in: JSON's structure, digits, escapes, control
/// characters, and a multi-byte character's first byte.
const BYTES: &[u8] = b"\"\\{}[],: 0-1e.ntfu\x01\t\xc3x";

fn serde(text: &str) -> Option<Envelope<'_>> {
    serde_json::from_str(text).ok()
}

fn envelope(text: &str) -> Option<Envelope<'_>> {
    let mut env = Envelope::default();
    scan::envelope(text, &mut env).map(|()| env)
}

/// The reader's envelope, if it reads `text`, equals serde_json's, and the
/// decoder gives the same event or rejection on every topic either way.
fn check(text: &str) -> bool {
    let d = Decoder::default();
    for stream in [Stream::Clickstream, Stream::Orders, Stream::Spend] {
        let (fast, slow) = (
            d.decode(text.as_bytes(), stream, Some(1_569_888_000_000)),
            d.decode_by_serde_json(text.as_bytes(), stream, Some(1_569_888_000_000)),
        );
        assert_eq!(fast, slow, "{text:?}");
    }
    match envelope(text) {
        None => false,
        Some(fast) => {
            let slow = serde(text);
            assert_eq!(Some(&fast), slow.as_ref(), "{text:?}");
            true
        }
    }
}

#[test]
fn it_reads_what_storefronts_send_as_serde_json_does() {
    let read = CORPUS.iter().filter(|t| check(t)).count();
    // The first eighteen hold no escape, repeat, deep nesting or error.
    for text in &CORPUS[..18] {
        assert!(envelope(text).is_some(), "not read: {text}");
    }
    assert_eq!(read, 18, "only the clean messages are read");
}

#[test]
fn every_mutation_is_read_as_serde_json_reads_it_or_left_to_it() {
    let mut read = 0;
    let mut total = 0;
    for text in CORPUS {
        let bytes = text.as_bytes();
        for at in 0..=bytes.len() {
            let mut mutants = vec![[&bytes[..at], &bytes[(at + 1).min(bytes.len())..]].concat()];
            for &b in BYTES {
                mutants.push([&bytes[..at], &[b], &bytes[at..]].concat());
                if at < bytes.len() {
                    mutants.push([&bytes[..at], &[b], &bytes[at + 1..]].concat());
                }
            }
            mutants.push(bytes[..at].to_vec());
            for m in mutants {
                let Ok(m) = std::str::from_utf8(&m) else {
                    continue;
                };
                total += 1;
                read += usize::from(check(m));
            }
        }
    }
    // Many mutants stay valid (a digit for a digit, a space added).
    assert!(read > total / 10, "read {read} of {total}");
}
