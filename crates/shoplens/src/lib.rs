//! The shoplens application: configuration, the running pipeline, the load
//! generator and operator commands. The binary (`src/main.rs`) is a thin CLI
//! over this library, which the end-to-end tests drive in-process.

#![warn(missing_docs)]

pub mod bench;
mod checkpoint_pace;
pub mod erasure;
pub mod generate;
pub mod heap;
pub mod http_get;
mod phases;
pub mod pipeline;
pub mod replay;
pub mod settings;
pub mod stores;
pub mod summary;

pub use pipeline::{Pipeline, PipelineError};
pub use settings::Settings;

/// Rows written to ClickHouse so far, over every table.
pub fn metrics_rows(metrics: &exporter::Metrics) -> u64 {
    exporter::clickhouse::WRITTEN_TABLES
        .iter()
        .map(|t| metrics.rows_written.with_label_values(&[t]).get())
        .sum()
}
