//! ClickHouse: settings, migrations, row encoding and the durable writer.

mod migrate;
mod records;
mod sink;

use serde::Deserialize;

pub use migrate::{migrate, MIGRATIONS};
pub use records::{
    CartRecord, CustomerDayRecord, CustomerRecord, FeedbackRecord, OrderRecord, PageRecord,
    ProductRecord, SessionRecord, SessionWindowRecord, SpendRecord,
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
        }
    }
}

impl ClickHouseSettings {
    /// A client for these settings, without a default database (DDL names it).
    pub fn client(&self) -> ::clickhouse::Client {
        // Validation fetches table metadata in a way ClickHouse 18.16 does not
        // support; rows are typed by the records in this module instead.
        ::clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false)
    }
}
