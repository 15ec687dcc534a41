//! The durable writer: one insert per table per batch, retried with backoff.

use std::sync::Arc;
use std::time::Instant;

use aggregator::Output;
use clickhouse::Client;
use tracing::{debug, warn};

use super::records::{
    AttributionDayRecord, CartRecord, CustomerDayRecord, CustomerRecord, FeedbackRecord,
    OrderFactRecord, OrderRecord, PageRecord, ProductRecord, SessionRecord, SessionWindowRecord,
    SpendRecord, StageTimeRecord,
};
use super::ClickHouseSettings;
use crate::http::Health;
use crate::metrics::Metrics;

/// Why rows could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// ClickHouse answered with an error or could not be reached.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// The settings are unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// No connection could be made to the server.
    #[error("cannot reach ClickHouse at {url} (clickhouse.url, env CLICKHOUSE__URL): {cause}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The client's error with its causes.
        cause: String,
    },
}

impl SinkError {
    /// This error, naming `url` when it is a failure to connect (the
    /// client's own text says only `client error (Connect)`).
    pub fn at(self, url: &str) -> SinkError {
        match self {
            SinkError::ClickHouse(clickhouse::error::Error::Network(e)) => {
                let mut cause = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    cause.push_str(": ");
                    cause.push_str(&s.to_string());
                    source = s.source();
                }
                SinkError::Unreachable {
                    url: url.to_string(),
                    cause,
                }
            }
            other => other,
        }
    }
}

/// Encodes rows for their table.
fn encode<'a, R, T: From<&'a R>>(rows: &'a [R]) -> Vec<T> {
    rows.iter().map(T::from).collect()
}

/// Writes aggregator output to ClickHouse and returns only once it is durable.
pub struct ClickHouseSink {
    client: Client,
    settings: ClickHouseSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl ClickHouseSink {
    /// A sink for `settings`, reporting to `metrics` and `health`.
    pub fn new(settings: ClickHouseSettings, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        ClickHouseSink {
            client: settings.client().with_database(&settings.database),
            settings,
            metrics,
            health,
        }
    }

    /// Applies the migrations, or, when `migrate_on_start` is off, checks
    /// that someone has: a schema older than this build needs is an error.
    pub async fn migrate(&self) -> Result<Vec<u32>, SinkError> {
        let url = &self.settings.url;
        if self.settings.migrate_on_start {
            return super::migrate(&self.settings).await.map_err(|e| e.at(url));
        }
        let found = super::schema_version(&self.settings)
            .await
            .map_err(|e| e.at(url))?;
        let needed = super::latest_version();
        if found < needed {
            return Err(SinkError::Config(format!(
                "schema of {} is at version {found}, this build needs {needed}: run `shoplens migrate` as an administrator",
                self.settings.database
            )));
        }
        Ok(Vec::new())
    }

    /// Writes every row of `out`, retrying each table's insert with
    /// exponential backoff until it succeeds. Readiness is false while
    /// inserts fail. Cancel the future to give up (nothing is committed then).
    pub async fn write(&self, out: &Output, stages: &[String]) {
        let windows: Vec<SessionWindowRecord<'_>> = out
            .session_windows
            .iter()
            .map(|w| SessionWindowRecord::new(w, stages))
            .collect();
        // The tables are independent: their inserts run concurrently, and
        // the batch is durable when the last one is.
        let (sessions, pages, products) = (
            encode(&out.sessions),
            encode(&out.pages),
            encode(&out.products),
        );
        let (orders, feedback, carts, spend) = (
            encode(&out.orders),
            encode(&out.feedback),
            encode(&out.carts),
            encode(&out.spend),
        );
        let stage_times = encode(&out.stage_times);
        tokio::join!(
            self.table::<SessionRecord<'_>>(&sessions),
            self.table::<SessionWindowRecord<'_>>(&windows),
            self.table::<PageRecord<'_>>(&pages),
            self.table::<ProductRecord<'_>>(&products),
            self.table::<OrderRecord<'_>>(&orders),
            self.table::<FeedbackRecord>(&feedback),
            self.table::<CartRecord<'_>>(&carts),
            self.table::<SpendRecord<'_>>(&spend),
            self.table::<StageTimeRecord<'_>>(&stage_times),
        );
    }

    /// Writes the customer side's rows, retrying until durable.
    pub async fn write_customers(&self, out: &aggregator::CustomerOutput) {
        let (customers, days) = (encode(&out.customers), encode(&out.days));
        let (orders, attribution) = (encode(&out.orders), encode(&out.attribution));
        tokio::join!(
            self.table::<CustomerRecord<'_>>(&customers),
            self.table::<CustomerDayRecord<'_>>(&days),
            self.table::<OrderFactRecord<'_>>(&orders),
            self.table::<AttributionDayRecord<'_>>(&attribution),
        );
    }

    /// Writes the checkpoints of consumer group `group_id`, retrying until
    /// durable. Call it only once the rows they depend on are durable.
    pub async fn write_checkpoints(&self, group_id: &str, checkpoints: &[super::Checkpoint]) {
        let records: Vec<super::CheckpointRecord<'_>> = checkpoints
            .iter()
            .map(|c| super::CheckpointRecord::new(group_id, c))
            .collect();
        self.table::<super::CheckpointRecord<'_>>(&records).await;
    }

    /// Writes `rows` to their table (nothing when empty), retrying until
    /// durable.
    async fn table<T>(&self, rows: &[T::Value<'_>])
    where
        T: super::TableRow,
    {
        let table = T::TABLE;
        if !rows.is_empty() {
            self.retry(table, rows.len(), || self.insert::<T>(table, rows))
                .await;
        }
    }

    async fn insert<T>(&self, table: &str, rows: &[T::Value<'_>]) -> Result<(), SinkError>
    where
        T: clickhouse::RowWrite,
    {
        let mut insert = self.client.insert::<T>(table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    async fn retry<F, Fut>(&self, table: &str, rows: usize, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), SinkError>>,
    {
        let s = &self.settings;
        let mut backoff = contract::Backoff::from_millis(s.retry_initial_ms, s.retry_max_ms);
        loop {
            let started = Instant::now();
            match attempt().await {
                Ok(()) => {
                    let secs = started.elapsed().as_secs_f64();
                    self.metrics
                        .insert_duration
                        .with_label_values(&[table])
                        .observe(secs);
                    self.metrics
                        .rows_written
                        .with_label_values(&[table])
                        .inc_by(rows as u64);
                    self.health.set_sink_ok(true);
                    debug!(table, secs, "inserted");
                    return;
                }
                Err(error) => {
                    self.metrics
                        .insert_failures
                        .with_label_values(&[table])
                        .inc();
                    self.health.set_sink_ok(false);
                    let wait = backoff.next_wait();
                    warn!(table, %error, retry_in_ms = wait.as_millis() as u64, "insert failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_names_the_url_and_the_setting() {
        let url = "http://127.0.0.1:1";
        let client = Client::default().with_url(url).with_validation(false);
        let err = client
            .query("SELECT 1")
            .execute()
            .await
            .expect_err("nothing listens");
        let text = SinkError::from(err).at(url).to_string();
        assert!(
            text.starts_with("cannot reach ClickHouse at http://127.0.0.1:1"),
            "{text}"
        );
        assert!(text.contains("CLICKHOUSE__URL"), "{text}");
        assert!(text.to_lowercase().contains("refused"), "the cause: {text}");
    }
}
