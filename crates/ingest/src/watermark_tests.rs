//! Tests of the watermark tracker.

use super::*;

const A: Source = Source::new(0, 0);
const B: Source = Source::new(0, 1);

fn tracker() -> WatermarkTracker {
    WatermarkTracker::new(WatermarkSettings {
        allowed_lateness_ms: 60_000,
        idle_timeout_ms: 30_000,
        max_drift_ms: 120_000,
        max_buffered_events: 0,
    })
}

#[test]
fn the_slowest_active_partition_sets_the_watermark() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    assert_eq!(t.watermark(0), i64::MIN, "B has delivered nothing yet");
    t.observe(B, Some(900_000), 0);
    assert_eq!(t.watermark(0), 840_000);
    t.observe(B, Some(2_000_000), 1);
    assert_eq!(t.watermark(1), 940_000);
}

#[test]
fn a_partition_with_nothing_to_read_that_never_delivered_holds_nothing() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 10);
    assert_eq!(t.watermark(10), i64::MIN, "B's end of log not known yet");
    // The broker reports B empty at our position: no idle timeout wait.
    t.nothing_to_read(B);
    assert_eq!(t.watermark(20), 940_000);
    // A partition that delivered keeps holding until its idle timeout.
    t.nothing_to_read(A);
    t.observe(B, Some(500_000), 30);
    assert_eq!(t.watermark(40), 940_000, "B is behind but so is the floor");
    t.observe(A, Some(3_000_000), 50);
    t.nothing_to_read(A);
    assert_eq!(t.watermark(60), 940_000, "B delivered: it holds again");
}

#[test]
fn a_call_after_every_partition_went_idle_still_sets_the_watermark() {
    let mut t = tracker();
    // B delivers nothing (an empty topic): it holds the watermark until
    // idle. A's events all came at once, and both went idle before the
    // next call.
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 10);
    assert_eq!(t.watermark(10), i64::MIN, "B not heard from yet");
    assert_eq!(t.watermark(30_011), 940_000, "A's events count");
    t.observe(A, Some(2_000_000), 40_000);
    assert_eq!(t.watermark(40_000), 1_940_000);
    assert_eq!(t.watermark(100_000), 1_940_000, "all idle: it stays");
}

#[test]
fn once_every_partition_is_idle_the_watermark_goes_as_far_as_the_furthest() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(5_000_000), 0);
    assert_eq!(t.watermark(10), 940_000, "both active: the slower");
    t.observe(A, Some(1_500_000), 20_000);
    assert_eq!(t.watermark(30_000), 1_440_000, "B idle: A alone");
    assert_eq!(t.watermark(50_000), 4_940_000, "both idle: B's");
    t.observe(A, Some(1_600_000), 50_001);
    assert_eq!(t.watermark(50_001), 4_940_000, "never backwards");
}

#[test]
fn idle_partitions_stop_holding_it_back_and_it_never_regresses() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(500_000), 0);
    assert_eq!(t.watermark(29_999), 440_000);
    t.observe(A, Some(1_100_000), 30_000);
    assert_eq!(t.watermark(30_000), 1_040_000, "B idle for 30 s");
    t.observe(B, Some(600_000), 30_001);
    assert_eq!(t.watermark(30_001), 1_040_000, "never backwards");
}

#[test]
fn partitions_running_ahead_are_paused_then_resumed() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(1_000_000 + 121_000), 0);
    t.watermark(0);
    assert_eq!(
        t.align(0, 1),
        Alignment {
            pause: vec![B],
            resume: vec![]
        }
    );
    // B is paused: it stays active however long it is silent.
    t.observe(A, Some(1_000_000 + 62_000), 60_000);
    assert_eq!(t.watermark(60_000), 1_002_000);
    assert_eq!(
        t.align(60_000, 1),
        Alignment {
            pause: vec![],
            resume: vec![B]
        }
    );
    assert_eq!(t.paused(), 0);
    // Resumed after a minute paused, B is not idle: it holds the watermark.
    t.observe(A, Some(1_000_000 + 500_000), 60_001);
    assert_eq!(t.watermark(60_001), 1_061_000);
}

#[test]
fn a_partition_ahead_is_paused_only_while_the_buffer_is_over_its_bound() {
    let mut t = tracker();
    t.cfg.max_buffered_events = 1_000;
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(1_000_000 + 600_000), 0);
    t.watermark(0);
    // Ten minutes ahead, but little is buffered: B runs on.
    assert_eq!(t.align(0, 1_000), Alignment::default());
    // Over the bound: paused.
    assert_eq!(t.align(1, 1_001).pause, vec![B]);
    // Still more than half the drift ahead; the buffer drains to half
    // the bound, and B goes on.
    assert_eq!(t.align(2, 501), Alignment::default());
    assert_eq!(t.align(3, 500).resume, vec![B]);
    // Not paused again before the buffer is over the bound again.
    assert_eq!(t.align(4, 1_000), Alignment::default());
    assert_eq!(t.align(5, 1_001).pause, vec![B]);
    // Back within half the drift, B resumes whatever is buffered.
    t.observe(A, Some(1_000_000 + 540_000), 6);
    t.watermark(6);
    assert_eq!(t.align(6, 5_000).resume, vec![B]);
}

/// Three partitions: A behind, B and C running ahead and paused. A
/// falls silent at `now`; B, paused, then sets the watermark and is
/// resumed.
fn b_resumed_at(now: u64) -> WatermarkTracker {
    const C: Source = Source::new(0, 2);
    let mut t = tracker();
    t.assign([A, B, C], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(1_000_000 + 150_000), 0);
    t.observe(C, Some(2_000_000), 0);
    assert_eq!(t.watermark(0), 940_000);
    assert_eq!(t.align(0, 1).pause, vec![B, C]);
    assert_eq!(t.watermark(now), 1_090_000);
    assert_eq!(t.align(now, 1).resume, vec![B]);
    t
}

#[test]
fn a_resumed_partition_holds_until_its_end_is_known_then_counts_its_real_silence() {
    let now = 30_000;
    // While the broker's answer is awaited, B holds the watermark, and
    // the wait does not count as a backlog that resets its silence.
    let mut t = b_resumed_at(now);
    t.end_unknown(B, now + 100);
    assert_eq!(t.watermark(now + 20_000), 1_090_000);
    // The broker reports nothing to read: nothing was appended to B
    // since its last delivery, 30 s ago, so it is idle at once and C
    // (still paused, so active) sets the watermark.
    t.nothing_to_read(B);
    assert_eq!(t.watermark(now + 20_001), 1_940_000);

    // A resumed partition that delivered recently stays active for the
    // rest of its idle timeout, counted from that delivery.
    let mut t = b_resumed_at(now);
    t.observe(B, Some(1_150_000), now - 10_000);
    t.nothing_to_read(B);
    assert_eq!(t.watermark(now + 19_999), 1_090_000);
    assert_eq!(t.watermark(now + 20_000), 1_940_000);

    // An answer that never comes holds it for one idle timeout at most.
    let mut t = b_resumed_at(now);
    assert_eq!(t.watermark(now + 29_999), 1_090_000);
    assert_eq!(t.watermark(now + 30_000), 1_940_000);

    // With data waiting, a resumed partition stays active.
    let mut t = b_resumed_at(now);
    t.has_backlog(B, now + 1);
    assert_eq!(t.watermark(now + 29_000), 1_090_000);
    // A partition that was not resumed counts an unknown end as a
    // backlog, as before: A, silent, is active again and holds the
    // watermark where it is (without it, C would set it).
    let mut t = b_resumed_at(now);
    t.nothing_to_read(B);
    t.end_unknown(A, now + 25_000);
    assert_eq!(t.watermark(now + 25_001), 1_090_000);
}

#[test]
fn a_partition_assigned_back_after_a_revoke_is_to_be_resumed() {
    let mut t = tracker();
    assert_eq!(t.assign([A, B], 0), vec![A, B], "new: resume in the client");
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(1_000_000 + 121_000), 0);
    t.watermark(0);
    assert_eq!(t.align(0, 1).pause, vec![B]);
    // A rebalance seen while it lasts: B goes, then comes back. The
    // client still holds it paused; the tracker forgot it: resume.
    assert_eq!(t.assign([A], 1), Vec::<Source>::new());
    assert_eq!(t.assign([A, B], 2), vec![B]);
    assert_eq!(t.paused(), 0);
    // A rebalance not seen (B never left the tracker): the pause stays
    // on both sides, and alignment resumes it as usual.
    t.observe(B, Some(1_000_000 + 121_000), 3);
    t.watermark(3);
    assert_eq!(t.align(3, 1).pause, vec![B]);
    assert_eq!(t.assign([A, B], 4), Vec::<Source>::new());
    assert_eq!(t.paused(), 1);
}

#[test]
fn an_end_of_log_not_reported_yet_is_a_backlog() {
    assert!(may_have_backlog(None, None), "assigned, never fetched");
    assert!(may_have_backlog(None, Some(40)), "reported by no fetch yet");
    assert!(may_have_backlog(Some(10), None), "messages, none read");
    assert!(may_have_backlog(Some(10), Some(9)));
    assert!(!may_have_backlog(Some(10), Some(10)), "caught up");
    assert!(!may_have_backlog(Some(0), None), "an empty partition");
}

#[test]
fn a_partition_with_a_backlog_is_never_idle() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(500_000), 0);
    t.has_backlog(B, 40_000);
    t.observe(A, Some(1_100_000), 40_000);
    assert_eq!(t.watermark(40_000), 440_000, "B is starved, not idle");
}

#[test]
fn a_group_follows_its_own_active_partitions() {
    let mut t = tracker();
    t.assign([A, B], 0);
    assert_eq!(t.group(|s| s == A, 0), Group::Unknown);
    t.observe(A, Some(100_000), 0);
    t.observe(B, Some(900_000), 0);
    let lateness = 60_000;
    assert_eq!(t.group(|s| s == B, 0), Group::Active(900_000 - lateness));
    assert_eq!(t.group(|_| true, 0), Group::Active(100_000 - lateness));
    // A goes silent past the idle timeout: its group follows the pipeline.
    t.observe(B, Some(900_000), 300_000);
    assert_eq!(t.group(|s| s == A, 300_000), Group::Idle);
}

#[test]
fn a_partition_fed_only_untimed_messages_holds_the_watermark_one_idle_timeout() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    // B delivers only messages without an event time, a steady backlog
    // of them: the broker always has more to read.
    let mut now = 0;
    while now < 30_000 {
        t.observe(A, Some(1_000_000 + now as i64), now);
        t.observe_untimed(B, now);
        t.has_backlog(B, now);
        assert_eq!(t.watermark(now), i64::MIN, "B held it at {now} ms");
        now += 1_000;
    }
    t.observe(A, Some(1_030_000), now);
    t.observe_untimed(B, now);
    t.has_backlog(B, now);
    assert_eq!(t.watermark(now), 970_000, "B no longer holds it");
}

#[test]
fn untimed_messages_after_events_count_as_silence_and_an_event_ends_it() {
    let mut t = tracker();
    t.assign([A, B], 0);
    t.observe(A, Some(1_000_000), 0);
    t.observe(B, Some(900_000), 0);
    assert_eq!(t.watermark(0), 840_000);
    for now in (1_000..=30_000).step_by(1_000) {
        t.observe(A, Some(1_000_000 + now as i64), now);
        t.observe_untimed(B, now);
        t.has_backlog(B, now);
        assert_eq!(t.watermark(now), 840_000, "B holds it at {now} ms");
    }
    t.observe_untimed(B, 31_000);
    t.observe(A, Some(1_031_000), 31_000);
    assert_eq!(t.watermark(31_000), 971_000, "B silent for an idle timeout");
    // B's next event with a time makes it active again: the watermark
    // keeps where it got, and B's later events set it once it catches up.
    t.observe(B, Some(1_100_000), 32_000);
    t.observe(A, Some(1_032_000), 32_000);
    assert_eq!(t.watermark(32_000), 972_000);
}
