//! ClickHouse: settings, migrations, row encoding and the durable writer.

mod checkpoints;
mod erasure;
mod migrate;
mod records;
mod sink;

use serde::Deserialize;

pub use checkpoints::{Checkpoint, CheckpointStore, State};
pub use erasure::{
    lightweight_from, refused as erasure_refused, statements as erasure_statements, with_literals,
    Deleted, ErasureRequest, ErasureStore, PERSONAL_TABLES,
};
pub use migrate::{
    latest_version, migrate, plan, schema_version, tables, Layout, TableSpec, MIGRATIONS,
};
pub use records::{
    AttributionDayRecord, CartRecord, CustomerDayRecord, CustomerRecord, FeedbackRecord,
    OrderFactRecord, OrderRecord, PageRecord, ProductRecord, SessionRecord, SessionWindowRecord,
    SpendRecord, StageTimeRecord, TableRow, WRITTEN_TABLES,
};
pub use sink::{ClickHouseSink, SinkError};

/// How to reach ClickHouse and how hard to try.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClickHouseSettings {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// Database holding the pipeline's tables (created by migrations).
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// First retry delay after a failed insert, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_max_ms: u64,
    /// A cluster name from the servers' `remote_servers`: migrations then run
    /// `ON CLUSTER` with replicated tables behind `Distributed` ones. Empty:
    /// one server.
    pub cluster: String,
    /// ZooKeeper path prefix of replicated tables; `/<database>/<table>` is
    /// appended. The `{shard}` and `{replica}` macros come from each server.
    pub replication_path_prefix: String,
    /// Days of rows kept (table TTL, ClickHouse 19.6 and later); 0 keeps all.
    pub retention_days: u32,
    /// Whether the pipeline applies migrations at start. Off when it runs as
    /// an insert-only user and `shoplens migrate` runs as an administrator:
    /// it then refuses to start on a schema older than it needs.
    pub migrate_on_start: bool,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: "http://127.0.0.1:8123".into(),
            database: "shoplens".into(),
            user: "default".into(),
            password: String::new(),
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            cluster: String::new(),
            replication_path_prefix: "/clickhouse/tables/{shard}".into(),
            retention_days: 0,
            migrate_on_start: true,
        }
    }
}

impl ClickHouseSettings {
    /// A client for these settings, without a default database (DDL names it).
    pub fn client(&self) -> ::clickhouse::Client {
        // Validation fetches table metadata in a way ClickHouse 18.16 does not
        // support; rows are typed by the records in this module instead.
        let client = ::clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false);
        if self.cluster.trim().is_empty() {
            client
        } else {
            // An insert into a Distributed table returns once every shard
            // has its rows, not when they are queued on this node: offsets
            // are committed only after that.
            client.with_setting("insert_distributed_sync", "1")
        }
    }
}
