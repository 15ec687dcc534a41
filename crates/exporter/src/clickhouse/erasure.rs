//! Erasure requests and their audit in ClickHouse (migration 11), and the
//! deletion of a person's rows.
//!
//! Only a salted hash of the id is stored. Rows are matched in ClickHouse by
//! hashing each id column with the same salt, so the id itself is never
//! written anywhere: `hex(SHA256(concat(salt, column)))`, which both 18.16
//! and current servers compute. Deletion is a mutation (`ALTER TABLE ...
//! DELETE`, asynchronous: its end is awaited) on servers before 23.3, and a
//! lightweight `DELETE FROM` on later ones.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{ClickHouseSettings, SinkError};

/// The per-person tables and the id columns each carries.
pub const PERSONAL_TABLES: [(&str, &[&str]); 4] = [
    ("sessions", &["anonymous_id", "user_id"]),
    ("carts", &["anonymous_id", "user_id"]),
    ("customers", &["customer_id"]),
    ("orders", &["customer_id", "anonymous_id"]),
];

/// How long the deletion waits for an 18.16 mutation to finish.
const MUTATION_WAIT: Duration = Duration::from_secs(120);

/// A row of `erasure_requests`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// Unique per request.
    pub request_id: String,
    /// How the id was named: `anonymous_id` or `user_id`.
    pub id_kind: String,
    /// hex(SHA-256(salt || id)), upper case.
    pub id_hash: String,
    /// A fingerprint of the salt the hash was made with.
    pub salt_check: String,
    /// When it was requested (seconds, for readers).
    pub requested_at: u32,
    /// When it was requested, in milliseconds.
    pub requested_ms: i64,
}

/// Rows deleted per personal table, in [`PERSONAL_TABLES`] order.
pub type Deleted = [u64; 4];

/// A row of `erasure_audit`.
#[derive(Debug, Clone, Row, Serialize)]
struct AuditRecord<'a> {
    request_id: &'a str,
    id_kind: &'a str,
    id_hash: &'a str,
    requested_at: u32,
    applied_at: u32,
    instance: &'a str,
    open_state: u64,
    sessions: u64,
    carts: u64,
    customers: u64,
    orders: u64,
}

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

#[derive(Row, Deserialize)]
struct Id {
    request_id: String,
}

#[derive(Row, Deserialize)]
struct Version {
    v: String,
}

/// Reads and records requests, deletes rows, writes the audit.
pub struct ErasureStore {
    client: Client,
    settings: ClickHouseSettings,
}

impl ErasureStore {
    /// The requests and audit of `settings`' database.
    pub fn new(settings: &ClickHouseSettings) -> Self {
        ErasureStore {
            client: settings.client().with_database(&settings.database),
            settings: settings.clone(),
        }
    }

    /// Makes `request` durable.
    pub async fn record(&self, request: &ErasureRequest) -> Result<(), SinkError> {
        let mut insert = self
            .client
            .insert::<ErasureRequest>("erasure_requests")
            .await?;
        insert.write(request).await?;
        insert.end().await?;
        Ok(())
    }

    /// Every request, oldest first.
    pub async fn requests(&self) -> Result<Vec<ErasureRequest>, SinkError> {
        Ok(self
            .client
            .query(
                "SELECT request_id, id_kind, id_hash, salt_check, requested_at, requested_ms \
                 FROM erasure_requests FINAL ORDER BY requested_ms, request_id",
            )
            .fetch_all()
            .await?)
    }

    /// The ids of the requests some instance has applied.
    pub async fn audited(&self) -> Result<Vec<String>, SinkError> {
        let ids: Vec<Id> = self
            .client
            .query("SELECT DISTINCT request_id FROM erasure_audit")
            .fetch_all()
            .await?;
        Ok(ids.into_iter().map(|i| i.request_id).collect())
    }

    /// Deletes the rows whose id columns hash (with `salt`) to the
    /// request's hash, table by table; returns how many each held.
    async fn delete_rows(
        &self,
        request: &ErasureRequest,
        salt: &str,
    ) -> Result<Deleted, SinkError> {
        let lightweight = self.lightweight().await?;
        let mut deleted = [0; 4];
        for (i, (table, columns)) in PERSONAL_TABLES.iter().enumerate() {
            let (count, delete) = statements(&self.settings, table, columns, lightweight);
            let bind = |mut q: clickhouse::query::Query| {
                for _ in *columns {
                    q = q.bind(salt).bind(&request.id_hash);
                }
                q
            };
            let n = bind(self.client.query(&count))
                .fetch_one::<Count>()
                .await?
                .n;
            deleted[i] = n;
            if n == 0 {
                continue;
            }
            bind(self.client.query(&delete)).execute().await?;
            if !lightweight {
                self.await_mutations(table).await?;
            }
            info!(table, rows = n, request = %request.request_id, "erasure: rows deleted");
        }
        Ok(deleted)
    }

    /// Applies `request`: deletes the person's rows (see
    /// [`ErasureStore::delete_rows`]), then records in `erasure_audit` that
    /// `instance` did so now, with the `open_state` it dropped. Returns the
    /// rows deleted per table.
    pub async fn apply(
        &self,
        request: &ErasureRequest,
        salt: &str,
        instance: &str,
        open_state: u64,
    ) -> Result<Deleted, SinkError> {
        let deleted = self.delete_rows(request, salt).await?;
        let applied_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32);
        let row = AuditRecord {
            request_id: &request.request_id,
            id_kind: &request.id_kind,
            id_hash: &request.id_hash,
            requested_at: request.requested_at,
            applied_at,
            instance,
            open_state,
            sessions: deleted[0],
            carts: deleted[1],
            customers: deleted[2],
            orders: deleted[3],
        };
        let mut insert = self
            .client
            .insert::<AuditRecord<'_>>("erasure_audit")
            .await?;
        insert.write(&row).await?;
        insert.end().await?;
        Ok(deleted)
    }

    /// Whether the server has lightweight deletes (23.3 on).
    async fn lightweight(&self) -> Result<bool, SinkError> {
        let v: Version = self
            .client
            .query("SELECT version() AS v")
            .fetch_one()
            .await?;
        Ok(lightweight_from(&v.v))
    }

    /// Waits until this server has no unfinished mutation of `table`.
    async fn await_mutations(&self, table: &str) -> Result<(), SinkError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let open: Count = self
                .client
                .query(
                    "SELECT count() AS n FROM system.mutations \
                     WHERE database = ? AND startsWith(table, ?) AND is_done = 0",
                )
                .bind(&self.settings.database)
                .bind(table)
                .fetch_one()
                .await?;
            if open.n == 0 {
                return Ok(());
            }
            if started.elapsed() > MUTATION_WAIT {
                warn!(
                    table,
                    "erasure: the deletion is still running; it goes on in the background"
                );
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// The statements that count and delete one request's rows of `table`
/// (whose id columns are `columns`): `?` stands for the salt and the hash,
/// alternately, once per column. On a cluster the deletion applies to each
/// node's local table.
pub fn statements(
    settings: &ClickHouseSettings,
    table: &str,
    columns: &[&str],
    lightweight: bool,
) -> (String, String) {
    let matches = columns
        .iter()
        .map(|c| format!("hex(SHA256(concat(?, {c}))) = ?"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let db = &settings.database;
    let count = format!("SELECT count() AS n FROM {db}.{table} WHERE {matches}");
    let cluster = settings.cluster.trim();
    let (target, on) = if cluster.is_empty() {
        (format!("{db}.{table}"), String::new())
    } else {
        (
            format!("{db}.{table}_local"),
            format!(" ON CLUSTER {cluster}"),
        )
    };
    let delete = if lightweight {
        format!("DELETE FROM {target}{on} WHERE {matches}")
    } else {
        format!("ALTER TABLE {target}{on} DELETE WHERE {matches}")
    };
    (count, delete)
}

/// `sql` of [`statements`] with the salt and the hash written in, quoted:
/// for reading and for checking the statements on a server.
pub fn with_literals(sql: &str, salt: &str, id_hash: &str) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut out = String::new();
    for (i, part) in sql.split('?').enumerate() {
        if i > 0 {
            out.push_str(&quote(if i % 2 == 1 { salt } else { id_hash }));
        }
        out.push_str(part);
    }
    out
}

/// Whether `error` is ClickHouse refusing this user the deletion (no
/// `ALTER DELETE` grant, or an XML user with `allow_ddl = 0`, to which a
/// mutation is DDL): retrying cannot help.
pub fn refused(error: &SinkError) -> bool {
    let text = error.to_string();
    // 392: DDL prohibited; 497: access denied; 164: readonly.
    ["Code: 392", "Code: 497", "Code: 164", "ACCESS_DENIED"]
        .iter()
        .any(|code| text.contains(code))
}

/// Whether a server of version `version` (as `version()` says) has
/// lightweight deletes: 23.3 and later.
pub fn lightweight_from(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (23, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lightweight_deletes_start_at_23_3() {
        assert!(!lightweight_from("18.16.1"));
        assert!(!lightweight_from("23.2.7.32"));
        assert!(lightweight_from("23.3.1.2823"));
        assert!(lightweight_from("24.8.4.13"));
        assert!(!lightweight_from("garbage"));
    }

    #[test]
    fn the_statements_match_every_id_column_and_quote_the_literals() {
        let s = ClickHouseSettings::default();
        let (count, delete) = statements(&s, "orders", &["customer_id", "anonymous_id"], true);
        assert_eq!(
            with_literals(&delete, "it's", "AB"),
            "DELETE FROM shoplens.orders WHERE hex(SHA256(concat('it\\'s', customer_id))) = 'AB' \
             OR hex(SHA256(concat('it\\'s', anonymous_id))) = 'AB'"
        );
        assert!(count.starts_with("SELECT count() AS n FROM shoplens.orders WHERE"));
        let cluster = ClickHouseSettings {
            cluster: "c".into(),
            ..ClickHouseSettings::default()
        };
        let (_, mutation) = statements(&cluster, "carts", &["anonymous_id"], false);
        assert_eq!(
            mutation,
            "ALTER TABLE shoplens.carts_local ON CLUSTER c DELETE WHERE hex(SHA256(concat(?, anonymous_id))) = ?"
        );
    }
}
