use super::*;

fn entry(key: &str, at: f64) -> Entry {
    Entry::new(EntryKey::parse(key).unwrap(), "/api/posts", "{}", at)
}

fn key(k: &str) -> EntryKey {
    EntryKey::parse(k).unwrap()
}

fn status(s: u16) -> TransmitResult {
    TransmitResult::Single(AttemptResult::Response(Response::status(s)))
}

fn queue(config: QueueConfig, keys: &[&str]) -> Engine {
    let entries = keys.iter().enumerate().map(|(i, k)| entry(k, i as f64 + 1.0)).collect();
    Engine::new(config, 7, entries)
}

fn ops(q: &mut Engine) -> Vec<StoreOp> {
    std::iter::from_fn(|| q.poll_store()).collect()
}

/// A batch answer that took every entry of `t` (201 each).
fn all_taken(t: &Transmit) -> TransmitResult {
    let taken =
        |e: &Entry| BatchResult { key: e.key.to_string(), status: Some(201), retry_after: None, body: String::new() };
    TransmitResult::Batch(t.entries.iter().map(taken).collect())
}

fn sent_keys(t: &Transmit) -> Vec<&str> {
    t.entries.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn delivers_in_order_and_deletes_only_on_2xx() {
    let mut q = queue(QueueConfig::default(), &["b", "a", "c"]);
    let mut order = Vec::new();
    while let Some(t) = q.poll_transmit(0) {
        assert!(q.poll_transmit(0).is_none(), "ordered: one in flight");
        order.push(t.entries[0].key.to_string());
        assert!(ops(&mut q).is_empty(), "nothing deleted before the answer");
        q.handle(t.id, status(201), 0);
        assert_eq!(ops(&mut q), [StoreOp::Delete(t.entries[0].key.clone())]);
    }
    assert_eq!(order, ["b", "a", "c"], "enqueue order, not key order");
    assert!(q.is_empty());
    let events: Vec<_> = std::iter::from_fn(|| q.poll_event()).collect();
    assert_eq!(events.last(), Some(&Event::Drained));
}

#[test]
fn a_waiting_head_holds_up_an_ordered_queue_only() {
    for ordered in [true, false] {
        let mut q = queue(QueueConfig { ordered, ..QueueConfig::default() }, &["a", "b"]);
        let t = q.poll_transmit(0).unwrap();
        q.handle(t.id, status(503), 0);
        let [StoreOp::Put(a)] = &ops(&mut q)[..] else { panic!() };
        assert_eq!((a.attempts, a.last_error.as_deref()), (1, Some("the server answered HTTP 503")));
        assert!(a.not_before_ms <= 1_000, "full jitter within the first ceiling");
        let next = q.poll_transmit(0).filter(|t| t.entries[0].key == key("b"));
        assert_eq!(next.is_some(), !ordered, "ordered: {ordered}");
        if ordered {
            assert_eq!(q.poll_timeout(), Some(a.not_before_ms));
            let t = q.poll_transmit(a.not_before_ms).unwrap();
            assert_eq!(sent_keys(&t), ["a"]);
        }
    }
}

#[test]
fn a_rejected_entry_is_dead_lettered_and_does_not_hold_up_the_rest() {
    let mut q = queue(QueueConfig::default(), &["poison", "b"]);
    let t = q.poll_transmit(10).unwrap();
    let refusal = Response { status: 400, retry_after: None, body: "title missing".into() };
    q.handle(t.id, TransmitResult::Single(AttemptResult::Response(refusal)), 10);
    let [StoreOp::DeadLetter(dl)] = &ops(&mut q)[..] else { panic!() };
    assert_eq!(dl.reason, DeadReason::Rejected { status: 400, body: "title missing".into() });
    assert_eq!(dl.reason.to_string(), "the server refused it (HTTP 400): title missing");
    assert_eq!(sent_keys(&q.poll_transmit(10).unwrap()), ["b"]);
}

#[test]
fn unauthorised_pauses_until_resumed_and_keeps_the_entry() {
    let mut q = queue(QueueConfig::default(), &["a", "b"]);
    let t = q.poll_transmit(0).unwrap();
    q.handle(t.id, status(401), 0);
    assert!(q.is_paused());
    assert_eq!(q.poll_transmit(0), None);
    assert_eq!(q.poll_timeout(), None);
    assert_eq!(q.len(), 2);
    assert!(std::iter::from_fn(|| q.poll_event()).any(|e| e == Event::Paused { status: 401 }));
    q.resume();
    let t = q.poll_transmit(0).unwrap();
    assert_eq!((sent_keys(&t), t.entries[0].attempts), (vec!["a"], 0), "a pause is not a failed attempt");
}

#[test]
fn retry_after_is_honoured() {
    let mut q = queue(QueueConfig::default(), &["a"]);
    let t = q.poll_transmit(1_000).unwrap();
    let busy = Response { status: 429, retry_after: Some("30".into()), body: String::new() };
    q.handle(t.id, TransmitResult::Single(AttemptResult::Response(busy)), 1_000);
    assert_eq!(q.poll_timeout(), Some(31_000));
    assert_eq!(q.poll_transmit(30_999), None);
    assert!(q.poll_transmit(31_000).is_some());
}

#[test]
fn too_many_attempts_or_too_old_ends_in_the_dead_letters() {
    let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    let mut q = queue(QueueConfig { retry, ..QueueConfig::default() }, &["a"]);
    let mut now = 0;
    for _ in 0..2 {
        let t = q.poll_transmit(now).unwrap();
        q.handle(t.id, TransmitResult::Single(AttemptResult::NetworkError("offline".into())), now);
        now = q.poll_timeout().unwrap_or(now);
    }
    let last = ops(&mut q).pop().unwrap();
    let StoreOp::DeadLetter(dl) = last else { panic!("{last:?}") };
    assert_eq!(
        dl.reason,
        DeadReason::TooManyAttempts { attempts: 2, last_error: "the server could not be reached (offline)".into() }
    );

    let retry = RetryPolicy { max_age_ms: 1_000, ..RetryPolicy::default() };
    let mut q = queue(QueueConfig { retry, ..QueueConfig::default() }, &["old"]);
    assert_eq!(q.poll_transmit(5_000), None);
    assert!(matches!(&ops(&mut q)[..], [StoreOp::DeadLetter(DeadLetter { reason: DeadReason::TooOld { .. }, .. })]));
}

#[test]
fn batches_respect_entry_and_byte_limits_and_skipped_items_stay_queued() {
    let batch = Some(BatchLimits::new(3, 1_000));
    let mut q = queue(QueueConfig { batch: batch.clone(), ..QueueConfig::default() }, &["a", "b", "c", "d"]);
    let t = q.poll_transmit(0).unwrap();
    assert!(t.batch);
    assert_eq!(sent_keys(&t), ["a", "b", "c"]);
    let request = t.batch_request(true);
    assert!(request.ordered && request.entries.len() == 3);
    let item =
        |k: &str, status: Option<u16>| BatchResult { key: k.into(), status, retry_after: None, body: String::new() };
    q.handle(t.id, TransmitResult::Batch(vec![item("a", Some(201)), item("b", Some(503)), item("c", None)]), 0);
    assert_eq!(ops(&mut q).len(), 2, "a deleted, b rescheduled, c untouched");
    let c = q.entries().find(|e| e.key == key("c")).unwrap();
    assert_eq!(c.attempts, 0);

    let mut big = entry("big", 1.0);
    big.body = "x".repeat(5_000);
    let mut q =
        Engine::new(QueueConfig { batch: batch.clone(), ..QueueConfig::default() }, 1, vec![big, entry("small", 2.0)]);
    assert_eq!(sent_keys(&q.poll_transmit(0).unwrap()), ["big"], "an oversized entry still goes, alone");
}

#[test]
fn batch_answers_are_matched_by_key_in_any_order_and_a_missing_one_is_not_an_attempt() {
    let batch = Some(BatchLimits::new(4, 1 << 20));
    let mut q = queue(QueueConfig { batch, ..QueueConfig::default() }, &["a", "b", "c", "d"]);
    let t = q.poll_transmit(0).unwrap();
    assert_eq!(sent_keys(&t), ["a", "b", "c", "d"]);
    let item =
        |k: &str, status: Option<u16>| BatchResult { key: k.into(), status, retry_after: None, body: String::new() };
    // Answered backwards, one answer missing, one for a key never sent.
    q.handle(t.id, TransmitResult::Batch(vec![item("zz", Some(201)), item("c", Some(201)), item("a", Some(400))]), 0);
    let ops = ops(&mut q);
    assert!(ops.contains(&StoreOp::Delete(key("c"))), "{ops:?}");
    assert!(ops.iter().any(|op| matches!(op, StoreOp::DeadLetter(dl) if dl.entry.key == key("a"))), "{ops:?}");
    assert_eq!(ops.len(), 2, "b and d were not answered: not attempted, untouched: {ops:?}");
    let left: Vec<_> = q.entries().map(|e| (e.key.to_string(), e.attempts)).collect();
    assert_eq!(left, [("b".to_string(), 0), ("d".to_string(), 0)]);
    assert_eq!(q.counts(0).sending, 0, "no entry is left marked as sending");
    assert_eq!(sent_keys(&q.poll_transmit(0).unwrap()), ["b", "d"]);
}

#[test]
fn a_batch_refused_as_a_whole_is_retried_not_dead_lettered() {
    let batch = Some(BatchLimits::new(10, 1 << 20));
    let mut q = queue(QueueConfig { batch: batch.clone(), ..QueueConfig::default() }, &["a", "b"]);
    let t = q.poll_transmit(0).unwrap();
    q.handle(t.id, TransmitResult::BatchFailed(AttemptResult::Response(Response::status(413))), 0);
    assert_eq!(q.len(), 2);
    assert!(ops(&mut q).iter().all(|op| matches!(op, StoreOp::Put(_))));
}

#[test]
fn a_redirect_is_no_answer_alone_in_a_batch_or_for_a_batch_the_entries_are_kept_and_retried() {
    let single = TransmitResult::Single(AttemptResult::Redirected);
    let batch = TransmitResult::BatchFailed(AttemptResult::Redirected);
    let inside = TransmitResult::Batch(vec![BatchResult {
        key: "a".into(),
        status: Some(302),
        retry_after: None,
        body: String::new(),
    }]);
    for (result, batched) in [(single, false), (batch, true), (inside, true)] {
        let limits = batched.then(|| BatchLimits::new(10, 1 << 20));
        let mut q = queue(QueueConfig { batch: limits, ..QueueConfig::default() }, &["a"]);
        let t = q.poll_transmit(0).unwrap();
        q.handle(t.id, result, 0);
        assert_eq!(q.len(), 1, "kept");
        let stored = ops(&mut q);
        let [StoreOp::Put(kept)] = stored.as_slice() else { panic!("one attempt stored, nothing deleted: {stored:?}") };
        assert_eq!(kept.attempts, 1);
        assert!(kept.last_error.as_deref().is_some_and(|e| e.contains("redirect")), "{:?}", kept.last_error);
        assert!(kept.not_before_ms > 0, "retried after a backoff");
    }
}

#[test]
fn unordered_queues_pipeline_up_to_the_limit() {
    let config = QueueConfig { ordered: false, max_in_flight: 2, ..QueueConfig::default() };
    let mut q = queue(config, &["a", "b", "c"]);
    let first = q.poll_transmit(0).unwrap();
    let second = q.poll_transmit(0).unwrap();
    assert_eq!(q.poll_transmit(0), None);
    q.handle(second.id, status(200), 0);
    assert_eq!(sent_keys(&q.poll_transmit(0).unwrap()), ["c"]);
    q.handle(first.id, status(200), 0);
    assert_eq!(q.len(), 1);
}

#[test]
fn a_stale_answer_after_restart_is_ignored() {
    let mut q = queue(QueueConfig::default(), &["a"]);
    q.handle(99, status(200), 0);
    assert_eq!(q.len(), 1);
}

#[test]
fn counts_per_state() {
    let mut q = queue(QueueConfig::default(), &["a", "b"]);
    let t = q.poll_transmit(0).unwrap();
    assert_eq!(q.counts(0), Counts { queued: 1, waiting: 0, sending: 1, paused: false });
    let busy = Response { status: 503, retry_after: Some("10".into()), body: String::new() };
    q.handle(t.id, TransmitResult::Single(AttemptResult::Response(busy)), 0);
    assert_eq!(q.counts(0), Counts { queued: 1, waiting: 1, sending: 0, paused: false });
    assert_eq!(q.counts(10_000), Counts { queued: 2, waiting: 0, sending: 0, paused: false });
}

#[test]
fn expedite_makes_waiting_entries_due() {
    let mut q = queue(QueueConfig::default(), &["a"]);
    let t = q.poll_transmit(0).unwrap();
    let busy = Response { status: 429, retry_after: Some("600".into()), body: String::new() };
    q.handle(t.id, TransmitResult::Single(AttemptResult::Response(busy)), 0);
    assert_eq!(q.poll_transmit(1), None);
    q.expedite();
    assert!(q.poll_transmit(1).is_some());
}

#[test]
fn a_batch_that_failed_as_a_whole_is_retried_as_one_batch() {
    let batch = Some(BatchLimits::new(10, 1 << 20));
    let mut q = Engine::new(QueueConfig { batch: batch.clone(), ..QueueConfig::default() }, 7, Vec::new());
    for i in 0..5 {
        q.enqueue(entry(&format!("k{i}"), i as f64));
    }
    let t = q.poll_transmit(0).unwrap();
    assert_eq!(t.entries.len(), 5);
    q.handle(t.id, TransmitResult::BatchFailed(AttemptResult::NetworkError("offline".into())), 0);
    let waits: std::collections::BTreeSet<u64> = q.entries().map(|e| e.not_before_ms).collect();
    assert_eq!(waits.len(), 1, "one backoff for the whole batch: {waits:?}");
    let at = *waits.first().unwrap();
    let again = q.poll_transmit(at).unwrap();
    assert_eq!(again.entries.len(), 5, "retried as one batch");
}

#[test]
fn entries_the_batch_endpoint_cannot_serve_go_on_their_own_in_their_turn() {
    let batch = Some(BatchLimits { prefix: "/api/".into(), ..BatchLimits::new(10, 1 << 20) });
    let mut entries: Vec<Entry> =
        ["a", "b", "c", "d", "e"].iter().enumerate().map(|(i, k)| entry(k, i as f64)).collect();
    entries[2].url = "/\\evil.example/x".into();
    entries[4].method = "GET".into();
    let mut q = Engine::new(QueueConfig { batch, ..QueueConfig::default() }, 1, entries);
    let mut sent = Vec::new();
    while let Some(t) = q.poll_transmit(0) {
        sent.push((sent_keys(&t).join(","), t.batch));
        let results = t.entries.iter().map(|e| BatchResult {
            key: e.key.to_string(),
            status: Some(201),
            retry_after: None,
            body: String::new(),
        });
        let result = if t.batch {
            TransmitResult::Batch(results.collect())
        } else {
            TransmitResult::Single(AttemptResult::Response(Response {
                status: 201,
                retry_after: None,
                body: String::new(),
            }))
        };
        q.handle(t.id, result, 0);
    }
    let expected = [("a,b", true), ("c", false), ("d", true), ("e", false)].map(|(k, b)| (k.to_owned(), b));
    assert_eq!(sent, expected);
}

/// Drives `q` until it is empty, each request answered by `answer`.
/// Only the entry `may_retry` may be retried (its attempts stored); no other
/// entry may count an attempt. Returns the requests made, the keys
/// delivered in order, and what was dead-lettered.
fn drive(
    q: &mut Engine,
    answer: impl Fn(&Transmit) -> TransmitResult,
    may_retry: &str,
) -> (usize, Vec<String>, Vec<(String, DeadReason)>) {
    let (mut now, mut requests) = (0, 0);
    let (mut delivered, mut dead) = (Vec::new(), Vec::new());
    loop {
        let mut sent = false;
        while let Some(t) = q.poll_transmit(now) {
            sent = true;
            requests += 1;
            q.handle(t.id, answer(&t), now);
            for op in ops(q) {
                match op {
                    StoreOp::Put(entry) => assert_eq!(entry.key.as_str(), may_retry, "no attempt counted against it"),
                    StoreOp::Delete(key) => delivered.push(key.to_string()),
                    StoreOp::DeadLetter(letter) => dead.push((letter.entry.key.to_string(), letter.reason)),
                }
            }
        }
        match q.poll_timeout() {
            Some(at) if !sent || at > now => now = at.max(now + 1),
            Some(_) => {}
            None => return (requests, delivered, dead),
        }
    }
}

/// [`drive`] against a server that answers 201 to everything, except that
/// any request carrying `poison` breaks on the network (the adapter's probe
/// then finds the server reachable: `BatchBroke` for a batch of several).
fn drive_with_a_breaking_entry(q: &mut Engine, poison: &str) -> (usize, Vec<String>, Vec<(String, DeadReason)>) {
    let answer = |t: &Transmit| {
        let broken = t.entries.iter().any(|e| e.key.as_str() == poison);
        match (broken, t.batch, t.entries.len()) {
            (true, true, n) if n > 1 => TransmitResult::BatchBroke(AttemptResult::NetworkError("reset".into())),
            (true, true, _) => TransmitResult::BatchFailed(AttemptResult::NetworkError("reset".into())),
            (true, false, _) => TransmitResult::Single(AttemptResult::NetworkError("reset".into())),
            (false, true, _) => all_taken(t),
            (false, false, _) => status(201),
        }
    };
    drive(q, answer, poison)
}

/// Batches of up to 1,000 entries, and 3 attempts an entry.
fn batched(ordered: bool) -> QueueConfig {
    QueueConfig {
        ordered,
        batch: Some(BatchLimits::new(1000, usize::MAX)),
        retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() },
        ..QueueConfig::default()
    }
}

#[test]
fn a_batch_that_breaks_is_halved_until_the_entry_that_breaks_it_is_alone_and_dead_lettered() {
    for ordered in [true, false] {
        for n in [2usize, 3, 8, 33, 1000] {
            for at in [0, n / 2, n - 1] {
                let keys: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let mut q = queue(batched(ordered), &refs);
                let (requests, delivered, dead) = drive_with_a_breaking_entry(&mut q, &keys[at]);
                let case = format!("ordered {ordered}, {n} entries, the one at {at} breaks");
                let mut want: Vec<String> = keys.iter().filter(|k| **k != keys[at]).cloned().collect();
                let mut got = delivered.clone();
                if !ordered {
                    want.sort();
                    got.sort();
                }
                assert_eq!(got, want, "{case}: every other entry delivered once, in order when ordered");
                assert_eq!(dead.len(), 1, "{case}");
                assert_eq!(dead[0].0, keys[at], "{case}");
                assert!(
                    matches!(dead[0].1, DeadReason::TooManyAttempts { attempts: 3, .. }),
                    "{case}: {:?}",
                    dead[0].1
                );
                // Halving: about two requests per level, each level once,
                // then the breaking entry's own three attempts.
                let levels = (n as f64).log2().ceil() as usize;
                assert!(requests <= 3 * levels + 3 + 2, "{case}: {requests} requests");
                assert!(q.is_empty(), "{case}");
            }
        }
    }
}

/// A batch answered 413 as a whole (a proxy in front of the server takes
/// less than the server advertises: nginx's default is 1 MiB) is halved
/// until its halves fit, no attempt counted against its entries; an entry
/// too large even in a batch of its own is sent outside a batch, and the
/// proxy's refusal of that request is the entry's own. (Before, the same
/// batch was retried until every entry in it was dead-lettered for too
/// many attempts.)
#[test]
fn a_batch_too_large_for_a_proxy_is_halved_until_it_fits() {
    for ordered in [true, false] {
        let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut q = queue(batched(ordered), &refs);
        // The proxy takes at most 6 entries' worth, and never "k17" (too
        // large alone); "k23" fits only outside a batch.
        let alone = std::cell::RefCell::new(Vec::new());
        let answer = |t: &Transmit| {
            let has = |key: &str| t.entries.iter().any(|e| e.key.as_str() == key);
            if !t.batch {
                alone.borrow_mut().push(t.entries[0].key.to_string());
                return status(if has("k17") { 413 } else { 201 });
            }
            if t.entries.len() > 6 || has("k17") || has("k23") {
                TransmitResult::BatchFailed(AttemptResult::Response(Response::status(413)))
            } else {
                all_taken(t)
            }
        };
        let (requests, mut delivered, dead) = drive(&mut q, answer, "");
        assert_eq!(*alone.borrow(), ["k17", "k23"], "only those two go outside a batch");
        let case = format!("ordered {ordered}");
        let mut want: Vec<String> = keys.iter().filter(|k| *k != "k17").cloned().collect();
        if !ordered {
            want.sort();
            delivered.sort();
        }
        assert_eq!(delivered, want, "{case}: every entry but the one too large alone, once");
        assert_eq!(dead.len(), 1, "{case}: {dead:?}");
        assert_eq!(dead[0].0, "k17", "{case}");
        assert!(matches!(dead[0].1, DeadReason::Rejected { status: 413, .. }), "{case}: {:?}", dead[0].1);
        assert!(requests <= 45, "{case}: {requests} requests");
        assert!(q.is_empty(), "{case}");
    }
}

/// A batch refused as a whole with 400 (a web application firewall in
/// front of the server that objects to one entry's body, answering with
/// its own page) is halved down to that entry, which is sent alone and
/// dead-lettered with the firewall's own answer to it; every other entry
/// goes, no attempt counted. (Before, the whole batch was retried until
/// every entry in it was dead-lettered.)
#[test]
fn a_batch_a_firewall_refuses_for_one_entry_delivers_the_others_and_dead_letters_that_one() {
    for ordered in [true, false] {
        for (n, at) in [(2usize, 0usize), (9, 4), (40, 39), (1000, 517)] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{i:04}")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut q = queue(batched(ordered), &refs);
            let poison = keys[at].as_str();
            let alone = std::cell::RefCell::new(Vec::new());
            let answer = |t: &Transmit| {
                let refused = t.entries.iter().any(|e| e.key.as_str() == poison);
                let page = Response { status: 400, retry_after: None, body: "Request blocked (rule 941100)".into() };
                match (t.batch, refused) {
                    (true, true) => TransmitResult::BatchFailed(AttemptResult::Response(page)),
                    (true, false) => all_taken(t),
                    (false, _) => {
                        alone.borrow_mut().push(t.entries[0].key.to_string());
                        TransmitResult::Single(AttemptResult::Response(if refused {
                            page
                        } else {
                            Response::status(201)
                        }))
                    }
                }
            };
            let (requests, mut delivered, dead) = drive(&mut q, answer, "");
            let case = format!("ordered {ordered}, {n} entries, the firewall refuses the one at {at}");
            assert_eq!(*alone.borrow(), [poison], "{case}: only it goes outside a batch");
            let mut want: Vec<String> = keys.iter().filter(|k| *k != poison).cloned().collect();
            if !ordered {
                want.sort();
                delivered.sort();
            }
            assert_eq!(delivered, want, "{case}: every other entry once, in order when ordered");
            assert_eq!(dead.len(), 1, "{case}: {dead:?}");
            assert_eq!(dead[0].0, poison, "{case}");
            assert!(
                matches!(&dead[0].1, DeadReason::Rejected { status: 400, body } if body.contains("rule 941100")),
                "{case}: {:?}",
                dead[0].1
            );
            let levels = (n as f64).log2().ceil() as usize;
            assert!(requests <= 2 * levels + 3, "{case}: {requests} requests");
            assert!(q.is_empty(), "{case}");
        }
    }
}

#[test]
fn a_next_page_joins_in_order_without_queued_events_or_duplicates() {
    let mut q = queue(QueueConfig::default(), &["a", "b"]);
    let first = q.poll_transmit(0).unwrap();
    assert_eq!(sent_keys(&first), ["a"]);
    // The next page of the store: "b" again (already held) and two later ones.
    q.extend([entry("b", 2.0), entry("d", 4.0), entry("c", 3.0)]);
    assert_eq!(q.len(), 4);
    let events: Vec<_> = std::iter::from_fn(|| q.poll_event()).collect();
    assert!(!events.iter().any(|e| matches!(e, Event::Queued { .. })), "read from the store, not queued: {events:?}");
    q.handle(first.id, status(201), 0);
    let mut order = Vec::new();
    while let Some(t) = q.poll_transmit(0) {
        order.push(t.entries[0].key.to_string());
        q.handle(t.id, status(201), 0);
    }
    assert_eq!(order, ["b", "c", "d"]);
}

#[test]
fn unsent_counts_what_the_requests_on_their_way_do_not_carry() {
    let config = QueueConfig { batch: Some(BatchLimits::new(2, usize::MAX)), ..QueueConfig::default() };
    let mut q = queue(config, &["a", "b", "c", "d", "e"]);
    assert_eq!(q.unsent(), 5);
    let t = q.poll_transmit(0).unwrap();
    assert_eq!((t.entries.len(), q.unsent(), q.len()), (2, 3, 5));
    q.handle(t.id, TransmitResult::Batch(Vec::new()), 0);
    assert_eq!((q.unsent(), q.len()), (5, 5), "an answer that attempted nothing leaves them unsent");
    let t = q.poll_transmit(0).unwrap();
    let results = t
        .entries
        .iter()
        .map(|e| BatchResult { key: e.key.to_string(), status: Some(201), retry_after: None, body: String::new() })
        .collect();
    q.handle(t.id, TransmitResult::Batch(results), 0);
    assert_eq!((q.unsent(), q.len()), (3, 3));
}
