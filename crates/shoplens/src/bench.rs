//! In-process throughput: decode + validate + every aggregate on the
//! generator's realistic mix, on one core, no I/O.

use std::time::Instant;

use aggregator::{Aggregator, AggregatorConfig, Position, Source};
use contract::Decoder;

use crate::generate::{GenConfig, Generator, Message};

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct BenchReport {
    /// Messages processed.
    pub messages: u64,
    /// Payload bytes processed.
    pub bytes: u64,
    /// Seconds spent decoding alone.
    pub decode_secs: f64,
    /// Seconds spent decoding and aggregating.
    pub total_secs: f64,
    /// Rows the aggregator produced.
    pub rows: u64,
    /// Peak resident memory of the process, bytes (Linux).
    pub peak_rss_bytes: u64,
}

/// A `/proc/self/status` memory field (`VmHWM`, `VmRSS`) in bytes (Linux).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Peak resident memory of the process.
fn peak_rss() -> u64 {
    proc_status_bytes("VmHWM")
}

/// Resident memory of the process now.
fn rss() -> u64 {
    proc_status_bytes("VmRSS")
}

/// The benchmark input: `messages` of the generator's realistic mix (a day
/// of traffic at 2,000 sessions a minute, with its invalid, duplicate and
/// bot share), in memory.
pub fn input(messages: usize) -> Vec<Message> {
    let gen = Generator::new(GenConfig {
        duration_ms: 24 * 3_600_000,
        sessions_per_minute: 2_000.0,
        ..GenConfig::default()
    });
    gen.take(messages).collect()
}

/// Decodes every message; returns how many were valid.
pub fn decode_all(decoder: &Decoder, input: &[Message]) -> u64 {
    input
        .iter()
        .map(|m| u64::from(decoder.decode(&m.payload, m.stream, None).is_ok()))
        .sum()
}

/// Decodes `m` and offers it to `agg` as message `offset` of partition 0
/// of its stream; returns its event time when it decodes.
pub fn offer(decoder: &Decoder, agg: &mut Aggregator, m: &Message, offset: usize) -> Option<i64> {
    // Decoded into a box, as the pipeline does.
    let e = decoder
        .decode(&m.payload, m.stream, None)
        .map(Box::new)
        .ok()?;
    let ts = e.timestamp_ms;
    let pos = Position {
        source: Source {
            stream: m.stream as u8,
            partition: 0,
        },
        offset: offset as i64,
    };
    let _ = agg.push(e, pos);
    Some(ts)
}

/// Decodes and aggregates every message, advancing the watermark to
/// `lateness_ms` behind the newest event every 10,000 messages as the
/// pipeline's ticks would, then to the end; returns the rows produced.
pub fn decode_and_aggregate(
    decoder: &Decoder,
    agg: &mut Aggregator,
    input: &[Message],
    lateness_ms: i64,
) -> u64 {
    let mut rows = 0u64;
    let mut max_seen = i64::MIN;
    let count = |out: &aggregator::Output| {
        (out.sessions.len() + out.session_windows.len() + out.pages.len() + out.carts.len()) as u64
    };
    for (i, m) in input.iter().enumerate() {
        if let Some(ts) = offer(decoder, agg, m, i) {
            max_seen = max_seen.max(ts);
        }
        if i % 10_000 == 9_999 {
            rows += count(&agg.advance(max_seen - lateness_ms));
        }
    }
    rows + count(&agg.advance(i64::MAX / 2))
}

/// The benchmark input from events as JSON lines (what `replay` reads: an
/// export, or `../shared/bench`'s events), routed to their topics as
/// `replay` routes them, at most `messages` of them.
pub fn input_from(lines: impl std::io::BufRead, messages: usize) -> std::io::Result<Vec<Message>> {
    let mut out = Vec::new();
    for line in lines.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            out.push(crate::replay::route(line.trim()));
        }
        if out.len() >= messages {
            break;
        }
    }
    Ok(out)
}

/// Generates `messages` messages in memory, then times decoding alone and
/// decoding plus aggregation ([`decode_and_aggregate`]).
pub fn run(messages: usize, cfg: AggregatorConfig, lateness_ms: i64) -> BenchReport {
    run_on(&input(messages), &Decoder::default(), cfg, lateness_ms)
}

/// Times decoding alone and decoding plus aggregation of `input` with
/// `decoder` (the configured contract, for an export's currencies).
pub fn run_on(
    input: &[Message],
    decoder: &Decoder,
    cfg: AggregatorConfig,
    lateness_ms: i64,
) -> BenchReport {
    let bytes = input.iter().map(|m| m.payload.len() as u64).sum();

    let started = Instant::now();
    std::hint::black_box(decode_all(decoder, input));
    let decode_secs = started.elapsed().as_secs_f64();

    let mut agg = Aggregator::new(cfg);
    let started = Instant::now();
    let rows = decode_and_aggregate(decoder, &mut agg, input, lateness_ms);
    let total_secs = started.elapsed().as_secs_f64();
    BenchReport {
        messages: input.len() as u64,
        bytes,
        decode_secs,
        total_secs,
        rows,
        peak_rss_bytes: peak_rss(),
    }
}

/// Memory held per open session: `n` visitors each open one session with
/// one page view (UUID-sized ids, a campaign URL, a referrer), applied
/// behind the watermark but inside the inactivity gap, so every session
/// stays open. The figure includes everything the aggregator keeps for
/// such a visitor: the open session, its page-exit state, the new-visitor
/// memory and the event id in the dedup set.
pub fn open_sessions(n: usize, mut cfg: AggregatorConfig) -> OpenSessions {
    // Every session stays open, whatever the configured bound.
    cfg.max_open_sessions = cfg.max_open_sessions.max(n);
    let decoder = Decoder::default();
    let before = rss();
    let mut agg = Aggregator::new(cfg);
    const START: i64 = 1_700_000_000_000;
    for i in 0..n {
        let ts = START + (i as i64) / 1_000;
        let json = format!(
            r#"{{"event_id":"{i:08x}-6c1e-4b7a-9f3e-0a1b2c3d4e5f","type":"page_view","timestamp":{ts},"anonymous_id":"{i:08x}-2f4d-4e8a-b1c2-d3e4f5a6b7c8","session_id":"{i:08x}-aaaa-4bbb-8ccc-dddddddddddd","context":{{"page":{{"url":"https://shop.example/products/{p}?utm_source=google&utm_medium=cpc&utm_campaign=autumn","referrer":"https://www.google.com/"}},"device":"mobile"}}}}"#,
            p = i % 5_000
        );
        if let Ok(e) = decoder.decode(json.as_bytes(), contract::Stream::Clickstream, None) {
            let pos = Position {
                source: Source {
                    stream: 0,
                    partition: 0,
                },
                offset: i as i64,
            };
            let _ = agg.push(e, pos);
        }
        if i % 10_000 == 9_999 {
            agg.advance(ts);
        }
    }
    agg.advance(START + (n as i64) / 1_000 + 1);
    let open = agg.open_sessions();
    let per = |rss: u64| rss.saturating_sub(before) as f64 / open.max(1) as f64;
    let as_is = per(rss());
    // Tables that grew freed their old arrays, which mimalloc keeps mapped
    // for its purge delay (a second): count only what the state holds.
    // SAFETY: asks the allocator to return freed memory; no pointer is
    // involved, and with another global allocator it frees nothing.
    unsafe { libmimalloc_sys::mi_collect(true) };
    let held = per(rss());
    std::hint::black_box(&agg);
    OpenSessions { open, held, as_is }
}

/// What [`open_sessions`] measured.
#[derive(Debug, Clone, Copy)]
pub struct OpenSessions {
    /// Sessions open at the end.
    pub open: usize,
    /// Resident bytes per open session that the state holds, once the
    /// allocator returned what was freed on the way.
    pub held: f64,
    /// Resident bytes per open session before that.
    pub as_is: f64,
}

/// What an end-to-end run measured.
#[derive(Debug, Clone, Copy)]
pub struct EndToEndReport {
    /// Messages pre-loaded into the topics.
    pub messages: u64,
    /// Seconds to produce them (the generator and the producer).
    pub produce_secs: f64,
    /// Seconds from pipeline start until every message was consumed.
    pub consume_secs: f64,
    /// Seconds from pipeline start until every session was written.
    pub settled_secs: f64,
    /// Sessions written.
    pub sessions: u64,
    /// Rows written to ClickHouse.
    pub rows: u64,
    /// Peak resident memory of this process, bytes.
    pub peak_rss_bytes: u64,
    /// Result delay (rows closed by the watermark to durable and counted),
    /// seconds: bucket upper bounds at the 50th and 99th percentile.
    pub delay_p50: f64,
    /// See `delay_p50`.
    pub delay_p99: f64,
    /// ClickHouse inserts made.
    pub inserts: u64,
    /// Highest consumer lag seen while the pipeline ran, messages.
    pub max_lag: i64,
    /// Seconds the ingest task spent in each phase until every message was
    /// consumed, in the order of `exporter::metrics::INGEST_PHASES`.
    pub phases: [f64; exporter::metrics::INGEST_PHASES.len()],
}

/// The upper bound of the bucket holding quantile `q` of `h`.
pub fn histogram_quantile(h: &prometheus::Histogram, q: f64) -> f64 {
    use prometheus::core::Metric;
    let m = h.metric();
    let hist = m.get_histogram();
    let want = q * hist.get_sample_count() as f64;
    hist.get_bucket()
        .iter()
        .find(|b| b.cumulative_count() as f64 >= want)
        .map_or(f64::INFINITY, |b| b.upper_bound())
}

/// Gives `settings` topics, a group and a database of their own, named
/// with `suffix`, and creates the topics.
async fn isolate(
    settings: &mut crate::Settings,
    suffix: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let t = &mut settings.kafka.topics;
    for name in [
        &mut t.clickstream,
        &mut t.orders,
        &mut t.spend,
        &mut t.dead_letter,
        &mut t.triggers,
        &mut t.customer_facts,
    ] {
        name.push_str(suffix);
    }
    settings.kafka.group_id.push_str(suffix);
    settings
        .clickhouse
        .database
        .push_str(&suffix.replace(['.', '-'], "_"));
    ingest::admin::create_topics(&settings.kafka, 4, 1).await?;
    Ok(())
}

/// The sum of `counter` over the input streams.
fn over_inputs(v: &prometheus::IntCounterVec) -> u64 {
    ["clickstream", "orders", "spend"]
        .iter()
        .map(|t| v.with_label_values(&[t]).get())
        .sum()
}

/// The consumer lag over the input streams, messages.
fn input_lag(metrics: &exporter::Metrics) -> i64 {
    ["clickstream", "orders", "spend"]
        .iter()
        .map(|t| metrics.consumer_lag.with_label_values(&[t]).get())
        .sum()
}

const START_MS: i64 = 1_700_000_000_000;

/// Pre-loads `sessions_per_minute` × `minutes` of generated traffic into
/// fresh topics (named with `suffix`), then runs the pipeline from the start
/// of those topics and times consumption and settlement.
pub async fn end_to_end(
    mut settings: crate::Settings,
    suffix: &str,
    minutes: i64,
    sessions_per_minute: f64,
) -> Result<EndToEndReport, Box<dyn std::error::Error>> {
    isolate(&mut settings, suffix).await?;
    let cfg = GenConfig {
        seed: 3,
        start_ms: START_MS,
        duration_ms: minutes * 60_000,
        sessions_per_minute,
        ..GenConfig::default()
    };
    let opts = crate::generate::ProduceOptions {
        speed: None,
        flush_after_ms: Some(crate::generate::flush_horizon_ms(&settings)),
    };
    let started = Instant::now();
    let report =
        crate::generate::produce(&settings.kafka, Generator::new(cfg), START_MS, &opts).await?;
    let produce_secs = started.elapsed().as_secs_f64();
    let messages = report.generated.messages + report.flush_messages;

    let pipeline = crate::Pipeline::start(settings).await?;
    let started = Instant::now();
    let metrics = pipeline.metrics().clone();
    let mut consume_secs = 0.0;
    let mut max_lag = 0;
    let mut phases = [0.0; exporter::metrics::INGEST_PHASES.len()];
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tick.tick().await;
        max_lag = max_lag.max(input_lag(&metrics));
        let consumed = over_inputs(&metrics.events_consumed);
        if consume_secs == 0.0 && consumed >= messages {
            consume_secs = started.elapsed().as_secs_f64();
            for (seconds, phase) in phases.iter_mut().zip(exporter::metrics::INGEST_PHASES) {
                *seconds = metrics.ingest_seconds.with_label_values(&[phase]).get();
            }
        }
        if metrics.sessions.get() >= report.generated.sessions {
            break;
        }
        if started.elapsed().as_secs() > 600 {
            return Err("did not settle in 10 minutes".into());
        }
    }
    let settled_secs = started.elapsed().as_secs_f64();
    let rows = crate::metrics_rows(&metrics);
    let sessions = metrics.sessions.get();
    let inserts = exporter::clickhouse::WRITTEN_TABLES
        .iter()
        .map(|t| {
            metrics
                .insert_duration
                .with_label_values(&[t])
                .get_sample_count()
        })
        .sum();
    let delay_p50 = histogram_quantile(&metrics.result_delay, 0.5);
    let delay_p99 = histogram_quantile(&metrics.result_delay, 0.99);
    pipeline.stop().await?;
    Ok(EndToEndReport {
        messages,
        produce_secs,
        consume_secs,
        settled_secs,
        sessions,
        rows,
        peak_rss_bytes: peak_rss(),
        delay_p50,
        delay_p99,
        inserts,
        max_lag,
        phases,
    })
}

/// What a steady-rate run measured.
#[derive(Debug, Clone)]
pub struct SteadyReport {
    /// Messages produced.
    pub produced: u64,
    /// Seconds the producer ran.
    pub produce_secs: f64,
    /// Messages consumed over the measured span (after the warm-up).
    pub consumed: u64,
    /// Seconds of the measured span.
    pub measured_secs: f64,
    /// Consumer lag each second of the measured span, messages.
    pub lag: Vec<i64>,
    /// Least-squares slope of the lag over the measured span, messages per
    /// second: about zero when the pipeline keeps up.
    pub lag_slope: f64,
    /// Peak resident memory of this process, bytes.
    pub peak_rss_bytes: u64,
}

/// Least-squares slope of `ys` sampled once a second.
pub fn slope_per_sec(ys: &[i64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<i64>() as f64 / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in ys.iter().enumerate() {
        let dx = x as f64 - mean_x;
        num += dx * (*y as f64 - mean_y);
        den += dx * dx;
    }
    num / den
}

/// Feeds fresh topics (named with `suffix`) at about `rate` messages per
/// second of wall time for `minutes`, while the pipeline consumes them,
/// and samples the consumer lag once a second after a 30 s warm-up.
pub async fn steady(
    mut settings: crate::Settings,
    suffix: &str,
    rate: f64,
    minutes: f64,
    sessions_per_minute: f64,
) -> Result<SteadyReport, Box<dyn std::error::Error>> {
    const WARM_UP_SECS: u64 = 30;
    isolate(&mut settings, suffix).await?;
    // Messages per second of event time in the generator's mix, from ten
    // minutes of it; the producer's pace follows event time.
    let sample_ms = 10 * 60_000;
    let per_event_sec = Generator::new(GenConfig {
        seed: 5,
        start_ms: START_MS,
        duration_ms: sample_ms,
        sessions_per_minute,
        ..GenConfig::default()
    })
    .count() as f64
        / (sample_ms as f64 / 1_000.0);
    let speed = rate / per_event_sec.max(1e-9);
    let cfg = GenConfig {
        seed: 5,
        start_ms: START_MS,
        duration_ms: (minutes * 60_000.0 * speed) as i64,
        sessions_per_minute,
        ..GenConfig::default()
    };
    let pipeline = crate::Pipeline::start(settings.clone()).await?;
    let metrics = pipeline.metrics().clone();
    let kafka = settings.kafka.clone();
    let started = Instant::now();
    let producer = tokio::spawn(async move {
        let opts = crate::generate::ProduceOptions {
            speed: Some(speed),
            flush_after_ms: None,
        };
        crate::generate::produce(&kafka, Generator::new(cfg), START_MS, &opts).await
    });
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut lag = Vec::new();
    let mut from: Option<(Instant, u64)> = None;
    while !producer.is_finished() {
        tick.tick().await;
        if started.elapsed().as_secs() < WARM_UP_SECS {
            continue;
        }
        from.get_or_insert_with(|| (Instant::now(), over_inputs(&metrics.events_consumed)));
        lag.push(input_lag(&metrics));
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let report = producer.await??;
    let (since, consumed_before) = from.ok_or("the producer finished within the warm-up")?;
    let consumed = over_inputs(&metrics.events_consumed) - consumed_before;
    let measured_secs = since.elapsed().as_secs_f64();
    pipeline.stop().await?;
    Ok(SteadyReport {
        produced: report.generated.messages,
        produce_secs,
        consumed,
        measured_secs,
        lag_slope: slope_per_sec(&lag),
        lag,
        peak_rss_bytes: peak_rss(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lag_slope_is_the_least_squares_one() {
        assert_eq!(super::slope_per_sec(&[5, 5, 5, 5]), 0.0);
        assert_eq!(super::slope_per_sec(&[0, 10, 20, 30]), 10.0);
        assert_eq!(super::slope_per_sec(&[7]), 0.0);
        assert!((super::slope_per_sec(&[0, 12, 18, 30]) - 9.6).abs() < 1e-9);
    }

    #[test]
    fn a_file_of_events_is_routed_as_replay_routes_it_and_measured() {
        let lines = concat!(
            r#"{"event_id":"e1","type":"page_view","timestamp":1569888005000,"anonymous_id":"a","context":{"page":{"url":"/","referrer":""}}}"#,
            "

",
            r#"{"event_id":"o1","type":"order_placed","timestamp":1569888006000,"anonymous_id":"a","properties":{"order_id":"o","total":"1.00","products":[]}}"#,
            "
",
            r#"{"event_id":"e2","type":"page_view","timestamp":1569888007000,"anonymous_id":"b","context":{"page":{"url":"/"}}}"#,
            "
"
        );
        let input = super::input_from(lines.as_bytes(), 2).unwrap();
        let streams: Vec<_> = input.iter().map(|m| m.stream).collect();
        assert_eq!(
            streams,
            [contract::Stream::Clickstream, contract::Stream::Orders]
        );
        let all = super::input_from(lines.as_bytes(), 10).unwrap();
        let r = super::run_on(
            &all,
            &contract::Decoder::default(),
            Default::default(),
            60_000,
        );
        assert_eq!(r.messages, 3);
        assert!(r.rows > 0, "the two visitors' sessions close at the end");
    }
}
