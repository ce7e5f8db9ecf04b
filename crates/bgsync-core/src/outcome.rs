//! What one delivery attempt means for its entry.
//!
//! The classification follows DESIGN.md: only a 2xx proves the server has
//! the entry; transient failures are retried; a 4xx that no retry can fix
//! makes the entry permanently failed (it is kept and shown, never dropped).

/// The result of one attempt to deliver an entry, as the platform saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The server answered with this HTTP status.
    Status(u16),
    /// No HTTP answer: offline, connection refused or reset, timeout.
    NetworkError(String),
}

/// What to do with the entry after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server has durably accepted it (or had already): delete it.
    Delivered,
    /// It may succeed later: keep it and have the browser retry.
    Retry,
    /// It can never succeed as it is: keep it, mark it failed, stop retrying.
    Rejected,
}

impl Outcome {
    pub fn of(attempt: &Attempt) -> Self {
        match attempt {
            Attempt::NetworkError(_) => Outcome::Retry,
            Attempt::Status(status) => Self::of_status(*status),
        }
    }

    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Outcome::Delivered,
            // Timeout, in-flight duplicate, too early, rate limited: all pass.
            408 | 409 | 425 | 429 => Outcome::Retry,
            400..=499 => Outcome::Rejected,
            // 1xx and 3xx never reach a fetch caller as final answers for a
            // POST we sent; treat anything unexpected, and 5xx, as transient.
            _ => Outcome::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_delivers() {
        for s in [200, 201, 204, 299] {
            assert_eq!(Outcome::of_status(s), Outcome::Delivered, "{s}");
        }
        for s in [100, 302, 500, 502, 503, 504, 599] {
            assert_eq!(Outcome::of_status(s), Outcome::Retry, "{s}");
        }
    }

    #[test]
    fn transient_4xx_retry_and_the_rest_are_rejected() {
        for s in [408, 409, 425, 429] {
            assert_eq!(Outcome::of_status(s), Outcome::Retry, "{s}");
        }
        for s in [400, 401, 404, 413, 415, 422, 499] {
            assert_eq!(Outcome::of_status(s), Outcome::Rejected, "{s}");
        }
    }

    #[test]
    fn network_errors_retry() {
        let a = Attempt::NetworkError("Failed to fetch".into());
        assert_eq!(Outcome::of(&a), Outcome::Retry);
    }
}
