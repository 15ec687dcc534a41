//! Counting what a durable batch holds: the business series.

use super::{Metrics, EVICTED_STATES, MAX_EXPERIMENT_SERIES};

impl Metrics {
    /// Counts the business figures of one durable batch of aggregator output.
    pub fn record(&self, out: &aggregator::Output, stages: &[String]) {
        let e = out.evictions;
        for (state, n) in EVICTED_STATES.into_iter().zip([
            e.sessions,
            e.carts,
            e.abandoned_carts,
            e.touch_visitors,
        ]) {
            self.state_evictions.with_label_values(&[state]).inc_by(n);
        }
        self.events_duplicate.inc_by(out.repeated_orders);
        for s in &out.sessions {
            self.sessions.inc();
            self.sessions_by_channel
                .with_label_values(&[s.channel.as_str()])
                .inc();
            self.page_views.inc_by(u64::from(s.page_views));
            if s.bounced {
                self.bounces.inc();
            }
            if s.new_visitor {
                self.new_visitors.inc();
            }
            if s.converted {
                self.conversions.inc();
            }
            if !s.experiment_id.is_empty() {
                let (e, v) = self.experiment_label(&s.experiment_id, &s.variant);
                self.experiment_sessions.with_label_values(&[&e, &v]).inc();
                if s.converted {
                    self.experiment_conversions
                        .with_label_values(&[&e, &v])
                        .inc();
                }
            }
            for stage in stages.iter().skip(1).take(usize::from(s.stage_reached)) {
                self.funnel_sessions.with_label_values(&[stage]).inc();
            }
        }
        let major = |minor: i64, currency: &str| {
            let exp = contract::Currency::parse(currency).map_or(2, |c| c.exponent());
            minor as f64 / 10f64.powi(exp as i32)
        };
        for o in &out.orders {
            self.orders
                .with_label_values(&[&o.currency])
                .inc_by(o.orders);
            self.revenue
                .with_label_values(&[&o.currency])
                .inc_by(major(o.gross_minor, &o.currency));
            self.refunds
                .with_label_values(&[&o.currency])
                .inc_by(major(o.refunded_minor, &o.currency));
        }
        for c in &out.carts {
            self.carts.with_label_values(&[c.status.as_str()]).inc();
        }
        for f in &out.feedback {
            let s = &self.survey_responses;
            s.with_label_values(&["nps", "promoter"])
                .inc_by(f.nps_promoters);
            s.with_label_values(&["nps", "passive"])
                .inc_by(f.nps_passives);
            s.with_label_values(&["nps", "detractor"])
                .inc_by(f.nps_detractors);
            s.with_label_values(&["csat", "satisfied"])
                .inc_by(f.csat_satisfied);
            s.with_label_values(&["csat", "unsatisfied"])
                .inc_by(f.csat_responses - f.csat_satisfied);
            s.with_label_values(&["ces", "answered"])
                .inc_by(f.ces_responses);
        }
    }

    /// The labels for an experiment variant: its own while fewer than
    /// [`MAX_EXPERIMENT_SERIES`] pairs exist, else `(other)`.
    fn experiment_label(&self, experiment: &str, variant: &str) -> (String, String) {
        let key = (experiment.to_string(), variant.to_string());
        let mut known = self
            .experiment_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.contains(&key) || known.len() < MAX_EXPERIMENT_SERIES {
            known.insert(key.clone());
            key
        } else {
            ("(other)".to_string(), "(other)".to_string())
        }
    }

    /// Counts the customer side's figures of one durable batch.
    pub fn record_customers(&self, out: &aggregator::CustomerOutput) {
        self.new_customers.inc_by(out.new_customers);
        self.repeat_orders.inc_by(out.repeat_orders);
        self.customer_lapses.inc_by(out.lapsed.len() as u64);
    }
}
