//! A live summary of the pipeline's metrics, for people watching a run.

use std::fmt::Write;

use crate::http_get::{get, metric_sum, prometheus_query_path};

/// Series the demo reads back from Prometheus.
pub const PROMETHEUS_SERIES: [&str; 4] = [
    "shoplens_events_consumed_total",
    "shoplens_sessions_total",
    "shoplens_page_views_total",
    "shoplens_clickhouse_rows_written_total",
];

/// The single value of an instant query against Prometheus at `addr`.
pub async fn prometheus_value(addr: &str, promql: &str) -> Result<String, String> {
    let (status, body) = get(addr, &prometheus_query_path(promql))
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no sample yet".to_string())
}

/// One line of the key figures from a `/metrics` text.
pub fn line(metrics: &str, now_s: f64) -> String {
    let m = |name: &str| metric_sum(metrics, name, "");
    let wm = m("shoplens_watermark_timestamp_seconds");
    let lag = if wm > 0.0 {
        format!("{:.0}s", now_s - wm)
    } else {
        "-".into()
    };
    format!(
        "events {:>9.0} | invalid {:>6.0} | late {:>4.0} | dup {:>5.0} | sessions closed {:>7.0} open {:>6.0} | page views {:>8.0} | bounce {:>5.1}% | rows {:>7.0} | insert failures {:.0} | watermark lag {lag}",
        m("shoplens_events_consumed_total"),
        m("shoplens_events_invalid_total") - metric_sum(metrics, "shoplens_events_invalid_total", "reason=\"late\""),
        metric_sum(metrics, "shoplens_events_invalid_total", "reason=\"late\""),
        m("shoplens_events_duplicate_total"),
        m("shoplens_sessions_total"),
        m("shoplens_sessions_open"),
        m("shoplens_page_views_total"),
        100.0 * m("shoplens_bounces_total") / m("shoplens_sessions_total").max(1.0),
        m("shoplens_clickhouse_rows_written_total"),
        m("shoplens_clickhouse_insert_failures_total"),
    )
}

/// A table of sessions by channel and invalid events by reason.
pub fn table(metrics: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sessions by channel:");
    for c in aggregator::Channel::ALL {
        let n = metric_sum(
            metrics,
            "shoplens_channel_sessions_total",
            &format!("channel=\"{}\"", c.as_str()),
        );
        let _ = writeln!(out, "  {:<16} {n:>8.0}", c.as_str());
    }
    let _ = writeln!(out, "dead-lettered by reason:");
    for r in contract::Reason::ALL {
        let n = metric_sum(
            metrics,
            "shoplens_events_invalid_total",
            &format!("reason=\"{}\"", r.as_str()),
        );
        if n > 0.0 {
            let _ = writeln!(out, "  {:<16} {n:>8.0}", r.as_str());
        }
    }
    out
}
