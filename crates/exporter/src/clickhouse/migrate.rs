//! Versioned schema migrations, applied in order and recorded, on one server
//! or, when a cluster is configured, on every node of a ClickHouse cluster.
//!
//! The migration files are written once, for one server. For a cluster each
//! statement is rewritten ([`Layout::render`]):
//! - a table `T` becomes `T_local` with the replicated variant of its engine
//!   on every node (`ON CLUSTER`) plus `T`, a `Distributed` table over the
//!   `T_local`s sharded by a hash of `T`'s sorting key. The pipeline inserts
//!   into `T` and the views read `T`, so neither knows about the cluster.
//!   Rows with one key always land on one shard, so `FINAL` and `argMax`
//!   replacement work per shard exactly as on one server;
//! - `ALTER` and `DROP` apply to both tables, views are created on every node.

use std::collections::BTreeMap;

use clickhouse::Client;
use tracing::{info, warn};

use super::{ClickHouseSettings, SinkError};

/// Every migration: (version, name, SQL with `{db}` for the database).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "sessions_and_traffic",
        include_str!("../../migrations/0001_sessions_and_traffic.sql"),
    ),
    (
        2,
        "metric_set",
        include_str!("../../migrations/0002_metric_set.sql"),
    ),
    (
        3,
        "customers",
        include_str!("../../migrations/0003_customers.sql"),
    ),
    (
        4,
        "rollups",
        include_str!("../../migrations/0004_rollups.sql"),
    ),
    (
        5,
        "checkpoints",
        include_str!("../../migrations/0005_checkpoints.sql"),
    ),
    (
        6,
        "real_histories",
        include_str!("../../migrations/0006_real_histories.sql"),
    ),
    (
        7,
        "orders",
        include_str!("../../migrations/0007_orders.sql"),
    ),
    (
        8,
        "retention",
        include_str!("../../migrations/0008_retention.sql"),
    ),
    (
        9,
        "attribution",
        include_str!("../../migrations/0009_attribution.sql"),
    ),
    (
        10,
        "time_to_stage",
        include_str!("../../migrations/0010_time_to_stage.sql"),
    ),
    (
        11,
        "erasure",
        include_str!("../../migrations/0011_erasure.sql"),
    ),
];

/// The bookkeeping table, created before the migrations.
const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
     (version UInt32, name String, applied_at DateTime DEFAULT now()) \
     ENGINE = MergeTree ORDER BY version";

/// Splits a migration file into statements (`;` at the end of a line).
fn statements(sql: &str) -> impl Iterator<Item = String> + '_ {
    sql.split(";\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().trim_end_matches(';').to_string())
        .filter(|s| !s.is_empty())
}

/// Where the schema lives: a database on one server or on a cluster.
#[derive(Debug, Clone)]
pub struct Layout {
    database: String,
    cluster: Option<String>,
    replication_prefix: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Layout {
    /// The layout `settings` ask for; names are checked, as they go into DDL.
    pub fn new(settings: &ClickHouseSettings) -> Result<Layout, SinkError> {
        if !valid_name(&settings.database) {
            return Err(SinkError::Config(format!(
                "bad database name {:?}",
                settings.database
            )));
        }
        let cluster = match settings.cluster.trim() {
            "" => None,
            c if valid_name(c) => Some(c.to_string()),
            c => return Err(SinkError::Config(format!("bad cluster name {c:?}"))),
        };
        if settings.replication_path_prefix.contains('\'') {
            return Err(SinkError::Config(
                "replication_path_prefix must not contain quotes".into(),
            ));
        }
        Ok(Layout {
            database: settings.database.clone(),
            cluster,
            replication_prefix: settings
                .replication_path_prefix
                .trim_end_matches('/')
                .to_string(),
        })
    }

    fn on_cluster(&self) -> String {
        self.cluster
            .as_ref()
            .map_or(String::new(), |c| format!(" ON CLUSTER {c}"))
    }

    /// `CREATE DATABASE`.
    pub fn create_database(&self) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS {}{}",
            self.database,
            self.on_cluster()
        )
    }

    /// The statements one migration statement becomes in this layout, with
    /// the database filled in.
    pub fn render(&self, stmt: &str) -> Result<Vec<String>, SinkError> {
        let Some(cluster) = &self.cluster else {
            return Ok(vec![stmt.replace("{db}", &self.database)]);
        };
        let db = &self.database;
        let on = format!("ON CLUSTER {cluster}");
        let distributed = |name: &str, key: &str| {
            format!(
                "CREATE TABLE IF NOT EXISTS {{db}}.{name} {on} AS {{db}}.{name}_local \
                 ENGINE = Distributed({cluster}, {db}, {name}_local, cityHash64({key}))"
            )
        };
        let out = if let Some((name, rest)) = split_head(stmt, "CREATE TABLE IF NOT EXISTS") {
            let engine = self.replicated_engine(name, rest)?;
            let key = sorting_key(rest).ok_or_else(|| {
                SinkError::Config(format!("table {name} has no ORDER BY to shard by"))
            })?;
            vec![
                format!("CREATE TABLE IF NOT EXISTS {{db}}.{name}_local {on} {engine}"),
                distributed(name, key),
            ]
        } else if let Some((name, rest)) = split_head(stmt, "ALTER TABLE") {
            // A Distributed table cannot be altered on a cluster whose shards
            // replicate internally; it holds no rows, so it is created again
            // over the altered local tables.
            let spec = tables()
                .remove(name)
                .ok_or_else(|| SinkError::Config(format!("ALTER of unknown table {name}")))?;
            vec![
                format!("ALTER TABLE {{db}}.{name}_local {on} {rest}"),
                format!("DROP TABLE IF EXISTS {{db}}.{name} {on}"),
                distributed(name, &spec.sorting_key),
            ]
        } else if let Some((name, rest)) = split_head(stmt, "DROP TABLE IF EXISTS") {
            vec![
                format!("DROP TABLE IF EXISTS {{db}}.{name} {on} {rest}"),
                format!("DROP TABLE IF EXISTS {{db}}.{name}_local {on} {rest}"),
            ]
        } else if let Some((name, rest)) = split_head(stmt, "CREATE VIEW IF NOT EXISTS") {
            vec![format!(
                "CREATE VIEW IF NOT EXISTS {{db}}.{name} {on} {rest}"
            )]
        } else {
            return Err(SinkError::Config(format!(
                "no cluster form for statement: {}",
                stmt.lines().next().unwrap_or_default()
            )));
        };
        Ok(out
            .into_iter()
            .map(|s| s.trim_end().replace("{db}", db))
            .collect())
    }

    /// The columns and settings of a `CREATE TABLE` (after its name) with the
    /// engine replaced by its replicated variant.
    fn replicated_engine(&self, table: &str, rest: &str) -> Result<String, SinkError> {
        let at = rest
            .find("ENGINE = ")
            .ok_or_else(|| SinkError::Config(format!("table {table} names no engine")))?;
        let after = &rest[at + "ENGINE = ".len()..];
        let name_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let engine = &after[..name_len];
        if !engine.ends_with("MergeTree") {
            return Err(SinkError::Config(format!(
                "table {table}: engine {engine} has no replicated form"
            )));
        }
        let path = format!(
            "'{}/{}/{table}_local', '{{replica}}'",
            self.replication_prefix, self.database
        );
        let tail = &after[name_len..];
        let (args, tail) = match tail.strip_prefix('(') {
            Some(t) => {
                let close = t.find(')').ok_or_else(|| {
                    SinkError::Config(format!("table {table}: unclosed engine arguments"))
                })?;
                (format!("{path}, {}", &t[..close]), &t[close + 1..])
            }
            None => (path, tail),
        };
        Ok(format!(
            "{}ENGINE = Replicated{engine}({args}){tail}",
            &rest[..at]
        ))
    }
}

/// `HEAD {db}.name rest` → `(name, rest)`.
fn split_head<'a>(stmt: &'a str, head: &str) -> Option<(&'a str, &'a str)> {
    let rest = stmt.strip_prefix(head)?.trim_start();
    let rest = rest.strip_prefix("{db}.")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some((&rest[..end], rest[end..].trim_start()))
}

/// The sorting key of a `CREATE TABLE` as a list of expressions.
fn sorting_key(rest: &str) -> Option<&str> {
    let key = rest[rest.rfind("ORDER BY")? + "ORDER BY".len()..].trim();
    let key = key.split("SETTINGS").next()?.trim();
    match key.strip_prefix('(').and_then(|k| k.strip_suffix(')')) {
        Some(inner) => Some(inner.trim()),
        None => Some(key),
    }
}

/// What the migrations say about one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Its sorting key, as a list of expressions (the cluster's sharding key).
    pub sorting_key: String,
    /// The column its rows age by (the month partition's), if any.
    pub ages_by: Option<String>,
}

/// Each table the bookkeeping and the migrations leave (dropped ones gone).
pub fn tables() -> BTreeMap<String, TableSpec> {
    let mut out = BTreeMap::new();
    for stmt in std::iter::once(SCHEMA_MIGRATIONS.to_string())
        .chain(MIGRATIONS.iter().flat_map(|(_, _, sql)| statements(sql)))
    {
        if let Some((name, rest)) = split_head(&stmt, "CREATE TABLE IF NOT EXISTS") {
            let ages_by = rest
                .find("PARTITION BY toYYYYMM(")
                .map(|at| &rest[at + "PARTITION BY toYYYYMM(".len()..])
                .and_then(|r| r.split(')').next())
                .map(str::to_string);
            if let Some(key) = sorting_key(rest) {
                let spec = TableSpec {
                    sorting_key: key.to_string(),
                    ages_by,
                };
                out.insert(name.to_string(), spec);
            }
        } else if let Some((name, _)) = split_head(&stmt, "DROP TABLE IF EXISTS") {
            out.remove(name);
        }
    }
    out
}

/// Every statement a first migration runs, in order: for review by a DBA
/// (`shoplens migrate --print`).
pub fn plan(settings: &ClickHouseSettings) -> Result<Vec<String>, SinkError> {
    let layout = Layout::new(settings)?;
    let mut out = vec![layout.create_database()];
    out.extend(layout.render(SCHEMA_MIGRATIONS)?);
    for (_, _, sql) in MIGRATIONS {
        for stmt in statements(sql) {
            out.extend(layout.render(&stmt)?);
        }
    }
    out.extend(retention(&layout, settings.retention_days));
    Ok(out)
}

/// `MODIFY TTL` statements keeping `days` days of every table that ages
/// (all but `customers`, whose rows are customers, not time).
fn retention(layout: &Layout, days: u32) -> Vec<String> {
    if days == 0 {
        return Vec::new();
    }
    let (db, on) = (&layout.database, layout.on_cluster());
    // On a cluster the TTL belongs to the local tables, where rows are.
    let suffix = if layout.cluster.is_some() {
        "_local"
    } else {
        ""
    };
    tables()
        .into_iter()
        .filter_map(|(table, spec)| {
            let column = spec.ages_by?;
            Some(format!(
                "ALTER TABLE {db}.{table}{suffix}{on} MODIFY TTL {column} + INTERVAL {days} DAY"
            ))
        })
        .collect()
}

/// `(major, minor)` of a `version()` string such as `18.16.1` or `24.8.4.13`.
fn server_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Creates the database and applies the migrations it has not recorded yet,
/// then the retention settings. Returns the versions applied now.
///
/// Several instances starting at once each migrate a fresh database: one
/// can drop a table (migration 2 drops `traffic_1m`) while another is still
/// creating a view over it. Every statement can run again, and a migration
/// is recorded only once all of its statements ran, so a statement the
/// server refuses is retried from the first unrecorded migration, up to
/// five times (then the error stands).
pub async fn migrate(settings: &ClickHouseSettings) -> Result<Vec<u32>, SinkError> {
    let mut attempt = 1;
    let mut backoff = contract::Backoff::from_millis(300, 2_000);
    loop {
        match migrate_once(settings).await {
            Err(SinkError::ClickHouse(clickhouse::error::Error::BadResponse(msg)))
                if attempt < 5 =>
            {
                warn!(attempt, error = %msg, "a migration statement was refused; migrating again");
                tokio::time::sleep(backoff.next_wait()).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn migrate_once(settings: &ClickHouseSettings) -> Result<Vec<u32>, SinkError> {
    let layout = Layout::new(settings)?;
    let database = &settings.database;
    let client: Client = settings.client();
    let run = |sql: String| {
        let client = client.clone();
        async move { client.query(&sql).execute().await }
    };
    run(layout.create_database()).await?;
    for stmt in layout.render(SCHEMA_MIGRATIONS)? {
        run(stmt).await?;
    }
    let applied: Vec<u32> = client
        .query(&format!("SELECT version FROM {database}.schema_migrations"))
        .fetch_all::<u32>()
        .await?;
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for stmt in statements(sql) {
            let add_column = stmt.starts_with("ALTER TABLE") && stmt.contains("ADD COLUMN");
            for stmt in layout.render(&stmt)? {
                match run(stmt).await {
                    // ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: a column
                    // left by an interrupted earlier run counts as applied.
                    Err(clickhouse::error::Error::BadResponse(msg))
                        if add_column && msg.contains("already exists") =>
                    {
                        info!(database, version, "column already added");
                    }
                    other => other?,
                }
            }
        }
        run(format!(
            "INSERT INTO {database}.schema_migrations (version, name) VALUES ({version}, '{name}')"
        ))
        .await?;
        info!(database, version, name, "applied migration");
        done.push(*version);
    }
    if settings.retention_days > 0 {
        let version: String = client.query("SELECT version()").fetch_one().await?;
        // Table TTL arrived in ClickHouse 19.6.
        if server_version(&version) < (19, 6) {
            warn!(
                %version,
                retention_days = settings.retention_days,
                "this ClickHouse has no table TTL; retention is not applied"
            );
        } else {
            for stmt in retention(&layout, settings.retention_days) {
                run(stmt).await?;
            }
            info!(
                database,
                days = settings.retention_days,
                "retention applied"
            );
        }
    }
    Ok(done)
}

/// The newest migration version this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0)
}

/// The newest migration recorded in the database (0 when none), read with
/// the settings' user, which needs only `SELECT` on `schema_migrations`.
pub async fn schema_version(settings: &ClickHouseSettings) -> Result<u32, SinkError> {
    let layout = Layout::new(settings)?;
    let version: u32 = settings
        .client()
        .query(&format!(
            "SELECT toUInt32(max(version)) FROM {}.schema_migrations",
            layout.database
        ))
        .fetch_one()
        .await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Layout {
        Layout::new(&ClickHouseSettings {
            database: "shop".into(),
            cluster: "c1".into(),
            ..ClickHouseSettings::default()
        })
        .expect("layout")
    }

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let (_, _, sql) = MIGRATIONS[0];
        let stmts: Vec<String> = statements(sql).collect();
        assert_eq!(stmts.len(), 3);
        assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS {db}.sessions"));
        assert!(stmts.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }

    #[test]
    fn one_server_keeps_statements_as_written() {
        let layout = Layout::new(&ClickHouseSettings {
            database: "shop".into(),
            ..ClickHouseSettings::default()
        })
        .expect("layout");
        assert_eq!(
            layout
                .render("DROP TABLE IF EXISTS {db}.x")
                .expect("render"),
            vec!["DROP TABLE IF EXISTS shop.x".to_string()]
        );
    }

    #[test]
    fn cluster_tables_become_replicated_locals_behind_distributed_tables() {
        let sql = "CREATE TABLE IF NOT EXISTS {db}.carts\n(\n    cart_id String,\n    version UInt64\n)\nENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(opened)\nORDER BY (cart_id, opened)";
        let out = cluster().render(sql).expect("render");
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with("CREATE TABLE IF NOT EXISTS shop.carts_local ON CLUSTER c1 ("));
        assert!(out[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/shop/carts_local', '{replica}', version)\nPARTITION BY toYYYYMM(opened)"
        ));
        assert_eq!(
            out[1],
            "CREATE TABLE IF NOT EXISTS shop.carts ON CLUSTER c1 AS shop.carts_local \
             ENGINE = Distributed(c1, shop, carts_local, cityHash64(cart_id, opened))"
        );
        let plain = cluster()
            .render("CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a")
            .expect("render");
        assert!(plain[0].ends_with(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/shop/t_local', '{replica}') ORDER BY a"
        ));
        assert!(plain[1].ends_with("cityHash64(a))"));
    }

    #[test]
    fn cluster_alters_drops_and_views_run_on_every_node() {
        let l = cluster();
        assert_eq!(
            l.render("ALTER TABLE {db}.carts ADD COLUMN x UInt8 DEFAULT 0")
                .expect("render"),
            vec![
                "ALTER TABLE shop.carts_local ON CLUSTER c1 ADD COLUMN x UInt8 DEFAULT 0",
                "DROP TABLE IF EXISTS shop.carts ON CLUSTER c1",
                "CREATE TABLE IF NOT EXISTS shop.carts ON CLUSTER c1 AS shop.carts_local \
                 ENGINE = Distributed(c1, shop, carts_local, cityHash64(cart_id, opened))"
            ]
        );
        assert_eq!(
            l.render("DROP TABLE IF EXISTS {db}.t").expect("render"),
            vec![
                "DROP TABLE IF EXISTS shop.t ON CLUSTER c1",
                "DROP TABLE IF EXISTS shop.t_local ON CLUSTER c1"
            ]
        );
        assert_eq!(
            l.render("CREATE VIEW IF NOT EXISTS {db}.v AS\nSELECT 1 FROM {db}.t")
                .expect("render"),
            vec!["CREATE VIEW IF NOT EXISTS shop.v ON CLUSTER c1 AS\nSELECT 1 FROM shop.t"]
        );
        assert!(l.render("INSERT INTO {db}.t VALUES (1)").is_err());
    }

    #[test]
    fn every_migration_has_a_cluster_form() {
        let plan = plan(&ClickHouseSettings {
            cluster: "c1".into(),
            retention_days: 400,
            ..ClickHouseSettings::default()
        })
        .expect("plan");
        assert!(plan.iter().all(|s| s.contains("ON CLUSTER c1")));
        assert!(plan.iter().all(|s| !s.contains("{db}")));
        assert!(plan.contains(
            &"ALTER TABLE shoplens.sessions_local ON CLUSTER c1 MODIFY TTL start + INTERVAL 400 DAY"
                .to_string()
        ));
    }

    #[test]
    fn tables_age_by_their_partition_column_except_customers() {
        let t = tables();
        assert_eq!(t["sessions"].ages_by.as_deref(), Some("start"));
        assert_eq!(t["carts"].ages_by.as_deref(), Some("opened"));
        assert_eq!(t["customers"].ages_by, None);
        assert!(!t.contains_key("traffic_1m"), "dropped by migration 2");
    }

    #[test]
    fn bad_names_are_refused() {
        let bad = ClickHouseSettings {
            database: "x; DROP".into(),
            ..ClickHouseSettings::default()
        };
        assert!(Layout::new(&bad).is_err());
        let bad = ClickHouseSettings {
            cluster: "a b".into(),
            ..ClickHouseSettings::default()
        };
        assert!(Layout::new(&bad).is_err());
        assert_eq!(server_version("18.16.1"), (18, 16));
        assert_eq!(server_version("24.8.4.13"), (24, 8));
    }
}
