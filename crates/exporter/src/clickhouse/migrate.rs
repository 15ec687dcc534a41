//! Versioned schema migrations, applied in order and recorded.

use clickhouse::Client;
use tracing::info;

use super::SinkError;

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
];

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

/// Creates `database` and applies the migrations it has not recorded yet.
/// Returns the versions applied now.
pub async fn migrate(client: &Client, database: &str) -> Result<Vec<u32>, SinkError> {
    if !database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || database.is_empty()
    {
        return Err(SinkError::Config(format!("bad database name {database:?}")));
    }
    let run = |sql: String| async move { client.query(&sql).execute().await };
    run(format!("CREATE DATABASE IF NOT EXISTS {database}")).await?;
    run(format!(
        "CREATE TABLE IF NOT EXISTS {database}.schema_migrations \
         (version UInt32, name String, applied_at DateTime DEFAULT now()) \
         ENGINE = MergeTree ORDER BY version"
    ))
    .await?;
    let applied: Vec<u32> = client
        .query(&format!("SELECT version FROM {database}.schema_migrations"))
        .fetch_all::<u32>()
        .await?;
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for stmt in statements(&sql.replace("{db}", database)) {
            let add_column = stmt.starts_with("ALTER TABLE") && stmt.contains("ADD COLUMN");
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
        run(format!(
            "INSERT INTO {database}.schema_migrations (version, name) VALUES ({version}, '{name}')"
        ))
        .await?;
        info!(database, version, name, "applied migration");
        done.push(*version);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let (_, _, sql) = MIGRATIONS[0];
        let stmts: Vec<String> = statements(sql).collect();
        assert_eq!(stmts.len(), 3);
        assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS {db}.sessions"));
        assert!(stmts.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }
}
