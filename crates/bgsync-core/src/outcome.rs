//! What one delivery attempt means for its entry.
//!
//! Only a 2xx proves the server has the entry (a server's replay of the
//! stored result for a repeated key is a 2xx too). Transient failures are
//! retried, and so are redirects (an answer that is not the endpoint's:
//! an expired session sent to a sign-in page, a captive portal), 401/403
//! pause the queue until new credentials arrive, and any other answer moves
//! the entry to the dead letters with the status and body kept. Which
//! statuses retry and which pause is configurable per queue.

use crate::retry::parse_retry_after;

/// An HTTP answer, as far as the engine cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body (kept for dead letters; the platform may truncate it).
    pub body: String,
}

impl Response {
    pub fn status(status: u16) -> Self {
        Self { status, retry_after: None, body: String::new() }
    }
}

/// The result of one attempt to deliver an entry, as the platform saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Response(Response),
    /// Answered with a redirect, which the platform does not follow (a
    /// followed redirect ends at another resource, whose 200 would pass for
    /// the entry's). No answer of the endpoint's, so no proof of anything:
    /// retried.
    Redirected,
    /// No HTTP answer: offline, refused, reset, timed out, lost.
    NetworkError(String),
    /// Part of a batch the server did not attempt (it stopped at an earlier
    /// failure of an ordered batch): not an attempt at all.
    Skipped,
}

/// What to do with the entry after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: delete it.
    Done,
    /// Try again later, not before `retry_after_ms` if the server said so.
    Retry { retry_after_ms: Option<u64> },
    /// Credentials are missing or expired: keep it and pause the queue.
    Pause,
    /// It can never succeed as it is: move it to the dead letters.
    Dead,
    /// Not attempted: back to the queue as it was.
    Skipped,
}

/// Which statuses mean what, per queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomePolicy {
    pub retry: Vec<u16>,
    pub pause: Vec<u16>,
}

impl Default for OutcomePolicy {
    fn default() -> Self {
        Self {
            // Redirects (not the endpoint's answer), timeout, the same key
            // still in flight, too early, rate limited, and the server-side
            // statuses that pass.
            retry: vec![300, 301, 302, 303, 307, 308, 408, 409, 425, 429, 500, 502, 503, 504],
            pause: vec![401, 403],
        }
    }
}

impl OutcomePolicy {
    pub fn classify(&self, result: &AttemptResult, now_ms: u64) -> Outcome {
        match result {
            AttemptResult::Skipped => Outcome::Skipped,
            AttemptResult::NetworkError(_) | AttemptResult::Redirected => Outcome::Retry { retry_after_ms: None },
            AttemptResult::Response(r) if (200..300).contains(&r.status) => Outcome::Done,
            AttemptResult::Response(r) if self.pause.contains(&r.status) => Outcome::Pause,
            AttemptResult::Response(r) if self.retry.contains(&r.status) => {
                Outcome::Retry { retry_after_ms: r.retry_after.as_deref().and_then(|v| parse_retry_after(v, now_ms)) }
            }
            AttemptResult::Response(_) => Outcome::Dead,
        }
    }
}

/// A short description of a failed attempt, for the user.
pub fn describe(result: &AttemptResult) -> String {
    match result {
        AttemptResult::Response(r) if (300..400).contains(&r.status) => {
            format!("the server answered HTTP {} (a redirect), not with the request's answer", r.status)
        }
        AttemptResult::Response(r) => format!("the server answered HTTP {}", r.status),
        AttemptResult::Redirected => {
            "the server answered with a redirect (to a sign-in page? a captive portal?), not with the request's \
             answer"
                .into()
        }
        AttemptResult::NetworkError(message) => {
            format!("the server could not be reached ({message})")
        }
        AttemptResult::Skipped => "not attempted".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn classify(status: u16) -> Outcome {
        OutcomePolicy::default().classify(&AttemptResult::Response(Response::status(status)), 0)
    }

    #[test]
    fn the_documented_table() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify(s), Outcome::Done, "{s}");
        }
        for s in [300, 301, 302, 303, 307, 308, 408, 409, 425, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s), Outcome::Retry { retry_after_ms: None }, "{s}");
        }
        for s in [401, 403] {
            assert_eq!(classify(s), Outcome::Pause, "{s}");
        }
        for s in [304, 400, 404, 410, 413, 415, 422, 501, 505] {
            assert_eq!(classify(s), Outcome::Dead, "{s}");
        }
        let lost = AttemptResult::NetworkError("Failed to fetch".into());
        assert_eq!(OutcomePolicy::default().classify(&lost, 0), Outcome::Retry { retry_after_ms: None });
        let redirected = AttemptResult::Redirected;
        assert_eq!(OutcomePolicy::default().classify(&redirected, 0), Outcome::Retry { retry_after_ms: None });
        assert!(describe(&redirected).contains("redirect"));
        assert!(describe(&AttemptResult::Response(Response::status(302))).contains("redirect"));
    }

    #[test]
    fn retry_after_is_read_from_retryable_answers_only() {
        let r =
            |status| AttemptResult::Response(Response { status, retry_after: Some("7".into()), body: String::new() });
        let p = OutcomePolicy::default();
        assert_eq!(p.classify(&r(429), 0), Outcome::Retry { retry_after_ms: Some(7000) });
        assert_eq!(p.classify(&r(400), 0), Outcome::Dead);
    }

    #[test]
    fn the_policy_is_configurable() {
        let p = OutcomePolicy { retry: vec![404], pause: vec![] };
        assert_eq!(
            p.classify(&AttemptResult::Response(Response::status(404)), 0),
            Outcome::Retry { retry_after_ms: None }
        );
        assert_eq!(p.classify(&AttemptResult::Response(Response::status(401)), 0), Outcome::Dead);
    }

    proptest! {
        #[test]
        fn every_status_has_exactly_one_meaning(status in 100u16..600) {
            let outcome = classify(status);
            let done = (200..300).contains(&status);
            prop_assert_eq!(outcome == Outcome::Done, done);
            if !done {
                let retry = [300, 301, 302, 303, 307, 308, 408, 409, 425, 429, 500, 502, 503, 504].contains(&status);
                let pause = status == 401 || status == 403;
                prop_assert_eq!(matches!(outcome, Outcome::Retry { .. }), retry);
                prop_assert_eq!(outcome == Outcome::Pause, pause);
                prop_assert_eq!(outcome == Outcome::Dead, !retry && !pause);
            }
        }
    }
}
