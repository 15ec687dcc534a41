//! Criterion benches of the in-process path on the generator's realistic
//! mix: decode + validate alone, and decode + validate + sessionize + every
//! aggregate. `cargo bench -p shoplens --bench throughput`; the events/s
//! figure is criterion's "thrpt". The whole-process figures (1M messages,
//! peak RSS) come from `shoplens bench`; see docs/performance.md. Also the
//! per-event check of the erasure set once a request exists (`forget_check`:
//! a salted SHA-256 of each event's ids).

use aggregator::{Aggregator, AggregatorConfig};
use contract::Decoder;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoplens::bench::{decode_all, decode_and_aggregate, input};
use shoplens::generate::Message;

/// The allocator the `shoplens` binary runs with.
#[global_allocator]
static ALLOCATOR: shoplens::heap::Mimalloc = shoplens::heap::Mimalloc;

const MESSAGES: usize = 50_000;

fn throughput(c: &mut Criterion) {
    let input = input(MESSAGES);
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("in_process");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("decode", |b| b.iter(|| decode_all(&decoder, &input)));
    group.bench_function("decode_and_aggregate", |b| {
        b.iter_batched(
            || Aggregator::new(AggregatorConfig::default()),
            |mut agg| decode_and_aggregate(&decoder, &mut agg, &input, 60_000),
            BatchSize::PerIteration,
        )
    });
    group.finish();
    forget_check(c, &decoder, &input);
}

/// What each event costs once erasure requests exist: its visitor and user
/// ids hashed with the salt and looked up among 1,000 requests.
fn forget_check(c: &mut Criterion, decoder: &Decoder, input: &[Message]) {
    use shoplens::erasure::{request_for, Forgotten, Subject};
    let mut forgotten = Forgotten::new("bench-salt");
    for i in 0..1_000 {
        let who = Subject::AnonymousId(format!("forgotten-{i}"));
        let request = request_for(&who, "bench-salt", i).expect("a request");
        forgotten.add(&request).expect("same salt");
    }
    let events: Vec<contract::Event> = input
        .iter()
        .filter_map(|m| decoder.decode(&m.payload, m.stream, None).ok())
        .collect();
    let mut group = c.benchmark_group("erasure");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("forget_check", |b| {
        b.iter(|| {
            let is = |id: &str| forgotten.covers(id);
            events
                .iter()
                .filter(|e| aggregator::forget::event_is_forgotten(e, &is))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
