//! The running pipeline: Kafka -> ingest -> aggregator -> exporter, wired
//! with a bounded channel so a slow ClickHouse slows consumption.
//!
//! - [`consume`]: one task reads the input ([`ingest::KafkaInput`]),
//!   decodes, dead-letters and feeds each partition's store
//!   ([`crate::stores`]); [`load`] restores stores as partitions arrive.
//! - [`step`]: on every tick the stores advance to the watermark, and the
//!   closed rows go to the writer with a checkpoint when one is due.
//! - [`writer`]: makes the rows durable, then triggers, facts and markers,
//!   then the checkpoints, and acknowledges; only then are offsets committed.
//! - [`bounded`]: a run that ends with its input (`run --until-end`).

use std::net::SocketAddr;
use std::sync::Arc;

use exporter::{ClickHouseSink, Health, Metrics};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::info;

mod batch;
mod bounded;
mod catch_up;
mod clocks;
mod consume;
mod erasure;
mod load;
mod read_ahead;
mod step;
mod writer;

pub use bounded::DRAIN_WATERMARK_MS;

use crate::settings::{Settings, SettingsError};
use consume::Ingest;
use writer::Writer;

/// Why the pipeline stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad configuration.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Kafka refused.
    #[error(transparent)]
    Kafka(#[from] ingest::KafkaError),
    /// ClickHouse refused.
    #[error(transparent)]
    Sink(#[from] exporter::SinkError),
    /// The metrics endpoint could not listen.
    #[error("http listen on {addr} (http.listen, env HTTP__LISTEN): {source}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// An erasure request cannot be honoured.
    #[error(transparent)]
    Erasure(#[from] crate::erasure::ErasureError),
    /// A task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(String),
}

/// A started pipeline.
pub struct Pipeline {
    metrics_addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: watch::Sender<bool>,
    consume: JoinHandle<Result<(), PipelineError>>,
    http: JoinHandle<()>,
}

impl Pipeline {
    /// Applies migrations, binds the HTTP endpoint, joins the consumer group
    /// and starts consuming.
    pub async fn start(settings: Settings) -> Result<Pipeline, PipelineError> {
        Self::start_with(settings, false).await
    }

    /// As [`Pipeline::start`], for a bounded run: it reads every input
    /// partition up to the end offsets it finds at start, closes
    /// everything as if time had run out, writes it, and stops by itself
    /// ([`Pipeline::run_until`] then returns).
    pub async fn start_until_end(settings: Settings) -> Result<Pipeline, PipelineError> {
        Self::start_with(settings, true).await
    }

    async fn start_with(settings: Settings, until_end: bool) -> Result<Pipeline, PipelineError> {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let sink =
            ClickHouseSink::new(settings.clickhouse.clone(), metrics.clone(), health.clone());
        let applied = sink.migrate().await?;
        health.set_sink_ok(true);
        info!(?applied, database = %settings.clickhouse.database, "clickhouse schema ready");
        let (metrics_addr, http) = serve(&settings, &metrics, &health).await?;

        // Before a message is read: a replay must not bring anyone back.
        let (forgotten, erasure) = erasure::start(&settings).await?;
        let mut ingest = Ingest::connect(
            settings,
            metrics.clone(),
            health.clone(),
            until_end,
            erasure,
        )
        .await?;
        ingest.stores.set_forgotten(forgotten);
        let settings = ingest.settings();
        let stages = aggregator::Aggregator::new(settings.aggregator.clone()).funnel_stages();
        let facts_topic = &settings.kafka.topics.customer_facts;
        let facts_partitions = ingest.input().partition_count(facts_topic)?;
        let writer = Writer::new(settings, sink, metrics.clone(), stages, facts_partitions)?;

        let (stop, stop_rx) = watch::channel(false);
        let in_flight = settings.pipeline.max_batches_in_flight.max(1);
        let (batch_tx, batch_rx) = mpsc::channel(in_flight);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(writer.run(batch_rx, ack_tx));
        let consume = tokio::spawn(ingest.run(stop_rx, batch_tx, ack_rx, writer));
        Ok(Pipeline {
            metrics_addr,
            metrics,
            health,
            stop,
            consume,
            http,
        })
    }

    /// The bound address of `/metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The metrics registry (for in-process summaries).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Readiness as `/readyz` reports it.
    pub fn ready(&self) -> bool {
        self.health.ready()
    }

    /// Runs until `signal` completes (then stops cleanly) or the pipeline
    /// fails by itself.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), PipelineError> {
        tokio::select! {
            _ = signal => self.stop().await,
            joined = &mut self.consume => {
                self.http.abort();
                joined.map_err(|e| PipelineError::Task(e.to_string()))?
            }
        }
    }

    /// Stops: flushes what is closed, writes it, commits, and returns.
    pub async fn stop(self) -> Result<(), PipelineError> {
        let _ = self.stop.send(true);
        let result = self
            .consume
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))?;
        self.http.abort();
        result
    }
}

/// Binds `/metrics`, `/livez` and `/readyz` on `http.listen`.
async fn serve(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
) -> Result<(SocketAddr, JoinHandle<()>), PipelineError> {
    let listen = &settings.http.listen;
    let failed = |source| PipelineError::Listen {
        addr: listen.clone(),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    let http = tokio::spawn(exporter::serve(listener, metrics.clone(), health.clone()));
    info!(%addr, "serving /metrics, /livez, /readyz");
    Ok((addr, http))
}
