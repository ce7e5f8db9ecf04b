//! Deterministic simulation: the engine against a simulated server and
//! network, driven from a seed.
//!
//! Each seed draws a world: how many entries arrive and when, whether the
//! queue is ordered and batched, latency, dropped requests, responses lost
//! after the server committed, requests the network delivers twice, bursts
//! of 5xx, 429 with `Retry-After`, a window of 401, poison entries the
//! server always refuses, and client crashes (store kept, memory lost)
//! between any two steps, even between applying two store operations.
//!
//! Invariants are checked after every step and at the end:
//! - the server applies an entry at most once;
//! - no entry is deleted from the store before a 2xx for it arrived;
//! - an ordered queue's entries are applied in enqueue order;
//! - every retry delay is within the policy, and equals a capped
//!   `Retry-After` when the server sent one;
//! - at the end every entry was either applied exactly once and deleted, or
//!   is in the dead letters with a reason (a refused entry never applied).
//!
//! `BGSYNC_SIM_SEEDS=N` runs N seeds (default 10,000);
//! `BGSYNC_SIM_SEED=S` replays one seed, which a failure prints.

use bgsync_core::wire::BatchResult;
use bgsync_core::{
    AttemptResult, BatchLimits, DeadLetter, DeadReason, Engine, Entry, EntryKey, QueueConfig, Response, RetryPolicy,
    StoreOp, Transmit, TransmitResult,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// SplitMix64: the world's own randomness, apart from the engine's.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The world a seed draws.
#[derive(Debug)]
struct World {
    entries: usize,
    enqueue_until_ms: u64,
    latency_ms: (u64, u64),
    p_drop: f64,
    p_lose_response: f64,
    p_duplicate: f64,
    p_poison: f64,
    p_429: f64,
    /// 5xx bursts as (start, end) times.
    bursts: Vec<(u64, u64)>,
    /// The server answers 401 in this window.
    unauthorised: Option<(u64, u64)>,
    p_crash_per_step: f64,
    request_timeout_ms: u64,
}

enum Msg {
    /// A request on its way to the server. `echo` requests are the network's
    /// duplicates: the server handles them, nobody reads the answer.
    Request { transmit: Transmit, incarnation: u64, echo: bool },
    /// An answer (or a timeout) on its way to the client.
    Answer { id: u64, result: TransmitResult, incarnation: u64 },
}

struct Server {
    /// Key → the stored status (the idempotency store).
    stored: HashMap<EntryKey, u16>,
    applied: Vec<EntryKey>,
    poison: HashSet<EntryKey>,
}

struct Sim {
    seed: u64,
    dice: Dice,
    world: World,
    config: QueueConfig,
    now: u64,
    queue: Engine,
    incarnation: u64,
    store: BTreeMap<EntryKey, Entry>,
    dead: BTreeMap<EntryKey, DeadLetter>,
    net: Vec<(u64, u64, Msg)>,
    msg_seq: u64,
    server: Server,
    enqueued: Vec<EntryKey>,
    next_enqueue: Vec<u64>,
    acked: HashSet<EntryKey>,
    /// The `Retry-After` (ms) of the last answer handed over for a key.
    retry_after: HashMap<EntryKey, Option<u64>>,
    resume_at: Option<u64>,
    steps: u64,
    /// The keys each transmit of this incarnation carries.
    transmit_keys: HashMap<u64, Vec<EntryKey>>,
    stats: Stats,
}

/// What the seeds exercised, summed, so the test can show (and check) that
/// every fault actually happened.
#[derive(Debug, Default)]
struct Stats {
    entries: u64,
    applied: u64,
    refused: u64,
    gave_up: u64,
    crashes: u64,
    pauses: u64,
    retries: u64,
    retry_after: u64,
    batches: u64,
    replays: u64,
    /// Batches that failed on the network while the server was reachable:
    /// split.
    splits: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.entries += o.entries;
        self.applied += o.applied;
        self.refused += o.refused;
        self.gave_up += o.gave_up;
        self.crashes += o.crashes;
        self.pauses += o.pauses;
        self.retries += o.retries;
        self.retry_after += o.retry_after;
        self.batches += o.batches;
        self.replays += o.replays;
        self.splits += o.splits;
    }
}

macro_rules! ensure {
    ($sim:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            panic!(
                "seed {} at t={}ms: {}\nreplay: BGSYNC_SIM_SEED={} cargo test -p bgsync-core --test simulation -- --nocapture",
                $sim.seed, $sim.now, format!($($fmt)+), $sim.seed
            );
        }
    };
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut dice = Dice(seed ^ 0x5EED);
        let faulty = |d: &mut Dice, p: f64| {
            if d.chance(0.7) {
                p * d.below(100) as f64 / 100.0
            } else {
                0.0
            }
        };
        let bursts = (0..dice.below(4))
            .map(|_| {
                let start = dice.below(60_000);
                (start, start + dice.range(1_000, 40_000))
            })
            .collect();
        let world = World {
            entries: dice.range(1, 25) as usize,
            enqueue_until_ms: dice.range(0, 60_000),
            latency_ms: {
                let lo = dice.range(1, 200);
                (lo, lo + dice.below(500))
            },
            p_drop: faulty(&mut dice, 0.3),
            p_lose_response: faulty(&mut dice, 0.3),
            p_duplicate: faulty(&mut dice, 0.2),
            p_poison: faulty(&mut dice, 0.2),
            p_429: faulty(&mut dice, 0.2),
            bursts,
            unauthorised: dice.chance(0.2).then(|| {
                let start = dice.below(50_000);
                (start, start + dice.range(1_000, 30_000))
            }),
            p_crash_per_step: faulty(&mut dice, 0.05),
            request_timeout_ms: dice.range(1_000, 10_000),
        };
        let config = QueueConfig {
            ordered: dice.chance(0.6),
            max_in_flight: dice.range(1, 4) as usize,
            batch: dice.chance(0.5).then(|| BatchLimits::new(dice.range(1, 6) as usize, dice.range(40, 400) as usize)),
            retry: RetryPolicy {
                base_ms: dice.range(10, 2_000),
                factor: dice.range(1, 3) as u32,
                cap_ms: dice.range(2_000, 120_000),
                retry_after_cap_ms: dice.range(1_000, 60_000),
                max_attempts: if dice.chance(0.3) { dice.range(1, 4) as u32 } else { 1_000 },
                ..RetryPolicy::default()
            },
            ..QueueConfig::default()
        };
        let mut next_enqueue: Vec<u64> = (0..world.entries).map(|_| dice.below(world.enqueue_until_ms + 1)).collect();
        next_enqueue.sort_unstable_by(|a, b| b.cmp(a));
        let queue = Engine::new(config.clone(), seed, Vec::new());
        Self {
            seed,
            dice,
            world,
            config,
            now: 0,
            queue,
            incarnation: 0,
            store: BTreeMap::new(),
            dead: BTreeMap::new(),
            net: Vec::new(),
            msg_seq: 0,
            server: Server { stored: HashMap::new(), applied: Vec::new(), poison: HashSet::new() },
            enqueued: Vec::new(),
            next_enqueue,
            acked: HashSet::new(),
            retry_after: HashMap::new(),
            resume_at: None,
            steps: 0,
            transmit_keys: HashMap::new(),
            stats: Stats::default(),
        }
    }

    fn send(&mut self, at: u64, msg: Msg) {
        self.msg_seq += 1;
        self.net.push((at, self.msg_seq, msg));
    }

    fn latency(&mut self) -> u64 {
        self.dice.range(self.world.latency_ms.0, self.world.latency_ms.1)
    }

    fn run(mut self) -> Stats {
        loop {
            self.steps += 1;
            ensure!(self, self.steps < 200_000, "no progress after {} steps", self.steps);
            self.pump();
            let Some(next) = self.next_time() else { break };
            ensure!(self, next >= self.now, "time went backwards");
            self.now = next;
            self.step();
        }
        self.check_end();
        self.stats.entries = self.enqueued.len() as u64;
        self.stats.applied = self.server.applied.len() as u64;
        for dl in self.dead.values() {
            match dl.reason {
                DeadReason::Rejected { .. } => self.stats.refused += 1,
                _ => self.stats.gave_up += 1,
            }
        }
        self.stats
    }

    /// Sends whatever the engine wants to send now.
    fn pump(&mut self) {
        while let Some(transmit) = self.queue.poll_transmit(self.now) {
            self.apply_ops(None);
            self.transmit_keys.insert(transmit.id, transmit.entries.iter().map(|e| e.key.clone()).collect());
            self.stats.batches += u64::from(transmit.batch);
            let latency = self.latency();
            if self.dice.chance(self.world.p_drop) {
                // Lost on the way: the client times out.
                let at = self.now + self.world.request_timeout_ms;
                let result = self.network_error(&transmit, "request lost");
                self.send(at, Msg::Answer { id: transmit.id, result, incarnation: self.incarnation });
            } else {
                if self.dice.chance(self.world.p_duplicate) {
                    let at = self.now + latency + self.dice.below(5_000);
                    self.send(
                        at,
                        Msg::Request { transmit: transmit.clone(), incarnation: self.incarnation, echo: true },
                    );
                }
                let at = self.now + latency;
                self.send(at, Msg::Request { transmit, incarnation: self.incarnation, echo: false });
            }
        }
        self.apply_ops(None);
        if self.queue.is_paused() && self.resume_at.is_none() {
            self.stats.pauses += 1;
            // The page gets new credentials a little later, and they only
            // work once the server's 401 window is over.
            let after = self.world.unauthorised.map_or(0, |(_, end)| end);
            self.resume_at = Some((self.now + self.dice.range(100, 10_000)).max(after));
        }
    }

    fn network_error(&mut self, transmit: &Transmit, why: &str) -> TransmitResult {
        let error = AttemptResult::NetworkError(why.into());
        // The platform's probe after a failed batch: the server answers it
        // unless the network drops that too; then the batch is split.
        if transmit.batch && transmit.entries.len() > 1 && !self.dice.chance(self.world.p_drop) {
            self.stats.splits += 1;
            TransmitResult::BatchBroke(error)
        } else if transmit.batch {
            TransmitResult::BatchFailed(error)
        } else {
            TransmitResult::Single(error)
        }
    }

    fn next_time(&self) -> Option<u64> {
        let candidates = [
            self.net.iter().map(|(at, _, _)| *at).min(),
            self.queue.poll_timeout().map(|t| t.max(self.now + 1)),
            self.next_enqueue.last().copied(),
            self.resume_at,
        ];
        candidates.into_iter().flatten().min()
    }

    fn step(&mut self) {
        if self.resume_at.is_some_and(|t| t <= self.now) {
            self.resume_at = None;
            self.queue.resume();
        }
        while self.next_enqueue.last().is_some_and(|t| *t <= self.now) {
            self.next_enqueue.pop();
            self.enqueue();
        }
        // Everything due now, in sending order.
        let mut due: Vec<(u64, u64, Msg)> = Vec::new();
        let mut rest = Vec::new();
        for m in self.net.drain(..) {
            if m.0 <= self.now {
                due.push(m)
            } else {
                rest.push(m)
            }
        }
        self.net = rest;
        due.sort_by_key(|(at, seq, _)| (*at, *seq));
        for (_, _, msg) in due {
            match msg {
                Msg::Request { transmit, incarnation, echo } => self.serve(transmit, incarnation, echo),
                Msg::Answer { id, result, incarnation } => self.answer(id, result, incarnation),
            }
            self.check_always();
        }
        if self.dice.chance(self.world.p_crash_per_step) {
            self.crash();
        }
    }

    fn enqueue(&mut self) {
        let n = self.enqueued.len();
        let key = EntryKey::parse(&format!("e{n:03}")).unwrap();
        // Strictly increasing, as the platform keeps it.
        let at = self.now as f64 + n as f64 / 1_000.0;
        let body = "x".repeat(self.dice.range(1, 120) as usize);
        let entry = Entry::new(key.clone(), "/api/posts", body, at);
        if self.dice.chance(self.world.p_poison) {
            self.server.poison.insert(key.clone());
        }
        self.store.insert(key.clone(), entry.clone());
        self.enqueued.push(key);
        self.queue.enqueue(entry);
    }

    fn in_window(&self, window: Option<(u64, u64)>) -> bool {
        window.is_some_and(|(a, b)| (a..b).contains(&self.now))
    }

    /// The server handles a request; the answer travels back (or is lost).
    fn serve(&mut self, transmit: Transmit, incarnation: u64, echo: bool) {
        let bursting = self.world.bursts.clone().into_iter().any(|w| self.in_window(Some(w)));
        let whole = if self.in_window(self.world.unauthorised) {
            Some(Response::status(401))
        } else if bursting {
            Some(Response::status(if self.dice.chance(0.5) { 503 } else { 500 }))
        } else {
            None
        };
        let result = match whole {
            Some(r) if transmit.batch => TransmitResult::BatchFailed(AttemptResult::Response(r)),
            Some(r) => TransmitResult::Single(AttemptResult::Response(r)),
            None if transmit.batch => {
                let mut results = Vec::new();
                let mut stopped = false;
                for entry in &transmit.entries {
                    let status = (!stopped).then(|| self.apply_one(entry));
                    let (status, retry_after) = match status {
                        Some((s, ra)) => (Some(s), ra),
                        None => (None, None),
                    };
                    if self.config.ordered && status.is_some_and(|s| !(200..300).contains(&s)) {
                        stopped = true;
                    }
                    results.push(BatchResult { key: entry.key.to_string(), status, retry_after, body: String::new() });
                }
                TransmitResult::Batch(results)
            }
            None => {
                let (status, retry_after) = self.apply_one(&transmit.entries[0]);
                TransmitResult::Single(AttemptResult::Response(Response { status, retry_after, body: String::new() }))
            }
        };
        if echo {
            return;
        }
        if self.dice.chance(self.world.p_lose_response) {
            // Committed, but the answer never arrives: the client times out.
            let result = self.network_error(&transmit, "response lost");
            let at = self.now + self.world.request_timeout_ms;
            self.send(at, Msg::Answer { id: transmit.id, result, incarnation });
        } else {
            let at = self.now + self.latency();
            self.send(at, Msg::Answer { id: transmit.id, result, incarnation });
        }
    }

    /// One entry on the server: poison → 400, sometimes 429, else applied
    /// once (a repeated key answers the stored status).
    fn apply_one(&mut self, entry: &Entry) -> (u16, Option<String>) {
        if let Some(status) = self.server.stored.get(&entry.key) {
            self.stats.replays += 1;
            return (*status, None);
        }
        if self.server.poison.contains(&entry.key) {
            return (400, None);
        }
        if self.dice.chance(self.world.p_429) {
            let retry_after = if self.dice.chance(0.5) {
                self.dice.range(0, 90).to_string()
            } else {
                "Thu, 01 Jan 1970 00:00:00 GMT".into()
            };
            return (429, Some(retry_after));
        }
        ensure!(self, !self.server.applied.contains(&entry.key), "{} applied twice", entry.key);
        self.server.applied.push(entry.key.clone());
        self.server.stored.insert(entry.key.clone(), 201);
        (201, None)
    }

    fn answer(&mut self, id: u64, result: TransmitResult, incarnation: u64) {
        if incarnation != self.incarnation {
            // The connection died with the crashed client.
            return;
        }
        let keys = self.transmit_keys.remove(&id);
        ensure!(self, keys.is_some(), "an answer for unknown transmit {id}");
        match &result {
            TransmitResult::Single(r) | TransmitResult::BatchFailed(r) | TransmitResult::BatchBroke(r) => {
                for key in keys.unwrap() {
                    self.record(key, r);
                }
            }
            TransmitResult::Batch(items) => {
                for item in items {
                    let attempt = match item.status {
                        Some(status) => AttemptResult::Response(Response {
                            status,
                            retry_after: item.retry_after.clone(),
                            body: String::new(),
                        }),
                        None => AttemptResult::Skipped,
                    };
                    self.record(EntryKey::parse(&item.key).unwrap(), &attempt);
                }
            }
        }
        self.queue.handle(id, result, self.now);
        // A crash can come between any two store operations.
        if self.dice.chance(self.world.p_crash_per_step) {
            let keep = self.dice.below(4) as usize;
            self.apply_ops(Some(keep));
            self.crash();
        } else {
            self.apply_ops(None);
        }
    }

    /// Notes what the client learnt for `key`: a 2xx, and any Retry-After.
    fn record(&mut self, key: EntryKey, attempt: &AttemptResult) {
        let mut retry_after = None;
        if let AttemptResult::Response(r) = attempt {
            if (200..300).contains(&r.status) {
                self.acked.insert(key.clone());
            }
            retry_after = r.retry_after.as_deref().and_then(|v| bgsync_core::retry::parse_retry_after(v, self.now));
            self.stats.retry_after += u64::from(retry_after.is_some());
        }
        self.retry_after.insert(key, retry_after);
    }

    /// Carries out the engine's store operations (only the first `limit`
    /// when a crash cuts them short), checking each.
    fn apply_ops(&mut self, limit: Option<usize>) {
        let mut applied = 0;
        while let Some(op) = self.queue.poll_store() {
            if limit.is_some_and(|l| applied >= l) {
                return;
            }
            applied += 1;
            match op {
                StoreOp::Put(entry) => {
                    let before = self.store.get(&entry.key).map_or(0, |e| e.attempts);
                    if entry.attempts > before {
                        self.stats.retries += 1;
                        let delay = entry.not_before_ms.saturating_sub(self.now);
                        let policy = &self.config.retry;
                        match self.retry_after.get(&entry.key).copied().flatten() {
                            Some(asked) => ensure!(
                                self,
                                delay == asked.min(policy.retry_after_cap_ms),
                                "{}: delay {delay} ms, but Retry-After asked {asked} ms (cap {})",
                                entry.key,
                                policy.retry_after_cap_ms
                            ),
                            None => ensure!(
                                self,
                                delay <= policy.ceiling_ms(entry.attempts),
                                "{}: delay {delay} ms over the ceiling {} ms of attempt {}",
                                entry.key,
                                policy.ceiling_ms(entry.attempts),
                                entry.attempts
                            ),
                        }
                    }
                    ensure!(self, self.store.contains_key(&entry.key), "{} put after it left the store", entry.key);
                    self.store.insert(entry.key.clone(), entry);
                }
                StoreOp::Delete(key) => {
                    ensure!(self, self.acked.contains(&key), "{key} deleted before any 2xx for it arrived");
                    ensure!(
                        self,
                        self.server.stored.contains_key(&key),
                        "{key} deleted but the server does not have it"
                    );
                    self.store.remove(&key);
                }
                StoreOp::DeadLetter(dl) => {
                    if let DeadReason::Rejected { status, .. } = &dl.reason {
                        ensure!(self, *status == 400, "{} dead-lettered for HTTP {status}", dl.entry.key);
                        ensure!(
                            self,
                            self.server.poison.contains(&dl.entry.key),
                            "{} refused but not poison",
                            dl.entry.key
                        );
                    }
                    self.store.remove(&dl.entry.key);
                    self.dead.insert(dl.entry.key.clone(), dl);
                }
            }
        }
    }

    /// The client process dies: memory gone, store kept, connections closed.
    fn crash(&mut self) {
        self.stats.crashes += 1;
        self.incarnation += 1;
        self.transmit_keys.clear();
        self.resume_at = None;
        let stored = self.store.values().cloned().collect();
        self.queue = Engine::new(self.config.clone(), self.seed ^ self.incarnation, stored);
    }

    fn check_always(&self) {
        // An ordered queue's delivered entries were applied in enqueue order.
        if self.config.ordered {
            let delivered: Vec<&EntryKey> = self.server.applied.iter().filter(|k| self.acked.contains(*k)).collect();
            ensure!(self, delivered.windows(2).all(|w| w[0] < w[1]), "applied out of enqueue order: {delivered:?}");
        }
    }

    fn check_end(&self) {
        ensure!(self, self.next_enqueue.is_empty(), "enqueues left");
        ensure!(self, self.queue.is_empty(), "{} entries never finished", self.queue.len());
        ensure!(self, self.store.is_empty(), "the store still holds {:?}", self.store.keys().collect::<Vec<_>>());
        for key in &self.enqueued {
            let applied = self.server.applied.iter().filter(|k| *k == key).count();
            match self.dead.get(key) {
                Some(dl) => {
                    ensure!(self, !dl.reason.to_string().is_empty(), "{key} dead without a reason");
                    if matches!(dl.reason, DeadReason::Rejected { .. }) {
                        ensure!(self, applied == 0, "{key} refused yet applied");
                    }
                }
                None => {
                    ensure!(self, self.acked.contains(key), "{key} left the queue without a 2xx");
                    ensure!(self, applied == 1, "{key} applied {applied} times");
                }
            }
        }
    }
}

#[test]
fn simulation() {
    if let Some(seed) = std::env::var("BGSYNC_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        let sim = Sim::new(seed);
        eprintln!("seed {seed}: {:#?}\n{:#?}", sim.world, sim.config);
        sim.run();
        return;
    }
    let seeds: u64 = std::env::var("BGSYNC_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut total = Stats::default();
    for seed in 0..seeds {
        total.add(&Sim::new(seed).run());
    }
    eprintln!("{seeds} seeds: {total:?}");
    if seeds >= 1_000 {
        // The worlds must really contain every fault, or the invariants
        // above prove little.
        for (what, n) in [
            ("refused entries", total.refused),
            ("entries given up", total.gave_up),
            ("crashes", total.crashes),
            ("pauses", total.pauses),
            ("retries", total.retries),
            ("Retry-After answers", total.retry_after),
            ("batches", total.batches),
            ("replayed keys", total.replays),
            ("split batches", total.splits),
        ] {
            assert!(n > 0, "no seed exercised {what}: {total:?}");
        }
    }
}
