//! What the memory bounds made the aggregator give up early.

/// What the memory bounds made the aggregator give up early, per advance.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evictions {
    /// Sessions closed before their gap or length cap, because the open
    /// sessions reached `max_open_sessions` (their rows are in `sessions`).
    pub sessions: u64,
    /// Carts abandoned before their timeout, because the open carts reached
    /// `max_open_carts` (their rows and triggers are in the output).
    pub carts: u64,
    /// Abandoned carts forgotten before the recovery window ended, because
    /// they reached `max_abandoned_carts`: an order can no longer recover them.
    pub abandoned_carts: u64,
    /// Visitors whose touches were forgotten before their attribution
    /// window ended, because they reached `max_touch_visitors`.
    pub touch_visitors: u64,
}

impl Evictions {
    pub(crate) fn add(&mut self, other: Evictions) {
        self.sessions += other.sessions;
        self.carts += other.carts;
        self.abandoned_carts += other.abandoned_carts;
        self.touch_visitors += other.touch_visitors;
    }
}
