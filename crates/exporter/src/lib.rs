//! Where rows leave the pipeline: ClickHouse tables and Prometheus series.
//!
//! - [`clickhouse`]: migrations, row encoding and a retrying, batched writer
//!   that reports only when rows are durable.
//! - [`metrics`]: the Prometheus registry of business and pipeline series.
//! - [`http`]: a small HTTP endpoint serving `/metrics`, `/livez`, `/readyz`.

#![warn(missing_docs)]

pub mod clickhouse;
pub mod http;
pub mod metrics;
pub mod triggers;

pub use crate::clickhouse::{
    Checkpoint, CheckpointStore, ClickHouseSettings, ClickHouseSink, ErasureRequest, ErasureStore,
    SinkError,
};
pub use crate::http::{serve, Health};
pub use crate::metrics::Metrics;
