//! The engine: one queue of entries and everything that happens to them.
//!
//! Lifecycle of an entry: queued → sending → done (deleted) | waiting until
//! T (backoff) | dead (moved to the dead letters, with its reason), and the
//! whole queue can be paused (401/403) until [`Engine::resume`].
//!
//! The platform owns storage and the network; the engine owns decisions:
//!
//! 1. Store an entry durably, then [`Engine::enqueue`] it.
//! 2. Loop on [`Engine::poll_transmit`], send what it returns (one request,
//!    or one batch request), and hand the result to [`Engine::handle`].
//! 3. After each call, carry out every [`Engine::poll_store`] operation
//!    durably, and show every [`Engine::poll_event`].
//! 4. When nothing is to be sent, sleep until [`Engine::poll_timeout`].
//!
//! After a crash the platform builds a new `Engine` from what it stored: an
//! entry whose acknowledgement was never stored is simply sent again, and
//! the server's idempotency makes that harmless. An entry is deleted only
//! on a 2xx for it.

use crate::entry::{DeadLetter, DeadReason, Entry, EntryKey};
use crate::event::Event;
use crate::outcome::{describe, AttemptResult, Outcome, OutcomePolicy, Response};
use crate::retry::RetryPolicy;
use crate::rng::Rng;
use crate::wire::{BatchEntry, BatchRequest, BatchResult};
use std::collections::{BTreeMap, HashMap, VecDeque};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// FIFO delivery: an entry waiting for a retry holds up the ones behind
    /// it, and one request is in flight at a time. A dead-lettered entry
    /// never holds anything up.
    pub ordered: bool,
    pub retry: RetryPolicy,
    pub outcomes: OutcomePolicy,
    /// Send up to this much per request to a batch endpoint; `None` sends
    /// one request per entry.
    pub batch: Option<BatchLimits>,
    /// Requests in flight at once when not ordered.
    pub max_in_flight: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            ordered: true,
            retry: RetryPolicy::default(),
            outcomes: OutcomePolicy::default(),
            batch: None,
            max_in_flight: 4,
        }
    }
}

/// What one batch request may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// Only entries whose URL starts with this (the batch endpoint's
    /// [`crate::wire::BatchEndpoint::prefix`]) go in a batch; empty: any.
    /// The rest, and reads (GET, HEAD), are sent on their own.
    pub prefix: String,
}

impl BatchLimits {
    /// Limits for entries to any path.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self { max_entries, max_bytes, prefix: String::new() }
    }

    /// Whether `entry` may travel in a batch: a request that changes state,
    /// to a path the batch endpoint serves.
    pub fn accepts(&self, entry: &Entry) -> bool {
        !matches!(entry.method.as_str(), "GET" | "HEAD") && entry.url.starts_with(self.prefix.as_str())
    }
}

/// A durable change the platform must make to its store.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp {
    /// Replace the stored entry (its attempts, backoff or error changed).
    Put(Entry),
    /// The server has it: delete it.
    Delete(EntryKey),
    /// Move it from the queue to the dead letters, in one transaction.
    DeadLetter(DeadLetter),
}

/// One request to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit {
    pub id: u64,
    pub entries: Vec<Entry>,
    /// Send as one batch request (else `entries` holds exactly one entry,
    /// sent as its own request).
    pub batch: bool,
}

impl Transmit {
    pub fn batch_request(&self, ordered: bool) -> BatchRequest {
        BatchRequest {
            ordered,
            entries: self
                .entries
                .iter()
                .map(|e| BatchEntry {
                    key: e.key.to_string(),
                    method: e.method.clone(),
                    path: e.url.clone(),
                    headers: e.headers.clone(),
                    body: e.body.clone(),
                })
                .collect(),
        }
    }
}

/// What came back for a [`Transmit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransmitResult {
    /// The answer to a single-entry request.
    Single(AttemptResult),
    /// The per-entry results of a batch request.
    Batch(Vec<BatchResult>),
    /// The batch request as a whole failed (network error, or a non-2xx for
    /// the whole batch). A failure the queue retries is an attempt for
    /// every entry in it; a refusal it would not retry (a 413, a firewall's
    /// 400) is none: the batch is halved, as when it breaks, down to the
    /// entry the refusal concerns, which is then sent outside a batch.
    BatchFailed(AttemptResult),
    /// The batch request failed on the network while the server was
    /// reachable (the platform asked it something small right after, and it
    /// answered): something in this batch breaks the request (a proxy that
    /// drops one entry's bytes, a body a middlebox resets). Not an attempt
    /// for any of its entries: the batch is split in halves, sent at once,
    /// and halved again while a half breaks, so the good entries go and the
    /// one that breaks ends alone, where its failures are its own (retried,
    /// then dead-lettered after `max_attempts`). A batch of one entry is
    /// handled as [`TransmitResult::BatchFailed`].
    BatchBroke(AttemptResult),
}

/// Entries per state (dead letters are counted by the platform's store).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ready to be sent.
    pub queued: usize,
    /// Backing off until their retry time.
    pub waiting: usize,
    /// In a request whose answer has not come back.
    pub sending: usize,
    pub paused: bool,
}

/// Engine order: enqueue time, then key.
type Position = (u64, EntryKey);

fn position(entry: &Entry) -> Position {
    // Non-negative floats order like their bit patterns.
    (entry.enqueued_at_ms.max(0.0).to_bits(), entry.key.clone())
}

/// An entry the engine holds, with what it knows of it beyond the store.
/// (Flags here rather than sets of keys beside the entries: one hash
/// table fewer per flag, in code as in memory.)
#[derive(Debug)]
struct Held {
    entry: Entry,
    /// In a request whose answer has not come back.
    sending: bool,
    /// It was in a batch that broke ([`TransmitResult::BatchBroke`]) or was
    /// refused as a whole: the most entries a batch holding it may carry.
    split: Option<usize>,
    /// A batch of it alone was refused as a whole (too large for a proxy,
    /// or refused by a firewall): it goes outside any batch, where it may
    /// fit (without the batch's envelope and escaping) and where a refusal
    /// is its own.
    alone: bool,
}

#[derive(Debug)]
pub struct Engine {
    config: QueueConfig,
    rng: Rng,
    entries: BTreeMap<Position, Held>,
    index: HashMap<EntryKey, Position>,
    /// Requests whose answer has not come back, with their keys: a few at
    /// most (`max_in_flight`), so a list.
    in_flight: Vec<(u64, Vec<EntryKey>)>,
    next_id: u64,
    paused: bool,
    ops: VecDeque<StoreOp>,
    events: VecDeque<Event>,
}

impl Engine {
    /// A queue holding the entries read from the store. `seed` drives the
    /// retry jitter.
    pub fn new(config: QueueConfig, seed: u64, stored: Vec<Entry>) -> Self {
        let mut queue = Self {
            config,
            rng: Rng::new(seed),
            entries: BTreeMap::new(),
            index: HashMap::new(),
            in_flight: Vec::new(),
            next_id: 1,
            paused: false,
            ops: VecDeque::new(),
            events: VecDeque::new(),
        };
        for entry in stored {
            queue.insert(entry);
        }
        queue
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Adds entries read from the store after the engine was made (the next
    /// page of a long queue): like those given to [`Engine::new`], no
    /// `Queued` event; an entry the engine holds already is skipped.
    pub fn extend(&mut self, stored: impl IntoIterator<Item = Entry>) {
        for entry in stored {
            self.insert(entry);
        }
    }

    /// Adds an entry the platform has already stored durably.
    pub fn enqueue(&mut self, entry: Entry) {
        let key = entry.key.clone();
        if self.insert(entry) {
            self.events.push_back(Event::Queued { key });
        }
    }

    fn insert(&mut self, entry: Entry) -> bool {
        if self.index.contains_key(&entry.key) {
            return false;
        }
        let pos = position(&entry);
        self.index.insert(entry.key.clone(), pos.clone());
        self.entries.insert(pos, Held { entry, sending: false, split: None, alone: false });
        true
    }

    fn remove(&mut self, key: &EntryKey) -> Option<Entry> {
        let pos = self.index.remove(key)?;
        self.entries.remove(&pos).map(|held| held.entry)
    }

    fn held_mut(&mut self, key: &EntryKey) -> Option<&mut Held> {
        let pos = self.index.get(key)?;
        self.entries.get_mut(pos)
    }

    /// The next request to make now, if any.
    pub fn poll_transmit(&mut self, now_ms: u64) -> Option<Transmit> {
        let max_in_flight = if self.config.ordered { 1 } else { self.config.max_in_flight.max(1) };
        if self.paused || self.in_flight.len() >= max_in_flight {
            return None;
        }
        self.expire(now_ms);
        let (max_entries, max_bytes) = match &self.config.batch {
            Some(limits) => (limits.max_entries.max(1), limits.max_bytes),
            None => (1, usize::MAX),
        };
        // Whether it may travel in a batch: the endpoint takes it, and a
        // proxy did not refuse a batch of it alone.
        let in_batch =
            |held: &Held| !held.alone && self.config.batch.as_ref().is_some_and(|limits| limits.accepts(&held.entry));
        let mut picked: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        // The most entries this batch may carry: lowered by entries of a
        // batch that broke.
        let mut most = max_entries;
        let mut batch = false;
        for held in self.entries.values() {
            let entry = &held.entry;
            if held.sending {
                continue;
            }
            if entry.not_before_ms > now_ms {
                if self.config.ordered {
                    break;
                }
                continue;
            }
            if !picked.is_empty() && !in_batch(held) {
                // It goes on its own, in its turn.
                if self.config.ordered {
                    break;
                }
                continue;
            }
            // The first entry always goes, whatever its size: a limit must
            // never strand an entry.
            let limit = most.min(held.split.unwrap_or(usize::MAX));
            if !picked.is_empty() && (picked.len() >= limit || bytes + entry.size() > max_bytes) {
                break;
            }
            most = limit;
            bytes += entry.size();
            if picked.is_empty() {
                batch = in_batch(held);
            }
            picked.push(entry.clone());
            if !batch {
                break;
            }
        }
        if picked.is_empty() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let keys: Vec<EntryKey> = picked.iter().map(|e| e.key.clone()).collect();
        for key in &keys {
            if let Some(held) = self.held_mut(key) {
                held.sending = true;
            }
        }
        self.in_flight.push((id, keys.clone()));
        self.events.push_back(Event::Sending { keys });
        Some(Transmit { id, entries: picked, batch })
    }

    /// Dead-letters entries older than the policy allows.
    fn expire(&mut self, now_ms: u64) {
        let max_age = self.config.retry.max_age_ms as f64;
        let too_old: Vec<EntryKey> = self
            .entries
            .values()
            .filter(|held| !held.sending && now_ms as f64 - held.entry.enqueued_at_ms >= max_age)
            .map(|held| held.entry.key.clone())
            .collect();
        for key in too_old {
            let entry = self.remove(&key).expect("listed above");
            let reason = DeadReason::TooOld {
                age_ms: (now_ms as f64 - entry.enqueued_at_ms) as u64,
                last_error: entry.last_error.clone(),
            };
            self.dead_letter(entry, reason, now_ms);
        }
    }

    /// Applies what came back for transmit `id`. Unknown ids (from before a
    /// restart) are ignored.
    pub fn handle(&mut self, id: u64, result: TransmitResult, now_ms: u64) {
        let Some(at) = self.in_flight.iter().position(|(flying, _)| *flying == id) else {
            return;
        };
        let (_, keys) = self.in_flight.swap_remove(at);
        // Sent again at once, no attempt counted: a batch that broke, or
        // that was refused as a whole (413 from a proxy before the server
        // that takes less than the server advertised; 400 from a firewall
        // that objects to something in one entry), is halved (the first half
        // rounded up), so the entry that breaks it or that the refusal is
        // about ends alone and the others go; a batch of one entry still
        // refused is followed by that entry outside a batch, whose answer
        // is its own. (A refusal of a batch says nothing about any one
        // entry in it.)
        let refused = matches!(&result, TransmitResult::BatchFailed(attempt @ AttemptResult::Response(_))
            if self.config.outcomes.classify(attempt, now_ms) == Outcome::Dead);
        if refused || matches!(result, TransmitResult::BatchBroke(_)) {
            let (half, alone) = (keys.len().div_ceil(2), keys.len() == 1);
            if !alone || refused {
                for key in keys {
                    if let Some(held) = self.held_mut(&key) {
                        held.sending = false;
                        held.split = Some(half);
                        held.alone |= alone;
                    }
                }
                return;
            }
        }
        let result = match result {
            TransmitResult::BatchBroke(attempt) => TransmitResult::BatchFailed(attempt),
            other => other,
        };
        let whole_batch_failed = matches!(result, TransmitResult::BatchFailed(_));
        let items: &[BatchResult] = match &result {
            TransmitResult::Batch(items) => items,
            _ => &[],
        };
        // Entries that failed as one request wait as one: one jitter draw
        // for the batch, so the retry is one batch again, not many small ones.
        let mut shared_draw = None;
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(held) = self.held_mut(&key) {
                held.sending = false;
            }
            // The server answers in the order sent (bgsync-server does); an
            // answer in another order is looked for.
            let item = items
                .get(i)
                .filter(|item| item.key == key.as_str())
                .or_else(|| items.iter().find(|item| item.key == key.as_str()));
            let attempt = match &result {
                TransmitResult::Single(r) | TransmitResult::BatchFailed(r) | TransmitResult::BatchBroke(r) => r.clone(),
                TransmitResult::Batch(_) => match item {
                    Some(BatchResult { status: Some(status), retry_after, body, .. }) => {
                        AttemptResult::Response(Response {
                            status: *status,
                            retry_after: retry_after.clone(),
                            body: body.clone(),
                        })
                    }
                    _ => AttemptResult::Skipped,
                },
            };
            let outcome = self.config.outcomes.classify(&attempt, now_ms);
            self.apply(key, outcome, &attempt, now_ms, whole_batch_failed.then_some(&mut shared_draw));
        }
        if self.entries.is_empty() {
            self.events.push_back(Event::Drained);
        }
    }

    /// `shared_draw`: for the entries of a batch that failed as a whole,
    /// the jitter drawn for the first one, reused for the others.
    fn apply(
        &mut self,
        key: EntryKey,
        outcome: Outcome,
        attempt: &AttemptResult,
        now_ms: u64,
        shared_draw: Option<&mut Option<u64>>,
    ) {
        match outcome {
            Outcome::Skipped => {}
            Outcome::Done => {
                if self.remove(&key).is_some() {
                    self.ops.push_back(StoreOp::Delete(key.clone()));
                    self.events.push_back(Event::Sent { key });
                }
            }
            Outcome::Dead => {
                let Some(entry) = self.remove(&key) else {
                    return;
                };
                let (status, body) = match attempt {
                    AttemptResult::Response(r) => (r.status, r.body.clone()),
                    _ => (0, String::new()),
                };
                self.dead_letter(entry, DeadReason::Rejected { status, body }, now_ms);
            }
            Outcome::Pause => {
                let status = match attempt {
                    AttemptResult::Response(r) => r.status,
                    _ => 0,
                };
                if let Some(entry) = self.entry_mut(&key) {
                    entry.last_error = Some(describe(attempt));
                    let entry = entry.clone();
                    self.ops.push_back(StoreOp::Put(entry));
                }
                if !self.paused {
                    self.paused = true;
                    self.events.push_back(Event::Paused { status });
                }
            }
            Outcome::Retry { retry_after_ms } => {
                let Some(entry) = self.entry_mut(&key) else {
                    return;
                };
                entry.attempts += 1;
                entry.last_error = Some(describe(attempt));
                let attempts = entry.attempts;
                if attempts >= self.config.retry.max_attempts {
                    let entry = self.remove(&key).expect("found above");
                    let last_error = entry.last_error.clone().unwrap_or_default();
                    self.dead_letter(entry, DeadReason::TooManyAttempts { attempts, last_error }, now_ms);
                    return;
                }
                let delay = match shared_draw {
                    Some(draw) => {
                        let draw = *draw.get_or_insert_with(|| self.rng.next_u64());
                        self.config.retry.delay_with_draw(attempts, retry_after_ms, draw)
                    }
                    None => self.config.retry.delay_ms(attempts, retry_after_ms, &mut self.rng),
                };
                let entry = self.entry_mut(&key).expect("found above");
                entry.not_before_ms = now_ms.saturating_add(delay);
                let entry = entry.clone();
                self.events.push_back(Event::RetryScheduled {
                    key,
                    at_ms: entry.not_before_ms,
                    error: entry.last_error.clone().unwrap_or_default(),
                });
                self.ops.push_back(StoreOp::Put(entry));
            }
        }
    }

    fn entry_mut(&mut self, key: &EntryKey) -> Option<&mut Entry> {
        self.held_mut(key).map(|held| &mut held.entry)
    }

    fn dead_letter(&mut self, entry: Entry, reason: DeadReason, now_ms: u64) {
        self.events.push_back(Event::DeadLettered { key: entry.key.clone(), reason: reason.clone() });
        self.ops.push_back(StoreOp::DeadLetter(DeadLetter { entry, reason, at_ms: now_ms }));
    }

    /// Makes every waiting entry due now: the user asked to retry, or the
    /// browser says the network is back, so waiting out a backoff (even a
    /// server's `Retry-After`) would only delay what may now succeed.
    pub fn expedite(&mut self) {
        for held in self.entries.values_mut() {
            held.entry.not_before_ms = 0;
        }
    }

    /// New credentials arrived: send again.
    pub fn resume(&mut self) {
        if self.paused {
            self.paused = false;
            self.events.push_back(Event::Resumed);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// When [`Engine::poll_transmit`] will next have something to send, if
    /// nothing changes before: `None` while paused, while the in-flight
    /// limit is reached, or when the queue is empty.
    pub fn poll_timeout(&self) -> Option<u64> {
        let max_in_flight = if self.config.ordered { 1 } else { self.config.max_in_flight.max(1) };
        if self.paused || self.in_flight.len() >= max_in_flight {
            return None;
        }
        let mut waiting = self.entries.values().filter(|held| !held.sending).map(|held| held.entry.not_before_ms);
        if self.config.ordered {
            waiting.next()
        } else {
            waiting.min()
        }
    }

    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.ops.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How many entries are in each state at `now_ms`, for the UI.
    pub fn counts(&self, now_ms: u64) -> Counts {
        let mut counts = Counts { paused: self.paused, ..Counts::default() };
        for held in self.entries.values() {
            if held.sending {
                counts.sending += 1;
            } else if held.entry.not_before_ms > now_ms {
                counts.waiting += 1;
            } else {
                counts.queued += 1;
            }
        }
        counts
    }

    /// Entries still owed to the server (queued, waiting or in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Entries held and not in a request on its way (queued or waiting):
    /// what the next requests can carry before more is read from the store.
    pub fn unsent(&self) -> usize {
        let sending: usize = self.in_flight.iter().map(|(_, keys)| keys.len()).sum();
        self.entries.len().saturating_sub(sending)
    }

    /// The entries in queue order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().map(|held| &held.entry)
    }
}

#[cfg(test)]
mod tests;
