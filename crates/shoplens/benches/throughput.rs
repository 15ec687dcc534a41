//! Criterion benches of the in-process path on the generator's realistic
//! mix: decode + validate alone, and decode + validate + sessionize + every
//! aggregate. `cargo bench -p shoplens --bench throughput`; the events/s
//! figure is criterion's "thrpt". The whole-process figures (1M messages,
//! peak RSS) come from `shoplens bench`; see docs/performance.md.

use aggregator::{Aggregator, AggregatorConfig};
use contract::Decoder;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoplens::bench::{decode_all, decode_and_aggregate, input};

/// The allocator the `shoplens` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

criterion_group!(benches, throughput);
criterion_main!(benches);
