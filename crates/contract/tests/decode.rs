//! The decoder accepts every type of the contract and names the reason for each rejection.

use contract::{Decoder, Device, EventKind, Reason, Stream, EVENT_TYPES, JSON_SCHEMA};

fn decode(json: &str, stream: Stream) -> Result<contract::Event, contract::Invalid> {
    Decoder::default().decode(json.as_bytes(), stream, None)
}

fn reason(json: &str, stream: Stream) -> Reason {
    decode(json, stream).expect_err(json).reason
}

const PAGE: &str = r#"{"event_id":"e1","type":"page_view","timestamp":"2019-10-01T00:00:05Z","anonymous_id":"a1",
  "session_id":"s1","context":{"page":{"url":"https://shop.example/p/42?utm_source=Newsletter&utm_medium=Email&utm_campaign=spring%20sale#x",
  "referrer":"https://www.Google.com/search?q=x"},"device":"mobile","experiment":{"id":"exp1","variant":"B"}}}"#;

#[test]
fn page_view_carries_path_campaign_and_referrer() {
    let e = decode(PAGE, Stream::Clickstream).unwrap();
    assert_eq!(e.event_id, "e1");
    assert_eq!(e.timestamp_ms, 1_569_888_005_000);
    assert_eq!(e.session_id.as_deref(), Some("s1"));
    let page = e.page.as_ref().expect("a page");
    assert_eq!(page.path, "/p/42");
    assert_eq!(page.host, "shop.example");
    assert_eq!(page.referrer_host.as_deref(), Some("www.google.com"));
    assert_eq!(e.campaign().source.as_deref(), Some("newsletter"));
    assert_eq!(e.campaign().medium.as_deref(), Some("email"));
    assert_eq!(e.campaign().name.as_deref(), Some("spring sale"));
    assert_eq!(e.device, Device::Mobile);
    assert_eq!(e.experiment.unwrap().variant, "B");
    assert_eq!(e.kind, EventKind::PageView);
}

#[test]
fn context_campaign_overrides_url_parameters() {
    let json = r#"{"event_id":"e","type":"page_view","timestamp":1569888005000,"anonymous_id":"a",
      "context":{"page":{"url":"/?utm_source=a&gclid=1"},"campaign":{"source":"B"}}}"#;
    let e = decode(json, Stream::Clickstream).unwrap();
    assert_eq!(e.campaign().source.as_deref(), Some("b"));
    assert!(e.campaign().click_id);
}

#[test]
fn money_is_exact_from_numbers_and_strings() {
    let json = r#"{"event_id":"o","type":"order_placed","timestamp":1569888005000,"anonymous_id":"a",
      "properties":{"order_id":"o1","total":"1234567.89","currency":"usd",
      "products":[{"product_id":"p","price":0.1,"quantity":3},{"product_id":"q","price":"35.79"}]}}"#;
    match decode(json, Stream::Orders).unwrap().kind {
        EventKind::OrderPlaced {
            total, products, ..
        } => {
            assert_eq!(total.minor, 123_456_789);
            assert_eq!(products[0].price.minor, 10);
            assert_eq!(products[0].quantity, 3);
            assert_eq!(products[1].price.minor, 3579);
            assert_eq!(products[1].quantity, 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn clock_skew_is_corrected_from_sent_at_and_kafka_time() {
    // The client clock is 2 hours behind: sent_at says 00:00:10, Kafka says 02:00:10.
    let json = r#"{"event_id":"e","type":"signup","timestamp":"2019-10-01T00:00:05Z",
      "sent_at":"2019-10-01T00:00:10Z","anonymous_id":"a"}"#;
    let kafka = 1_569_888_010_000 + 7_200_000;
    let e = Decoder::default()
        .decode(json.as_bytes(), Stream::Clickstream, Some(kafka))
        .unwrap();
    assert_eq!(e.timestamp_ms, 1_569_888_005_000 + 7_200_000);
    // Within the threshold nothing changes.
    let e = Decoder::default()
        .decode(
            json.as_bytes(),
            Stream::Clickstream,
            Some(1_569_888_012_000),
        )
        .unwrap();
    assert_eq!(e.timestamp_ms, 1_569_888_005_000);
}

#[test]
fn every_type_decodes_on_its_topic() {
    let cases = [
        (
            r#""product_view","properties":{"product":{"product_id":"p","price":"9.99","category":"x"}}"#,
            Stream::Clickstream,
        ),
        (
            r#""add_to_cart","properties":{"cart_id":"c","product":{"product_id":"p","price":9.99,"quantity":2}}"#,
            Stream::Clickstream,
        ),
        (
            r#""remove_from_cart","properties":{"cart_id":"c","product":{"product_id":"p","price":9.99}}"#,
            Stream::Clickstream,
        ),
        (
            r#""checkout_started","properties":{"cart_id":"c","value":"19.98"}"#,
            Stream::Clickstream,
        ),
        (
            r#""signup","properties":{"method":"email"}"#,
            Stream::Clickstream,
        ),
        (
            r#""referral_sent","properties":{"referral_code":"R1"}"#,
            Stream::Clickstream,
        ),
        (
            r#""survey_response","properties":{"survey":"nps","score":9}"#,
            Stream::Clickstream,
        ),
        (
            r#""survey_response","properties":{"survey":"csat","score":4,"scale_max":5}"#,
            Stream::Clickstream,
        ),
        (
            r#""order_paid","properties":{"order_id":"o"}"#,
            Stream::Orders,
        ),
        (
            r#""order_cancelled","properties":{"order_id":"o"}"#,
            Stream::Orders,
        ),
        (
            r#""order_refunded","properties":{"order_id":"o","amount":"5"}"#,
            Stream::Orders,
        ),
        (
            r#""ad_spend","properties":{"channel":"Paid Search","amount":"100.00","period_start":"2019-10-01T00:00:00Z","period_end":"2019-10-02T00:00:00Z"}"#,
            Stream::Spend,
        ),
    ];
    for (rest, stream) in cases {
        let json = format!(
            r#"{{"event_id":"e","timestamp":1569888005000,"anonymous_id":"a","type":{rest}}}"#
        );
        let e = decode(&json, stream).unwrap_or_else(|err| panic!("{json}: {err}"));
        assert!(json.contains(e.kind.type_name()));
    }
}

#[test]
fn each_rejection_names_its_reason() {
    let cs = Stream::Clickstream;
    let base = |extra: &str| {
        format!(
            r#"{{"event_id":"e","type":"signup","timestamp":1569888005000,"anonymous_id":"a"{extra}}}"#
        )
    };
    assert_eq!(reason("{not json", cs), Reason::NotJson);
    assert_eq!(
        Decoder::default()
            .decode(&[0xff, 0xfe], cs, None)
            .unwrap_err()
            .reason,
        Reason::NotJson
    );
    assert_eq!(reason("[1,2,3]", cs), Reason::NotObject);
    assert_eq!(reason("\"text\"", cs), Reason::NotObject);
    assert_eq!(
        reason(r#"{"type":"signup","timestamp":1,"anonymous_id":"a"}"#, cs),
        Reason::MissingField
    );
    assert_eq!(
        reason(
            r#"{"event_id":5,"type":"signup","timestamp":1569888005000,"anonymous_id":"a"}"#,
            cs
        ),
        Reason::WrongType
    );
    assert_eq!(
        reason(
            r#"{"event_id":"","type":"signup","timestamp":1569888005000,"anonymous_id":"a"}"#,
            cs
        ),
        Reason::MissingField
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"teleport","timestamp":1569888005000,"anonymous_id":"a"}"#,
            cs
        ),
        Reason::UnknownType
    );
    assert_eq!(reason(&base(""), Stream::Orders), Reason::WrongTopic);
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"signup","timestamp":"yesterday","anonymous_id":"a"}"#,
            cs
        ),
        Reason::BadTimestamp
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"signup","timestamp":12,"anonymous_id":"a"}"#,
            cs
        ),
        Reason::BadTimestamp
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":-3}}"#,
            Stream::Orders
        ),
        Reason::BadAmount
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":"1e99"}}"#,
            Stream::Orders
        ),
        Reason::BadAmount
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":"1","currency":"XTS"}}"#,
            Stream::Orders
        ),
        Reason::BadCurrency
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"survey_response","timestamp":1569888005000,"anonymous_id":"a","properties":{"survey":"nps","score":11}}"#,
            cs
        ),
        Reason::OutOfRange
    );
    assert_eq!(
        reason(&base(r#","context":{"device":"toaster"}"#), cs),
        Reason::OutOfRange
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"page_view","timestamp":1569888005000,"anonymous_id":"a"}"#,
            cs
        ),
        Reason::MissingField
    );
    let huge = base(&format!(r#","pad":"{}""#, "x".repeat(70_000)));
    assert_eq!(reason(&huge, cs), Reason::Oversized);
}

#[test]
fn unknown_fields_and_nulls_are_ignored() {
    let json = r#"{"event_id":"e","type":"signup","timestamp":1569888005000,"anonymous_id":"a",
      "user_id":null,"extra":{"deep":[1,2]},"context":{"page":null}}"#;
    let e = decode(json, Stream::Clickstream).unwrap();
    assert_eq!(e.user_id, None);
    assert_eq!(e.page, None);
}

#[test]
fn no_input_panics_the_decoder() {
    let d = Decoder::default();
    let seeds: [&[u8]; 6] = [
        PAGE.as_bytes(),
        b"{}",
        b"null",
        b"{\"event_id\":\"\\ud800\"}",
        b"",
        b"{\"a\":1e999999}",
    ];
    for seed in seeds {
        for cut in 0..seed.len().min(400) {
            let _ = d.decode(&seed[..cut], Stream::Clickstream, Some(0));
            let mut flipped = seed.to_vec();
            flipped[cut] ^= 0x20;
            let _ = d.decode(&flipped, Stream::Orders, Some(i64::MAX));
        }
    }
}

#[test]
fn schema_lists_every_type() {
    let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    let listed = &schema["properties"]["type"]["enum"];
    for t in EVENT_TYPES {
        assert!(
            listed.as_array().unwrap().iter().any(|v| v == t),
            "{t} missing from schema"
        );
    }
}

#[test]
fn escaped_and_plain_strings_decode_alike_and_lengths_count_characters() {
    // Strings without escapes are borrowed, with escapes unescaped: same text.
    let plain = r#"{"event_id":"é1","type":"page_view","timestamp":"2019-10-01T00:00:05Z","anonymous_id":"a/b","context":{"page":{"url":"/p"}}}"#;
    let escaped = r#"{"event_id":"\u00e91","type":"page_view","timestamp":"2019-10-01T00:00:05\u005a","anonymous_id":"a\/b","context":{"page":{"url":"\/p"}}}"#;
    let (p, e) = (
        decode(plain, Stream::Clickstream).unwrap(),
        decode(escaped, Stream::Clickstream).unwrap(),
    );
    assert_eq!(p, e);
    assert_eq!(p.event_id, "é1");
    assert_eq!(p.page.unwrap().path, "/p");
    // 128 two-byte characters (256 bytes) fit the 128-character limit; 129 do not.
    let id = |n: usize| {
        format!(
            r#"{{"event_id":"{}","type":"page_view","timestamp":1569888005000,"anonymous_id":"a","context":{{"page":{{"url":"/"}}}}}}"#,
            "é".repeat(n)
        )
    };
    assert!(decode(&id(128), Stream::Clickstream).is_ok());
    assert_eq!(reason(&id(129), Stream::Clickstream), Reason::WrongType);
    assert_eq!(
        reason(
            r#"{"event_id":"","type":"page_view","timestamp":1569888005000,"anonymous_id":"a","context":{"page":{"url":"/"}}}"#,
            Stream::Clickstream
        ),
        Reason::MissingField
    );
}

#[test]
fn a_product_that_is_absent_null_or_not_an_object_is_rejected_by_name() {
    let event = |kind: &str, product: &str| {
        format!(
            r#"{{"event_id":"e","type":"{kind}","timestamp":1569888005000,"anonymous_id":"a",
              "properties":{{"cart_id":"c1"{product}}}}}"#
        )
    };
    for kind in ["product_view", "add_to_cart", "remove_from_cart"] {
        for (product, want) in [
            ("", Reason::MissingField),
            (r#","product":null"#, Reason::MissingField),
            (r#","product":"p1""#, Reason::WrongType),
            (r#","product":[{"product_id":"p1"}]"#, Reason::WrongType),
        ] {
            let err = decode(&event(kind, product), Stream::Clickstream).expect_err(product);
            assert_eq!((err.reason, err.field), (want, Some("properties.product")));
        }
        let ok = event(
            kind,
            r#","product":{"product_id":"p1","price":"12.50","quantity":2}"#,
        );
        decode(&ok, Stream::Clickstream).expect("a product object decodes");
    }
}

/// What browsers and tracking libraries send for what they do not have: an
/// empty string. Every optional field takes it as absent; a required one
/// names itself as missing.
#[test]
fn empty_optional_strings_mean_absent_in_every_optional_field() {
    let direct = r#"{"event_id":"e","type":"page_view","timestamp":1569888005000,"anonymous_id":"a",
      "user_id":"","session_id":"","sent_at":"",
      "context":{"page":{"url":"https://shop.example/","referrer":"","title":""},"device":"",
        "campaign":{"source":"","medium":"","name":""},"experiment":{"id":"","variant":""}}}"#;
    let e = decode(direct, Stream::Clickstream).expect("a direct visit with empty fields");
    assert_eq!(e.user_id, None);
    assert_eq!(e.session_id, None);
    assert_eq!(e.page.as_ref().unwrap().referrer_host, None);
    assert_eq!(e.device, Device::Unknown);
    assert_eq!(e.campaign, None, "no campaign");
    assert!(e.experiment.is_none());

    let order = r#"{"event_id":"o","type":"order_placed","timestamp":1569888005000,"anonymous_id":"a",
      "user_id":"","context":"","properties":{"order_id":"o1","cart_id":"","currency":"","coupon":"",
      "referral_code":"","total":"10.00","products":[{"product_id":"p","price":"10.00","quantity":"","category":""}]}}"#;
    match decode(order, Stream::Orders)
        .expect("an order with empty optionals")
        .kind
    {
        EventKind::OrderPlaced {
            cart_id,
            referral_code,
            total,
            products,
            ..
        } => {
            assert_eq!((cart_id, referral_code), (None, None));
            assert_eq!(
                total.currency.as_str(),
                "USD",
                "empty currency is the default"
            );
            assert_eq!(products[0].quantity, 1);
        }
        other => panic!("{other:?}"),
    }
    let view = r#"{"event_id":"v","type":"product_view","timestamp":1569888005000,"anonymous_id":"a",
      "properties":{"product":{"product_id":"p","price":"","category":""}}}"#;
    match decode(view, Stream::Clickstream).unwrap().kind {
        EventKind::ProductView { product } => {
            assert_eq!((product.price, product.category), (None, None))
        }
        other => panic!("{other:?}"),
    }
    let spend = r#"{"event_id":"s","type":"ad_spend","timestamp":1569888005000,"anonymous_id":"m",
      "properties":{"channel":"Email","campaign":"","amount":"5","period_start":"2019-10-01T00:00:00Z","period_end":"2019-10-02T00:00:00Z"}}"#;
    match decode(spend, Stream::Spend).unwrap().kind {
        EventKind::AdSpend { campaign, .. } => assert_eq!(campaign, None),
        other => panic!("{other:?}"),
    }
    // Required fields given as "" are missing, by name.
    for (json, stream, field) in [
        (
            r#"{"event_id":"e","type":"order_paid","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":""}}"#,
            Stream::Orders,
            "properties.order_id",
        ),
        (
            r#"{"event_id":"e","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":""}}"#,
            Stream::Orders,
            "properties.amount",
        ),
        (
            r#"{"event_id":"e","type":"signup","timestamp":"","anonymous_id":"a"}"#,
            Stream::Clickstream,
            "timestamp",
        ),
        (
            r#"{"event_id":"e","type":"signup","timestamp":1569888005000,"anonymous_id":""}"#,
            Stream::Clickstream,
            "anonymous_id",
        ),
    ] {
        let err = decode(json, stream).expect_err(json);
        assert_eq!((err.reason, err.field), (Reason::MissingField, Some(field)));
    }
}

/// Order histories reach back before 2000; the accepted range is a setting
/// whose default (from 1990) still catches epoch seconds sent as milliseconds.
#[test]
fn old_histories_are_accepted_and_the_range_is_a_setting() {
    let at = |ts: &str| {
        format!(
            r#"{{"event_id":"e","type":"order_paid","timestamp":{ts},"anonymous_id":"a","properties":{{"order_id":"o"}}}}"#
        )
    };
    let e = decode(&at(r#""1997-03-14T10:00:00Z""#), Stream::Orders).expect("1997 is accepted");
    assert_eq!(e.timestamp_ms, 858_333_600_000);
    decode(&at("858333600000"), Stream::Orders).expect("1997 as epoch ms");
    // 2019-10-01 in epoch seconds reads as January 1970: rejected, naming the settings.
    let err = decode(&at("1569888005"), Stream::Orders).expect_err("seconds as ms");
    assert_eq!(err.reason, Reason::BadTimestamp);
    assert!(
        err.detail.contains("contract.earliest_event_time"),
        "{}",
        err.detail
    );
    let opts = contract::DecodeOptions {
        earliest_ms: contract::time::parse_rfc3339("1960-01-01T00:00:00Z").unwrap(),
        ..contract::DecodeOptions::default()
    };
    let e = Decoder::new(opts)
        .decode(
            at(r#""1965-06-01T00:00:00Z""#).as_bytes(),
            Stream::Orders,
            None,
        )
        .expect("an earlier range admits 1965");
    assert!(e.timestamp_ms < 0);
    assert_eq!(
        reason(&at(r#""1965-06-01T00:00:00Z""#), Stream::Orders),
        Reason::BadTimestamp
    );
}

#[test]
fn a_rejection_carries_the_event_time_unless_the_time_is_at_fault() {
    let at = |json: &str, stream: Stream, kafka: Option<i64>| {
        let invalid = Decoder::default()
            .decode(json.as_bytes(), stream, kafka)
            .expect_err(json);
        (invalid.reason, invalid.event_ms)
    };
    let t = 1_569_888_005_000;
    let cs = Stream::Clickstream;
    // Rejected for something other than the time: the time comes along,
    // whichever field failed first.
    let refund = r#"{"event_id":"e","type":"order_refunded","timestamp":1569888005000,"anonymous_id":"a","properties":{"order_id":"o","amount":"1","currency":"XTS"}}"#;
    assert_eq!(
        at(refund, Stream::Orders, None),
        (Reason::BadCurrency, Some(t))
    );
    let teleport =
        r#"{"event_id":"e","type":"teleport","timestamp":1569888005000,"anonymous_id":"a"}"#;
    assert_eq!(at(teleport, cs, None), (Reason::UnknownType, Some(t)));
    let no_visitor = r#"{"event_id":"e","type":"signup","timestamp":"2019-10-01T00:00:05Z"}"#;
    assert_eq!(at(no_visitor, cs, None), (Reason::MissingField, Some(t)));
    let signup = r#"{"event_id":"e","type":"signup","timestamp":1569888005000,"anonymous_id":"a"}"#;
    assert_eq!(
        at(signup, Stream::Orders, None),
        (Reason::WrongTopic, Some(t))
    );
    // The time carried is the one an accepted event would get: corrected
    // for a client clock two hours behind.
    let skewed = r#"{"event_id":"e","type":"teleport","timestamp":"2019-10-01T00:00:05Z",
      "sent_at":"2019-10-01T00:00:10Z","anonymous_id":"a"}"#;
    let kafka = 1_569_888_010_000 + 7_200_000;
    assert_eq!(
        at(skewed, cs, Some(kafka)),
        (Reason::UnknownType, Some(t + 7_200_000))
    );
    // The time at fault, absent or unread: none.
    for (json, why) in [
        (
            r#"{"event_id":"e","type":"signup","timestamp":"yesterday","anonymous_id":"a"}"#,
            Reason::BadTimestamp,
        ),
        (
            r#"{"event_id":"e","type":"teleport","anonymous_id":"a"}"#,
            Reason::MissingField,
        ),
        (
            r#"{"event_id":"e","type":"signup","timestamp":"2150-01-01T00:00:05Z","anonymous_id":"a"}"#,
            Reason::BadTimestamp,
        ),
        (
            r#"{"event_id":"e","type":"teleport","timestamp":1569888005000,"sent_at":"soon","anonymous_id":"a"}"#,
            Reason::BadTimestamp,
        ),
        ("{not json", Reason::NotJson),
        ("[1569888005000]", Reason::NotObject),
    ] {
        assert_eq!(at(json, cs, None), (why, None), "{json}");
    }
}

#[test]
fn an_event_time_past_its_message_s_timestamp_is_the_message_s() {
    let time = |json: &str, kafka: Option<i64>| {
        Decoder::default()
            .decode(json.as_bytes(), Stream::Clickstream, kafka)
            .expect(json)
            .timestamp_ms
    };
    // The client's clock is a day fast and it sends no sent_at.
    let fast =
        r#"{"event_id":"e","type":"signup","timestamp":"2019-10-02T00:00:05Z","anonymous_id":"a"}"#;
    let kafka = 1_569_888_005_000; // 2019-10-01T00:00:05Z
    assert_eq!(time(fast, Some(kafka)), kafka);
    // A sent_at as fast as the timestamp: the skew correction already
    // brings it back.
    let both = r#"{"event_id":"e","type":"signup","timestamp":"2019-10-02T00:00:05Z",
      "sent_at":"2019-10-02T00:00:06Z","anonymous_id":"a"}"#;
    assert_eq!(time(both, Some(kafka + 1_000)), kafka);
    // A timestamp a day after its own sent_at, which agrees with the
    // broker: corrected, it is still a day ahead; the broker's time it is.
    let after_sent = r#"{"event_id":"e","type":"signup","timestamp":"2019-10-02T00:00:05Z",
      "sent_at":"2019-10-01T00:00:05Z","anonymous_id":"a"}"#;
    assert_eq!(time(after_sent, Some(kafka)), kafka);
    // Within the threshold (60 s), and in the past, the client's time
    // stands; without a broker timestamp there is nothing to compare with.
    assert_eq!(
        time(fast, Some(kafka + 86_400_000 - 59_000)),
        kafka + 86_400_000
    );
    let late =
        r#"{"event_id":"e","type":"signup","timestamp":"2019-09-20T00:00:05Z","anonymous_id":"a"}"#;
    assert_eq!(time(late, Some(kafka)), kafka - 11 * 86_400_000);
    assert_eq!(time(fast, None), kafka + 86_400_000);
    // Nor with one outside the accepted range (a producer that sets 0),
    // which corrects no skew either.
    assert_eq!(time(fast, Some(0)), kafka + 86_400_000);
    assert_eq!(time(both, Some(0)), kafka + 86_400_000);
}

#[test]
fn amounts_a_javascript_storefront_summed_in_floating_point_decode_to_their_cents() {
    let json = r#"{"event_id":"o","type":"order_placed","timestamp":1569888005000,"anonymous_id":"a",
      "properties":{"order_id":"o1","total":59.980000000000004,"currency":"USD",
      "products":[{"product_id":"p","price":"19.989999999999998","quantity":2},{"product_id":"q","price":20.000000000000004}]}}"#;
    match decode(json, Stream::Orders).unwrap().kind {
        EventKind::OrderPlaced {
            total, products, ..
        } => {
            assert_eq!(total.minor, 5998);
            assert_eq!(products[0].price.minor, 1999);
            assert_eq!(products[1].price.minor, 2000);
        }
        other => panic!("{other:?}"),
    }
    // A third decimal of a dollar is an amount, not noise: rejected.
    let finer = json.replace("59.980000000000004", "59.985");
    assert_eq!(reason(&finer, Stream::Orders), Reason::BadAmount);
}

#[test]
fn integers_written_as_floats_read_as_integers() {
    // pandas writes a column of floats: times and quantities end in `.0`.
    let json = r#"{"event_id":"c","type":"add_to_cart","timestamp":1569888005000.0,"anonymous_id":"a",
      "properties":{"cart_id":"c1","product":{"product_id":"p","price":"5.00","quantity":2.0}}}"#;
    let e = decode(json, Stream::Clickstream).unwrap();
    assert_eq!(e.timestamp_ms, 1_569_888_005_000);
    match e.kind {
        EventKind::AddToCart { line, .. } => assert_eq!(line.quantity, 2),
        other => panic!("{other:?}"),
    }
    let quoted = json.replace("2.0}", r#""3.00"}"#);
    match decode(&quoted, Stream::Clickstream).unwrap().kind {
        EventKind::AddToCart { line, .. } => assert_eq!(line.quantity, 3),
        other => panic!("{other:?}"),
    }
    // A fraction of a millisecond is truncated, as in RFC 3339 times.
    let sub_ms = json.replace("1569888005000.0", "1569888005000.75");
    assert_eq!(
        decode(&sub_ms, Stream::Clickstream).unwrap().timestamp_ms,
        1_569_888_005_000
    );
    // Half an item is not an item; an exponent form is not read.
    let half = json.replace("2.0}", "2.5}");
    assert_eq!(reason(&half, Stream::Clickstream), Reason::OutOfRange);
    let exp = json.replace("1569888005000.0", "1.569888005e12");
    assert_eq!(reason(&exp, Stream::Clickstream), Reason::BadTimestamp);
}

#[test]
fn an_ad_spend_period_of_dates_covers_its_last_day() {
    let spend = |start: &str, end: &str| {
        let json = format!(
            r#"{{"event_id":"s","type":"ad_spend","timestamp":1569888005000,"anonymous_id":"ads",
              "properties":{{"channel":"paid_search","amount":"70.00","period_start":{start},"period_end":{end}}}}}"#
        );
        Decoder::default().decode(json.as_bytes(), Stream::Spend, None)
    };
    let days = |start: &str, end: &str| match spend(start, end).expect("decodes").kind {
        EventKind::AdSpend {
            period_start_ms,
            period_end_ms,
            ..
        } => (
            period_start_ms,
            (period_end_ms - period_start_ms) / 86_400_000,
        ),
        other => panic!("{other:?}"),
    };
    let oct1 = 1_569_888_000_000;
    // A day's report, as ad platforms give it: the same start and end date.
    assert_eq!(days(r#""2019-10-01""#, r#""2019-10-01""#), (oct1, 1));
    assert_eq!(days(r#""2019-10-01""#, r#""2019-10-07""#), (oct1, 7));
    // Times keep their meaning: an end at midnight excludes that day.
    assert_eq!(
        days(r#""2019-10-01T00:00:00Z""#, r#""2019-10-02T00:00:00Z""#),
        (oct1, 1)
    );
    assert_eq!(days(r#""2019-10-01""#, "1570060800000"), (oct1, 2));
    // An end before its start, or a date that is not one, is rejected.
    let why = |s: &str, e: &str| spend(s, e).expect_err("rejected").reason;
    assert_eq!(
        why(r#""2019-10-02""#, r#""2019-10-01""#),
        Reason::OutOfRange
    );
    assert_eq!(
        why(r#""2019-02-30""#, r#""2019-03-01""#),
        Reason::BadTimestamp
    );
}
