//! An entry (one request the user made that is still owed to the server)
//! and a dead letter (an entry that will not be sent again, with why).

use crate::wire::is_valid_idempotency_key;
use std::fmt;

/// The identity of an entry, made when it is enqueued and sent as the
/// `Idempotency-Key` of every attempt, so that the server applies the entry
/// once however often the browser delivers it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey(String);

impl EntryKey {
    /// Accepts a key only if the server will accept it as an idempotency key.
    pub fn parse(key: &str) -> Result<Self, InvalidKey> {
        Self::try_from(key.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The check of [`EntryKey::parse`], for a string the caller owns: kept
/// without a copy (a round reads a thousand keys a page).
impl TryFrom<String> for EntryKey {
    type Error = InvalidKey;

    fn try_from(key: String) -> Result<Self, InvalidKey> {
        if is_valid_idempotency_key(&key) {
            Ok(Self(key))
        } else {
            Err(InvalidKey)
        }
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct InvalidKey;

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entry key must be 1 to 255 printable ASCII characters")
    }
}

impl std::error::Error for InvalidKey {}

/// One queued request, as the platform stores it durably.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: EntryKey,
    pub method: String,
    /// Path (or URL) of the endpoint, such as `/api/posts`.
    pub url: String,
    /// Extra request headers (the transport adds `Content-Type` and the
    /// `Idempotency-Key`).
    pub headers: Vec<(String, String)>,
    /// The request body, already serialised.
    pub body: String,
    /// When the entry was enqueued, in milliseconds since the Unix epoch.
    /// The platform keeps it increasing (it is the queue order; ties are
    /// broken by key).
    pub enqueued_at_ms: f64,
    /// Failed attempts so far (a skipped batch item or a pause does not count).
    pub attempts: u32,
    /// Not to be sent before this time (ms since the epoch): the backoff.
    pub not_before_ms: u64,
    /// Why the last attempt failed, for the page to show.
    pub last_error: Option<String>,
    /// The user it was queued for, once another signed in (`None`: the
    /// user signed in now, or an app that names none). The platform sends
    /// it only with its owner's credentials; the engine never looks at it.
    pub owner: Option<String>,
}

impl Entry {
    /// A fresh `POST` entry, not yet attempted.
    pub fn new(key: EntryKey, url: impl Into<String>, body: impl Into<String>, now_ms: f64) -> Self {
        Self {
            key,
            method: "POST".into(),
            url: url.into(),
            headers: Vec::new(),
            body: body.into(),
            enqueued_at_ms: now_ms,
            attempts: 0,
            not_before_ms: 0,
            last_error: None,
            owner: None,
        }
    }

    /// The bytes this entry adds to a batch request (for batch limits).
    pub fn size(&self) -> usize {
        self.key.as_str().len()
            + self.method.len()
            + self.url.len()
            + self.body.len()
            + self.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
    }
}

/// Why an entry will not be sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadReason {
    /// The server refused it with a status no retry can fix.
    Rejected { status: u16, body: String },
    /// It failed `attempts` times, the last one for `last_error`.
    TooManyAttempts { attempts: u32, last_error: String },
    /// It was still undelivered after `age_ms`.
    TooOld { age_ms: u64, last_error: Option<String> },
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadReason::Rejected { status, body } if body.is_empty() => {
                write!(f, "the server refused it (HTTP {status})")
            }
            DeadReason::Rejected { status, body } => {
                write!(f, "the server refused it (HTTP {status}): {body}")
            }
            DeadReason::TooManyAttempts { attempts, last_error } => {
                write!(f, "gave up after {attempts} attempts; the last: {last_error}")
            }
            DeadReason::TooOld { age_ms, last_error } => {
                write!(f, "gave up after {} hours undelivered", age_ms / 3_600_000)?;
                match last_error {
                    Some(e) => write!(f, "; the last attempt: {e}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// An entry that left the queue without being delivered. It is kept (never
/// dropped silently) until the user retries or discards it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub entry: Entry,
    pub reason: DeadReason,
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_taken_or_refused_alike_from_a_str_and_from_an_owned_string() {
        let long = "k".repeat(256);
        for key in ["k-1", "0190f3a2-7c4e-7b1a-9c3d-2f4e5a6b7c8d", &long[..255]] {
            assert_eq!(EntryKey::parse(key).as_ref().map(EntryKey::as_str), Ok(key));
            assert_eq!(EntryKey::try_from(key.to_owned()), EntryKey::parse(key));
        }
        for key in ["", "has space", "é", "tab\t", &long[..]] {
            assert_eq!(EntryKey::parse(key), Err(InvalidKey), "{key:?}");
            assert_eq!(EntryKey::try_from(key.to_owned()), Err(InvalidKey), "{key:?}");
        }
    }
}
