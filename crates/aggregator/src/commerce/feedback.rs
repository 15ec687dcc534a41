//! Feedback windows: NPS, CSAT and CES answers per window and partition.
//!
//! NPS: promoters 9-10, passives 7-8, detractors 0-6. CSAT: satisfied is
//! the top 40 % of the scale (4-5 of 5), and scores are normalised to 1-5
//! so that means over scales compare. CES: the sum of scores as given.

use std::collections::BTreeMap;

use contract::time::window_start;
use contract::{EventKind, Survey};

use crate::aggregate::{Aggregate, Applied};
use crate::offsets::HeldOffsets;
use crate::rows::FeedbackRow;
use crate::Output;

/// The feedback windows, by (window start, partition).
pub(crate) struct Feedback {
    window_ms: i64,
    pub(super) windows: BTreeMap<(i64, i32), FeedbackRow>,
}

impl Feedback {
    pub(super) fn new(window_ms: i64) -> Self {
        Feedback {
            window_ms,
            windows: BTreeMap::new(),
        }
    }
}

/// Counts one answer of `survey` with `score` on a scale to `scale_max`.
fn score(f: &mut FeedbackRow, survey: Survey, score: f64, scale_max: f64) {
    match survey {
        Survey::Nps => {
            f.nps_responses += 1;
            match score as u32 {
                9..=10 => f.nps_promoters += 1,
                7..=8 => f.nps_passives += 1,
                _ => f.nps_detractors += 1,
            }
        }
        Survey::Csat => {
            f.csat_responses += 1;
            let satisfied = if scale_max == 5.0 {
                score >= 4.0
            } else {
                (score - 1.0) / (scale_max - 1.0) >= 0.6
            };
            f.csat_satisfied += u64::from(satisfied);
            let on5 = 1.0 + (score - 1.0) * 4.0 / (scale_max - 1.0);
            f.csat_score_milli += (on5 * 1000.0).round() as u64;
        }
        Survey::Ces => {
            f.ces_responses += 1;
            f.ces_score_milli += (score * 1000.0).round() as u64;
        }
    }
}

impl Aggregate for Feedback {
    fn apply(&mut self, a: &Applied<'_>, _held: &mut HeldOffsets, _out: &mut Output) {
        let e = a.event;
        let EventKind::SurveyResponse {
            survey,
            score: s,
            scale_max,
        } = &e.kind
        else {
            return;
        };
        let partition = a.pos.source.partition;
        let w = window_start(e.timestamp_ms, self.window_ms);
        let f = self
            .windows
            .entry((w, partition))
            .or_insert_with(|| FeedbackRow {
                window_start_ms: w,
                partition,
                ..FeedbackRow::default()
            });
        score(f, *survey, *s, *scale_max);
    }

    fn flush(&mut self, watermark_ms: i64, out: &mut Output) {
        let cut = super::first_open(watermark_ms, self.window_ms);
        let keep = self.windows.split_off(&(cut, i32::MIN));
        let done = std::mem::replace(&mut self.windows, keep);
        out.feedback.extend(done.into_values());
    }
}
