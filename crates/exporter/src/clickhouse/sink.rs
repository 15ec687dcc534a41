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

/// Each output's rows of one table, in order.
fn chunks<'a, R>(outs: &'a [Output], rows: impl Fn(&'a Output) -> &'a Vec<R>) -> Vec<&'a [R]> {
    outs.iter().map(|o| rows(o).as_slice()).collect()
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

    /// Writes every row of `outs` (the outputs of successive advances, in
    /// order), retrying each table's insert with exponential backoff until
    /// it succeeds. Readiness is false while inserts fail. Cancel the
    /// future to give up (nothing is committed then).
    pub async fn write(&self, outs: &[Output], stages: &[String]) {
        let window = |w| SessionWindowRecord::new(w, stages);
        // The tables are independent: their inserts run concurrently, and
        // the batch is durable when the last one is.
        tokio::join!(
            self.table::<SessionRecord<'_>, _>(chunks(outs, |o| &o.sessions), SessionRecord::from),
            self.table::<SessionWindowRecord<'_>, _>(chunks(outs, |o| &o.session_windows), window),
            self.table::<PageRecord<'_>, _>(chunks(outs, |o| &o.pages), PageRecord::from),
            self.table::<ProductRecord<'_>, _>(chunks(outs, |o| &o.products), ProductRecord::from),
            self.table::<OrderRecord<'_>, _>(chunks(outs, |o| &o.orders), OrderRecord::from),
            self.table::<FeedbackRecord, _>(chunks(outs, |o| &o.feedback), FeedbackRecord::from),
            self.table::<CartRecord<'_>, _>(chunks(outs, |o| &o.carts), CartRecord::from),
            self.table::<SpendRecord<'_>, _>(chunks(outs, |o| &o.spend), SpendRecord::from),
            self.table::<StageTimeRecord<'_>, _>(
                chunks(outs, |o| &o.stage_times),
                StageTimeRecord::from
            ),
        );
    }

    /// Writes the customer side's rows, retrying until durable.
    pub async fn write_customers(&self, out: &aggregator::CustomerOutput) {
        tokio::join!(
            self.table::<CustomerRecord<'_>, _>(vec![&out.customers[..]], CustomerRecord::from),
            self.table::<CustomerDayRecord<'_>, _>(vec![&out.days[..]], CustomerDayRecord::from),
            self.table::<OrderFactRecord<'_>, _>(vec![&out.orders[..]], OrderFactRecord::from),
            self.table::<AttributionDayRecord<'_>, _>(
                vec![&out.attribution[..]],
                AttributionDayRecord::from
            ),
        );
    }

    /// Writes the checkpoints of consumer group `group_id`, retrying until
    /// durable. Call it only once the rows they depend on are durable.
    pub async fn write_checkpoints(&self, group_id: &str, checkpoints: &[super::Checkpoint]) {
        if checkpoints.is_empty() {
            return;
        }
        let attempt = || self.insert_checkpoints(group_id, checkpoints);
        self.retry("checkpoints", checkpoints.len(), attempt).await;
    }

    /// One insert of `checkpoints`: each row's head, then its state's
    /// chunks as they are (shared, not copied).
    async fn insert_checkpoints(
        &self,
        group_id: &str,
        checkpoints: &[super::Checkpoint],
    ) -> Result<(), SinkError> {
        let columns = super::checkpoints::COLUMNS;
        let sql = format!("INSERT INTO checkpoints ({columns}) FORMAT RowBinary");
        let mut insert = self.client.insert_formatted_with(sql);
        for c in checkpoints {
            insert
                .send(super::checkpoints::row_head(group_id, c))
                .await?;
            for chunk in c.state.chunks() {
                insert.send(chunk.clone()).await?;
            }
        }
        insert.end().await?;
        Ok(())
    }

    /// Writes the rows of `chunks`, each as `record` makes it, to the
    /// record's table (nothing when there are none), retrying until
    /// durable. Records are made as the insert encodes them, not collected
    /// first: a write of 100,000 rows would otherwise fill fresh memory
    /// with records that are read once.
    async fn table<'a, T, R>(&self, chunks: Vec<&'a [R]>, record: impl Fn(&'a R) -> T::Value<'a>)
    where
        T: super::TableRow,
    {
        let table = T::TABLE;
        let rows = chunks.iter().map(|c| c.len()).sum();
        if rows > 0 {
            let records = || chunks.iter().flat_map(|c| c.iter()).map(&record);
            self.retry(table, rows, || self.insert::<T>(table, records()))
                .await;
        }
    }

    async fn insert<'a, T>(
        &self,
        table: &str,
        records: impl Iterator<Item = T::Value<'a>>,
    ) -> Result<(), SinkError>
    where
        T: clickhouse::RowWrite,
    {
        let mut insert = self.client.insert::<T>(table).await?;
        for record in records {
            insert.write(&record).await?;
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
