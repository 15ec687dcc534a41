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
