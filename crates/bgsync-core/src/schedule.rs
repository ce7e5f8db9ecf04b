//! When a periodic pull is due. The browser's Periodic Background Sync is a
//! hint it may throttle or never fire; the page also asks this schedule on
//! open and on `online`, so the decision lives in one place.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodicSchedule {
    pub tag: String,
    pub min_interval_ms: u64,
    /// When the last pull succeeded, if ever.
    pub last_success_ms: Option<u64>,
}

impl PeriodicSchedule {
    pub fn new(tag: impl Into<String>, min_interval_ms: u64) -> Self {
        Self { tag: tag.into(), min_interval_ms, last_success_ms: None }
    }

    /// The earliest time the next pull is due (0: now, never pulled).
    pub fn next_due_ms(&self) -> u64 {
        self.last_success_ms.map_or(0, |t| t.saturating_add(self.min_interval_ms))
    }

    pub fn is_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_due_ms()
    }

    /// A failed pull changes nothing: it stays due.
    pub fn record_success(&mut self, now_ms: u64) {
        self.last_success_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_first_then_after_each_interval() {
        let mut s = PeriodicSchedule::new("pull-posts", 60_000);
        assert!(s.is_due(0));
        s.record_success(1_000);
        assert!(!s.is_due(60_999));
        assert!(s.is_due(61_000));
        assert_eq!(s.next_due_ms(), 61_000);
    }
}
