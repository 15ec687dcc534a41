//! The time-to-stage view against figures computed by hand: histogram rows
//! go through the pipeline's own writer (a replaced version included) into
//! a freshly migrated database, and the view's shares and interpolated
//! quantiles are checked.

use aggregator::stage_times::{StageTimeRow, BUCKETS};
use aggregator::{Channel, Output};
use e2e::{settings, unique};

const T0: i64 = 1_569_888_000_000; // 2019-10-01T00:00:00Z

fn row(minute: i64, partition: i32, buckets: &[(usize, u64)], version: u64) -> StageTimeRow {
    let mut b = [0; BUCKETS];
    for &(i, n) in buckets {
        b[i] = n;
    }
    StageTimeRow {
        window_start_ms: T0 + minute * 60_000,
        channel: Channel::Email,
        stage_index: 2,
        stage: "product_view".into(),
        partition,
        buckets: b,
        version,
    }
}

#[tokio::test]
async fn shares_and_quantiles_are_interpolated_within_their_bucket() {
    let s = settings(&unique("stagetimes"));
    let sink = e2e::migrated_sink(&s).await;
    // Two windows of the day: 2 sessions up to 10 s and 1 up to 1 min in
    // the first; the second's version 2 (1 up to 1 min) replaces version 1.
    let out = Output {
        stage_times: vec![
            row(0, 0, &[(0, 2), (2, 1)], 1),
            row(1, 1, &[(9, 7)], 1),
            row(1, 1, &[(2, 1)], 2),
        ],
        ..Output::default()
    };
    sink.write(std::slice::from_ref(&out), &[]).await;
    let ch = s.clickhouse.client().with_database(&s.clickhouse.database);
    #[derive(Debug, PartialEq, serde::Deserialize, clickhouse::Row)]
    struct View {
        stage: String,
        sessions: u64,
        share: Vec<f64>,
        median_seconds: f64,
        p90_seconds: f64,
    }
    let got: View = ch
        .query("SELECT stage, sessions, share, median_seconds, p90_seconds FROM time_to_stage_1d_final")
        .fetch_one()
        .await
        .expect("the view");
    // 4 sessions: [2, 0, 2, 0, ...]. The median (the 2nd) is the last of
    // the 0-10 s bucket: 10 s. The 90th percentile (3.6th) lies 1.6 of 2
    // into the 30-60 s bucket: 30 + 30 * 0.8 = 54 s.
    let mut share = vec![0.0; BUCKETS];
    (share[0], share[2]) = (0.5, 0.5);
    let want = View {
        stage: "product_view".into(),
        sessions: 4,
        share,
        median_seconds: 10.0,
        p90_seconds: 54.0,
    };
    assert_eq!(got, want);
}
