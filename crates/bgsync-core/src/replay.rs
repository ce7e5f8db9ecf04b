//! One replay round: deliver what is queued, in enqueue order, and decide
//! for each entry whether it may be deleted.
//!
//! The platform reads the queue, hands it to [`Replay::new`], then loops:
//! take [`Replay::next_to_send`], send it, report the result with
//! [`Replay::record`] and carry out the returned [`Action`] durably before
//! asking for the next entry. An entry is only ever deleted on
//! [`Action::Delete`], which only a 2xx produces, so a crash anywhere in the
//! loop leaves every unacknowledged entry stored.
//!
//! A rejected entry (a 4xx no retry can fix) does not hold up the entries
//! behind it; a transient failure does, so delivery order is enqueue order.

use crate::entry::{Entry, EntryKey};
use crate::outcome::{Attempt, Outcome};
use std::collections::VecDeque;

/// What the platform must do to its store after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The server has the entry: delete it from the store.
    Delete(EntryKey),
    /// Store this updated entry in place of the old one (attempt count and
    /// error recorded), and keep it queued.
    Update(Entry),
}

/// How a round ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries the server acknowledged in this round.
    pub delivered: usize,
    /// Entries left queued that a later round may deliver.
    pub retrying: usize,
    /// Entries the server refused for good (now or in an earlier round).
    pub rejected: usize,
}

impl Summary {
    /// Whether the browser should schedule another attempt: the sync
    /// event's promise is rejected exactly when this is true.
    pub fn needs_retry(&self) -> bool {
        self.retrying > 0
    }
}

#[derive(Debug)]
pub struct Replay {
    pending: VecDeque<Entry>,
    in_flight: Option<Entry>,
    summary: Summary,
}

impl Replay {
    /// Starts a round over the entries read from the store, in any order.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        // The feed is a timeline: deliver in the order the user wrote.
        entries.sort_by(|a, b| {
            a.enqueued_at_ms
                .total_cmp(&b.enqueued_at_ms)
                .then_with(|| a.key.cmp(&b.key))
        });
        let mut summary = Summary::default();
        let pending = entries
            .into_iter()
            .filter(|e| {
                if e.rejected {
                    summary.rejected += 1;
                }
                !e.rejected
            })
            .collect();
        Self {
            pending,
            in_flight: None,
            summary,
        }
    }

    /// The next entry to send, or `None` when the round is over. Entries
    /// are sent one at a time: call [`Replay::record`] before asking again.
    pub fn next_to_send(&mut self) -> Option<Entry> {
        assert!(
            self.in_flight.is_none(),
            "Replay::next_to_send called before the previous attempt was recorded"
        );
        let entry = self.pending.pop_front()?;
        self.in_flight = Some(entry.clone());
        Some(entry)
    }

    /// Records the result of sending the entry last returned by `next_to_send`.
    pub fn record(&mut self, attempt: Attempt) -> Action {
        let mut entry = self
            .in_flight
            .take()
            .expect("Replay::record called with no entry in flight");
        match Outcome::of(&attempt) {
            Outcome::Delivered => {
                self.summary.delivered += 1;
                Action::Delete(entry.key)
            }
            outcome => {
                entry.attempts += 1;
                entry.last_error = Some(describe(&attempt));
                if outcome == Outcome::Rejected {
                    entry.rejected = true;
                    self.summary.rejected += 1;
                } else {
                    // The queue is a timeline: a later entry never overtakes
                    // one that must wait, so the round ends here and the
                    // rest waits with it (an offline round also stops after
                    // one failed request instead of one per entry).
                    self.summary.retrying += 1 + self.pending.len();
                    self.pending.clear();
                }
                Action::Update(entry)
            }
        }
    }

    /// The tally so far; final once `next_to_send` has returned `None`.
    pub fn summary(&self) -> Summary {
        self.summary
    }
}

fn describe(attempt: &Attempt) -> String {
    match attempt {
        Attempt::Status(status) => format!("the server answered HTTP {status}"),
        Attempt::NetworkError(message) => format!("the server could not be reached ({message})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, at: f64) -> Entry {
        Entry::new(EntryKey::parse(key).unwrap(), "/api/posts", "{}", at)
    }

    fn run(replay: &mut Replay, results: &[Attempt]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut results = results.iter();
        while replay.next_to_send().is_some() {
            actions.push(replay.record(results.next().expect("a result per entry").clone()));
        }
        actions
    }

    #[test]
    fn delivers_in_enqueue_order_and_deletes_only_on_2xx() {
        let mut r = Replay::new(vec![entry("b", 2.0), entry("a", 1.0), entry("c", 3.0)]);
        let order: Vec<_> = std::iter::from_fn(|| {
            let e = r.next_to_send()?;
            r.record(Attempt::Status(201));
            Some(e.key.to_string())
        })
        .collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(
            r.summary(),
            Summary {
                delivered: 3,
                retrying: 0,
                rejected: 0
            }
        );
        assert!(!r.summary().needs_retry());
    }

    #[test]
    fn a_transient_failure_keeps_the_entry_and_holds_up_the_rest() {
        let mut r = Replay::new(vec![entry("a", 1.0), entry("b", 2.0), entry("c", 3.0)]);
        let actions = run(&mut r, &[Attempt::Status(201), Attempt::Status(500)]);
        assert_eq!(actions[0], Action::Delete(EntryKey::parse("a").unwrap()));
        let Action::Update(b) = &actions[1] else {
            panic!("{actions:?}")
        };
        assert_eq!((b.attempts, b.rejected), (1, false));
        assert_eq!(
            b.last_error.as_deref(),
            Some("the server answered HTTP 500")
        );
        assert_eq!(actions.len(), 2, "c must not overtake b");
        assert_eq!(
            r.summary(),
            Summary {
                delivered: 1,
                retrying: 2,
                rejected: 0
            }
        );
        assert!(r.summary().needs_retry());
    }

    #[test]
    fn network_errors_are_recorded_for_the_user() {
        let mut r = Replay::new(vec![entry("a", 1.0)]);
        let actions = run(&mut r, &[Attempt::NetworkError("Failed to fetch".into())]);
        let Action::Update(a) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            a.last_error.as_deref(),
            Some("the server could not be reached (Failed to fetch)")
        );
    }

    #[test]
    fn a_rejected_entry_does_not_hold_up_the_rest() {
        let mut r = Replay::new(vec![entry("a", 1.0), entry("b", 2.0)]);
        let actions = run(&mut r, &[Attempt::Status(400), Attempt::Status(201)]);
        assert_eq!(actions[1], Action::Delete(EntryKey::parse("b").unwrap()));
        assert_eq!(
            r.summary(),
            Summary {
                delivered: 1,
                retrying: 0,
                rejected: 1
            }
        );
    }

    #[test]
    fn rejected_entries_are_kept_but_not_resent() {
        let mut r = Replay::new(vec![entry("a", 1.0)]);
        let actions = run(&mut r, &[Attempt::Status(422)]);
        let Action::Update(a) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert!(a.rejected);
        assert!(!r.summary().needs_retry());

        // The next round skips it but still counts it.
        let mut next = Replay::new(vec![a.clone(), entry("b", 2.0)]);
        let actions = run(&mut next, &[Attempt::Status(201)]);
        assert_eq!(actions, [Action::Delete(EntryKey::parse("b").unwrap())]);
        assert_eq!(
            next.summary(),
            Summary {
                delivered: 1,
                retrying: 0,
                rejected: 1
            }
        );
    }

    #[test]
    #[should_panic(expected = "before the previous attempt was recorded")]
    fn one_attempt_at_a_time() {
        let mut r = Replay::new(vec![entry("a", 1.0), entry("b", 2.0)]);
        r.next_to_send();
        r.next_to_send();
    }
}
