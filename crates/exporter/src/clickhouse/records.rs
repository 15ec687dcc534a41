//! Row encodings for ClickHouse (RowBinary): one struct per table.

use aggregator::{SessionRow, TrafficRow};
use clickhouse::Row;
use serde::Serialize;

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

/// A row of `sessions`.
#[derive(Debug, Row, Serialize)]
pub struct SessionRecord<'a> {
    session_id: &'a str,
    anonymous_id: &'a str,
    user_id: &'a str,
    start: u32,
    end: u32,
    duration_ms: u64,
    page_views: u32,
    events: u32,
    entry_path: &'a str,
    exit_path: &'a str,
    channel: &'a str,
    source: &'a str,
    medium: &'a str,
    campaign: &'a str,
    device: &'a str,
    experiment_id: &'a str,
    variant: &'a str,
    bounced: u8,
    converted: u8,
    partition: i32,
    version: u64,
}

impl<'a> From<&'a SessionRow> for SessionRecord<'a> {
    fn from(s: &'a SessionRow) -> Self {
        SessionRecord {
            session_id: &s.session_id,
            anonymous_id: &s.anonymous_id,
            user_id: &s.user_id,
            start: secs(s.start_ms),
            end: secs(s.end_ms),
            duration_ms: s.duration_ms().max(0) as u64,
            page_views: s.page_views,
            events: s.events,
            entry_path: &s.entry_path,
            exit_path: &s.exit_path,
            channel: s.channel.as_str(),
            source: &s.source,
            medium: &s.medium,
            campaign: &s.campaign,
            device: s.device,
            experiment_id: &s.experiment_id,
            variant: &s.variant,
            bounced: u8::from(s.bounced),
            converted: u8::from(s.converted),
            partition: s.partition,
            version: u64::from(s.events),
        }
    }
}

/// A row of `traffic_1m`.
#[derive(Debug, Row, Serialize)]
pub struct TrafficRecord<'a> {
    window_start: u32,
    channel: &'a str,
    partition: i32,
    sessions: u64,
    page_views: u64,
    bounces: u64,
    conversions: u64,
    duration_ms: u64,
    version: u64,
}

impl<'a> From<&'a TrafficRow> for TrafficRecord<'a> {
    fn from(t: &'a TrafficRow) -> Self {
        TrafficRecord {
            window_start: secs(t.window_start_ms),
            channel: t.channel.as_str(),
            partition: t.partition,
            sessions: t.sessions,
            page_views: t.page_views,
            bounces: t.bounces,
            conversions: t.conversions,
            duration_ms: t.duration_ms,
            version: t.version,
        }
    }
}
