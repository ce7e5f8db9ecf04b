//! A queued entry: one request the user made that is still owed to the server.

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
        if is_valid_idempotency_key(key) {
            Ok(Self(key.to_owned()))
        } else {
            Err(InvalidKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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

/// One queued request, as it is stored durably by the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: EntryKey,
    /// Path of the endpoint the body is sent to, such as `/api/posts`.
    pub url: String,
    /// The request body, already serialised (JSON for the feed app).
    pub body: String,
    /// When the entry was enqueued, in milliseconds since the Unix epoch
    /// (given by the platform; the core reads no clock).
    pub enqueued_at_ms: f64,
    /// How many delivery attempts have failed so far.
    pub attempts: u32,
    /// Why the last attempt failed, for the page to show.
    pub last_error: Option<String>,
    /// The server refused the entry for good (a 4xx no retry can fix). It
    /// stays stored and shown until the user deals with it, and is not sent
    /// again by a replay.
    pub rejected: bool,
}

impl Entry {
    /// A fresh entry, not yet attempted.
    pub fn new(
        key: EntryKey,
        url: impl Into<String>,
        body: impl Into<String>,
        now_ms: f64,
    ) -> Self {
        Self {
            key,
            url: url.into(),
            body: body.into(),
            enqueued_at_ms: now_ms,
            attempts: 0,
            last_error: None,
            rejected: false,
        }
    }
}
