//! In-process throughput: decode + validate + every aggregate on the
//! generator's realistic mix, on one core, no I/O.

use std::time::Instant;

use aggregator::{Aggregator, AggregatorConfig, Position, Source};
use contract::Decoder;

use crate::generate::{GenConfig, Generator};

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

fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Generates `messages` messages in memory, then times decoding alone and
/// decoding plus aggregation, advancing the watermark every 10,000 events
/// as the pipeline's ticks would.
pub fn run(messages: usize, cfg: AggregatorConfig, lateness_ms: i64) -> BenchReport {
    let gen = Generator::new(GenConfig {
        duration_ms: 24 * 3_600_000,
        sessions_per_minute: 2_000.0,
        ..GenConfig::default()
    });
    let input: Vec<_> = gen.take(messages).collect();
    let bytes = input.iter().map(|m| m.payload.len() as u64).sum();
    let decoder = Decoder::default();

    let started = Instant::now();
    let mut valid = 0u64;
    for m in &input {
        valid += u64::from(decoder.decode(&m.payload, m.stream, None).is_ok());
    }
    let decode_secs = started.elapsed().as_secs_f64();
    std::hint::black_box(valid);

    let mut agg = Aggregator::new(cfg);
    let mut rows = 0u64;
    let mut max_seen = i64::MIN;
    let started = Instant::now();
    for (i, m) in input.iter().enumerate() {
        if let Ok(e) = decoder.decode(&m.payload, m.stream, None) {
            max_seen = max_seen.max(e.timestamp_ms);
            let pos = Position {
                source: Source {
                    stream: m.stream as u8,
                    partition: 0,
                },
                offset: i as i64,
            };
            let _ = agg.push(e, pos);
        }
        if i % 10_000 == 9_999 {
            let out = agg.advance(max_seen - lateness_ms);
            rows += (out.sessions.len()
                + out.session_windows.len()
                + out.pages.len()
                + out.carts.len()) as u64;
        }
    }
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
}

/// Pre-loads `sessions_per_minute` × `minutes` of generated traffic into
/// fresh topics (named with `suffix`), then runs the pipeline from the start
/// of those topics and times consumption and settlement.
pub async fn end_to_end(
    mut settings: crate::Settings,
    suffix: &str,
    minutes: i64,
    sessions_per_minute: f64,
) -> Result<EndToEndReport, Box<dyn std::error::Error>> {
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
    crate::topics::create_topics(&settings.kafka, 4, 1).await?;
    const START_MS: i64 = 1_700_000_000_000;
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
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tick.tick().await;
        let consumed: u64 = ["clickstream", "orders", "spend"]
            .iter()
            .map(|t| metrics.events_consumed.with_label_values(&[t]).get())
            .sum();
        if consume_secs == 0.0 && consumed >= messages {
            consume_secs = started.elapsed().as_secs_f64();
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
    pipeline.stop().await?;
    Ok(EndToEndReport {
        messages,
        produce_secs,
        consume_secs,
        settled_secs,
        sessions,
        rows,
        peak_rss_bytes: peak_rss(),
    })
}
