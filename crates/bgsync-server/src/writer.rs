//! Where effects are written: a transaction per request, or, on SQLite,
//! group commit.
//!
//! SQLite has one writer at a time, and each commit costs an fsync
//! (`synchronous = FULL`). With a transaction per request, concurrent
//! writers queue on SQLite's lock, sleeping in its busy handler, and each
//! pays its own fsync: at 64 connections the tail latency is hundreds of
//! milliseconds. A [`Writer`] made with [`Writer::group_commit`] keeps one
//! write transaction open on one connection instead: requests take turns on
//! it (first come, first served), each in a savepoint of its own (a request
//! that fails or is refused rolls back to it and leaves nothing behind), and
//! a committer task commits everything written since the last commit in one
//! transaction, one fsync. A request's [`WriteTx::commit`] returns only once
//! that commit is durable, so an answer never runs ahead of its data:
//! durability is unchanged, and the fsyncs are shared. The committer queues
//! for the connection like any request, so the requests already waiting
//! when it asks all go into the same commit: under load the groups grow by
//! themselves, and a lone request is committed at once.
//!
//! If the group's commit fails, every request in it gets the error (nothing
//! of the group took effect) and answers 503; the next request starts a new
//! group.
//!
//! After its commits, a checkpointer task copies the WAL into the database
//! file from a connection of its own, beside the writer: SQLite would
//! otherwise do it in the committing connection, while the next group
//! waits (see `checkpoint_loop`).

use crate::direct::Direct;
use sqlx::{Pool, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Weak};
use tokio::sync::{watch, Mutex, Notify, OwnedMutexGuard};

/// Each request's savepoint inside the group's transaction: taken, kept,
/// undone.
const SAVEPOINT: &str = "SAVEPOINT bgsync_member";
/// A member's savepoint is released by the next member's first statement
/// (or by the group's COMMIT): a statement less for every request, each a
/// round trip to SQLite's thread.
const RELEASE_THEN_TAKE: &str = "RELEASE SAVEPOINT bgsync_member; SAVEPOINT bgsync_member";
const UNDO: &str = "ROLLBACK TO SAVEPOINT bgsync_member; RELEASE SAVEPOINT bgsync_member";

/// Hands out the transactions that effects are written in.
pub struct Writer<DB: sqlx::Database> {
    pool: Pool<DB>,
    group: Option<Arc<Group<DB>>>,
}

impl<DB: sqlx::Database> Clone for Writer<DB> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), group: self.group.clone() }
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for Writer<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("group_commit", &self.group.is_some()).finish()
    }
}

/// How many commits a group-commit writer made, and how many requests'
/// writes they carried.
#[derive(Default)]
struct Counters {
    commits: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    hand_overs: std::sync::atomic::AtomicU64,
    checkpoints: std::sync::atomic::AtomicU64,
}

/// What a [`Writer`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Group commits that succeeded.
    pub commits: u64,
    /// Requests' writes those commits carried.
    pub writes: u64,
    /// Times the group's connection was taken from sqlx's thread for
    /// statements run directly ([`WriteTx::sqlite`]): at most once a group
    /// while its members use only direct statements.
    pub hand_overs: u64,
    /// WAL checkpoints made beside the writer after its commits (SQLite).
    pub checkpoints: u64,
}

/// The outcome of one group's commit, shared by its members.
type Outcome = Option<Result<(), Arc<sqlx::Error>>>;

struct Group<DB: sqlx::Database> {
    slot: Arc<Mutex<Slot<DB>>>,
    stats: Arc<Counters>,
    /// The committer task is spawned by the first write, in the runtime
    /// that serves the requests (not necessarily the one that opened the
    /// database).
    committer: std::sync::Once,
    /// Wakes the committer: something was written, or a member left a
    /// savepoint to roll back.
    dirty: Arc<Notify>,
    /// Wakes the checkpointer: a group committed.
    committed: Arc<Notify>,
}

struct Slot<DB: sqlx::Database> {
    /// The group's connection, taken from sqlx's thread for direct
    /// statements ([`WriteTx::sqlite`]) by the first member that wanted it
    /// and kept by the group, member after member, until a statement goes
    /// through sqlx or the group ends. Declared before `tx`: dropped before
    /// it.
    ///
    /// One hand-over a group, not one a member: each hand-over sends sqlx's
    /// thread a message (sqlx-sqlite 0.8's `lock_handle`), and a member can
    /// get the connection before that thread has read the message (it
    /// lets the connection go, is descheduled before it asks for it again,
    /// and the member takes the free lock). The message is then left
    /// unread. A member a request, under load (64 writers with `wrk`), left
    /// dozens of them while that thread was descheduled for a few
    /// milliseconds; at 50 (sqlx's `command_buffer_size`) the next hand-over
    /// held the connection while it waited for room in the full channel,
    /// and the thread waited for the connection before it would read:
    /// every write of the server stalled. With one hand-over a group, and
    /// the group's commit (through sqlx, answered in order) in between,
    /// at most two are ever unread.
    direct: Option<Direct>,
    /// The open group transaction, if any.
    tx: Option<Transaction<'static, DB>>,
    /// Members whose effect is in `tx`, waiting for its commit.
    members: usize,
    /// A member went away inside its savepoint (its request was cancelled or
    /// failed): whoever takes the slot next rolls it back first.
    rollback_pending: bool,
    /// The last member committed, its savepoint still open: the next
    /// member releases it ([`RELEASE_THEN_TAKE`]), or the COMMIT does.
    release_pending: bool,
    /// Where the members of the open group learn its outcome.
    outcome: watch::Sender<Outcome>,
}

impl<DB> Writer<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    /// A transaction per request, begun on `pool` (PostgreSQL: many
    /// writers at once, each commit its own).
    pub fn per_request(pool: Pool<DB>) -> Self {
        Self { pool, group: None }
    }

    /// Group commit on `pool`, a SQLite pool (or an `Any` pool on SQLite;
    /// see the module's documentation).
    /// The first write spawns the committer task on the Tokio runtime it
    /// runs on; the task ends when the last clone of this writer is gone.
    pub fn group_commit(pool: Pool<DB>) -> Self {
        let slot = Arc::new(Mutex::new(Slot {
            direct: None,
            tx: None,
            members: 0,
            rollback_pending: false,
            release_pending: false,
            outcome: watch::channel(None).0,
        }));
        let dirty = Arc::new(Notify::new());
        let stats = Arc::new(Counters::default());
        let group = Arc::new(Group {
            slot,
            stats,
            dirty,
            committed: Arc::new(Notify::new()),
            committer: std::sync::Once::new(),
        });
        Self { pool, group: Some(group) }
    }

    /// The pool (for reads, which never go through the writer).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Commits made and writes they carried (group commit; zero otherwise).
    pub fn stats(&self) -> WriterStats {
        use std::sync::atomic::Ordering::Relaxed;
        self.group.as_ref().map_or_else(WriterStats::default, |g| WriterStats {
            commits: g.stats.commits.load(Relaxed),
            writes: g.stats.writes.load(Relaxed),
            hand_overs: g.stats.hand_overs.load(Relaxed),
            checkpoints: g.stats.checkpoints.load(Relaxed),
        })
    }

    /// Whether this writer commits requests in groups.
    pub fn is_group_commit(&self) -> bool {
        self.group.is_some()
    }

    /// A transaction to write an effect in: a new one on the pool, or a
    /// savepoint in the group's transaction (waiting for the requests
    /// before it). Dropping it without [`WriteTx::commit`] rolls it back.
    pub async fn begin(&self) -> Result<WriteTx<DB>, sqlx::Error> {
        let Some(group) = &self.group else {
            return Ok(WriteTx::Own(self.pool.begin().await?));
        };
        group.committer.call_once(|| {
            tokio::spawn(commit_loop(Arc::downgrade(group), group.dirty.clone(), group.stats.clone()));
            let (pool, committed, stats) = (self.pool.clone(), group.committed.clone(), group.stats.clone());
            tokio::spawn(checkpoint_loop(Arc::downgrade(group), pool, committed, stats));
        });
        let mut slot = group.slot.clone().lock_owned().await;
        settle(&mut slot).await?;
        if slot.tx.is_none() {
            // IMMEDIATE: the write lock from the start, so a group whose
            // first statement reads can never fail to upgrade it (a writer
            // outside this writer, another process or a tool, committing in
            // between would make that upgrade fail with SQLITE_BUSY).
            slot.tx = Some(self.pool.begin_with("BEGIN IMMEDIATE").await?);
        }
        // Cleared first: if this request is cancelled while the statement
        // runs, the next one takes a plain savepoint (at worst nested in the
        // one left open, which the commit releases with the rest).
        let take = if std::mem::take(&mut slot.release_pending) { RELEASE_THEN_TAKE } else { SAVEPOINT };
        let member = Member { slot: Some(slot), dirty: group.dirty.clone(), stats: group.stats.clone() };
        let mut tx = WriteTx::Member(member);
        // On SQLite, directly: the connection stays with the group for its
        // members' statements ([`WriteTx::sqlite`]), one hand-over a group.
        if let Err(e) = tx.run_plain(take).await {
            if let WriteTx::Member(member) = &mut tx {
                if let Some(mut slot) = member.slot.take() {
                    fail_group(&mut slot, &e).await;
                }
            }
            return Err(e);
        }
        Ok(tx)
    }
}

/// Runs `statement` in the slot's open transaction (directly while the
/// group holds its connection).
async fn run<DB>(slot: &mut Slot<DB>, statement: &str) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    if let Some(direct) = slot.direct.as_mut() {
        return direct.execute_batch(statement);
    }
    let tx = slot.tx.as_mut().ok_or_else(|| sqlx::Error::Protocol("the group's transaction has ended".into()))?;
    sqlx::Executor::execute(&mut **tx, statement).await.map(|_| ())
}

/// [`run`]; when the statement fails, the group's state is unknown: it is
/// rolled back as a whole and its members told ([`fail_group`]).
async fn run_or_fail<DB>(slot: &mut Slot<DB>, statement: &str) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let result = run(slot, statement).await;
    if let Err(e) = &result {
        fail_group(slot, e).await;
    }
    result
}

/// Rolls back what a member that went away left (its savepoint).
async fn settle<DB>(slot: &mut Slot<DB>) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    if !std::mem::take(&mut slot.rollback_pending) || slot.tx.is_none() {
        return Ok(());
    }
    run_or_fail(slot, UNDO).await
}

/// Rolls the open group back and tells its members why.
async fn fail_group<DB: sqlx::Database>(slot: &mut Slot<DB>, error: &sqlx::Error) {
    if let Some(tx) = slot.take_tx() {
        let _ = tx.rollback().await;
    }
    finish(slot, Err(Arc::new(sqlx::Error::Protocol(format!("the group commit was rolled back: {error}")))));
}

impl<DB: sqlx::Database> Slot<DB> {
    /// The group's transaction, to end it: the connection given back to
    /// sqlx's thread first.
    fn take_tx(&mut self) -> Option<Transaction<'static, DB>> {
        self.direct = None;
        self.tx.take()
    }
}

/// Ends the open group with `outcome` and opens the next.
fn finish<DB: sqlx::Database>(slot: &mut Slot<DB>, outcome: Result<(), Arc<sqlx::Error>>) {
    slot.members = 0;
    slot.rollback_pending = false;
    slot.release_pending = false;
    let old = std::mem::replace(&mut slot.outcome, watch::channel(None).0);
    let _ = old.send(Some(outcome));
}

/// Commits the open group whenever something was written. It waits for
/// the slot behind the requests already queued for it, so they are in the
/// same commit.
async fn commit_loop<DB>(group: Weak<Group<DB>>, dirty: Arc<Notify>, stats: Arc<Counters>)
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    loop {
        dirty.notified().await;
        let Some((slot, committed)) = group.upgrade().map(|g| (g.slot.clone(), g.committed.clone())) else { return };
        if commit_group(&mut *slot.lock_owned().await, &stats).await {
            committed.notify_one();
        }
    }
}

/// Checkpoints the WAL after commits, on a connection of its own, so that
/// the writer seldom has to.
///
/// SQLite checkpoints when a commit leaves the WAL at 1,000 pages or more,
/// and it does so in the committing connection before the commit returns:
/// under load (64 writers with `wrk`) that was every 30 ms or so, each time
/// copying the pages written since into the database file and syncing it
/// while every request of the next group waited. A passive checkpoint from
/// another connection copies them beside the writer (the WAL allows it) and
/// never blocks it. The writer's own checkpoint still comes at 1,000 pages:
/// it is what starts the WAL over (so it stays about 4 MB), and it finds
/// most pages copied already. At most one checkpoint each
/// [`CHECKPOINT_SPACING`]. A checkpoint that fails (the database is not
/// SQLite, or its file cannot be written) ends the task, with a warning:
/// SQLite's own checkpoints go on as they would without it.
async fn checkpoint_loop<DB>(group: Weak<Group<DB>>, pool: Pool<DB>, committed: Arc<Notify>, stats: Arc<Counters>)
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    loop {
        committed.notified().await;
        if group.strong_count() == 0 || pool.is_closed() {
            return;
        }
        // No connection free now (reads hold them all): the next commit
        // asks again.
        if let Ok(mut connection) = pool.acquire().await {
            use sqlx::Executor;
            if let Err(e) = (&mut *connection).execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!("WAL checkpoints beside the writer stopped (SQLite's own go on): {e}");
                return;
            }
            stats.checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::metrics::METRICS.checkpoints.inc();
        }
        tokio::time::sleep(CHECKPOINT_SPACING).await;
    }
}

/// The least time between two background checkpoints.
const CHECKPOINT_SPACING: std::time::Duration = std::time::Duration::from_millis(10);

impl<DB: sqlx::Database> Drop for Group<DB> {
    fn drop(&mut self) {
        // The committer and the checkpointer see the group gone and end
        // (the checkpointer holds a clone of the pool).
        self.dirty.notify_one();
        self.committed.notify_one();
    }
}

/// Commits the open group (its members are told the outcome); a group of
/// only rolled-back members is rolled back.
async fn commit_group<DB>(slot: &mut Slot<DB>, stats: &Counters) -> bool
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    if settle(slot).await.is_err() {
        return false;
    }
    let Some(tx) = slot.take_tx() else { return false };
    if slot.members == 0 {
        // Only rolled-back members: nothing to keep.
        let _ = tx.rollback().await;
        finish(slot, Ok(()));
        return false;
    }
    let members = slot.members as u64;
    let outcome = tx.commit().await.map_err(Arc::new);
    if outcome.is_ok() {
        stats.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats.writes.fetch_add(members, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::METRICS.group_commits.inc();
        crate::metrics::METRICS.group_writes.inc_by(members);
    }
    let ok = outcome.is_ok();
    finish(slot, outcome);
    ok
}

/// How long a member waits for the committer before committing its group
/// itself (the committer's runtime may be gone: a writer used from another
/// runtime than the one that spawned it).
const COMMITTER_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// The transaction an effect is written in ([`Writer::begin`]): derefs to
/// the connection to run statements on.
pub enum WriteTx<DB: sqlx::Database> {
    /// A transaction of its own.
    Own(Transaction<'static, DB>),
    /// A savepoint in a group's transaction.
    Member(Member<DB>),
}

/// A request's turn on the group's connection.
pub struct Member<DB: sqlx::Database> {
    slot: Option<OwnedMutexGuard<Slot<DB>>>,
    dirty: Arc<Notify>,
    stats: Arc<Counters>,
}

impl<DB: sqlx::Database> Drop for Member<DB> {
    fn drop(&mut self) {
        // Left without commit or rollback (an error returned early, or the
        // request was cancelled): the savepoint is undone by whoever takes
        // the slot next, the committer included.
        if let Some(mut slot) = self.slot.take() {
            slot.rollback_pending = true;
            drop(slot);
            self.dirty.notify_one();
        }
    }
}

impl<DB> WriteTx<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: 'static,
{
    /// Commits, and returns once the effect is durable (in a group: once
    /// the group's commit is).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Own(tx) => tx.commit().await,
            Self::Member(mut member) => {
                let mut slot = member.slot.take().expect("a member holds its slot until it ends");
                slot.release_pending = true;
                slot.members += 1;
                let mut outcome = slot.outcome.subscribe();
                let shared = OwnedMutexGuard::mutex(&slot).clone();
                drop(slot);
                member.dirty.notify_one();
                let result = loop {
                    // Cloned out at once: the watch's guard may not be held
                    // across the commit below.
                    let waited = tokio::time::timeout(COMMITTER_PATIENCE, outcome.wait_for(Option::is_some))
                        .await
                        .map(|r| r.map(|seen| seen.clone()));
                    match waited {
                        Ok(Ok(result)) => break result.expect("waited for Some"),
                        Ok(Err(_)) => {
                            break Err(Arc::new(sqlx::Error::Protocol(
                                "the group commit ended without an outcome".into(),
                            )))
                        }
                        // No committer came: commit the group from here.
                        Err(_) => {
                            commit_group(&mut *shared.clone().lock_owned().await, &member.stats).await;
                        }
                    }
                };
                result.map_err(|e| match Arc::try_unwrap(e) {
                    Ok(e) => e,
                    Err(shared) => sqlx::Error::Protocol(shared.to_string()),
                })
            }
        }
    }

    /// Rolls back (a group member: its savepoint only).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Own(tx) => tx.rollback().await,
            Self::Member(mut member) => {
                let mut slot = member.slot.take().expect("a member holds its slot until it ends");
                let result = run_or_fail(&mut slot, UNDO).await;
                drop(slot);
                // Members before this one may be waiting for a commit.
                member.dirty.notify_one();
                result
            }
        }
    }

    /// Runs statements without parameters (savepoints): directly where
    /// [`WriteTx::sqlite`] can, else through sqlx.
    pub(crate) async fn run_plain(&mut self, statements: &'static str) -> Result<(), sqlx::Error> {
        if let Some(direct) = self.sqlite().await? {
            return direct.execute_batch(statements);
        }
        sqlx::Executor::execute(&mut **self, statements).await.map(|_| ())
    }

    /// The connection for statements run on this thread through SQLite's C
    /// API ([`crate::direct`]): for a member of a group on SQLite, whose
    /// transaction holds SQLite's write lock; `None` otherwise (use sqlx).
    /// The connection is taken from sqlx's thread once and kept by the
    /// group (for the next members too) until the next statement through
    /// sqlx (`&mut *tx`) or the group's end.
    pub async fn sqlite(&mut self) -> Result<Option<&mut Direct>, sqlx::Error> {
        let Self::Member(member) = self else { return Ok(None) };
        let Some(slot) = member.slot.as_deref_mut() else {
            return Err(sqlx::Error::Protocol("the group's transaction has ended".into()));
        };
        if slot.direct.is_none() {
            let Some(conn) = slot.tx.as_deref_mut() else {
                return Err(sqlx::Error::Protocol("the group's transaction has ended".into()));
            };
            let Some(sqlite) = crate::direct::sqlite_connection(conn) else { return Ok(None) };
            // SAFETY: the connection lives in the slot's transaction, and
            // `direct` is dropped before it (declared first; `take_tx`
            // before the transaction ends), and before every statement
            // through sqlx on it (`deref_mut`; `run` uses `direct`). Every
            // user of the connection holds the slot.
            // `None` (sqlx's thread did not hand it over in time): this
            // call's statements go through sqlx; the next call tries again.
            let Some(direct) = unsafe { Direct::lock(sqlite) }.await? else { return Ok(None) };
            slot.direct = Some(direct);
            member.stats.hand_overs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::metrics::METRICS.direct.inc();
        }
        Ok(slot.direct.as_mut())
    }
}

impl<DB: sqlx::Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match self {
            Self::Own(tx) => tx,
            Self::Member(member) => {
                member.slot.as_ref().and_then(|s| s.tx.as_deref()).expect("a member's group transaction is open")
            }
        }
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Self::Own(tx) => tx,
            Self::Member(member) => {
                // A statement through sqlx: the connection goes back to sqlx's thread first.
                let slot = member.slot.as_deref_mut().expect("a member holds its slot until it ends");
                slot.direct = None;
                slot.tx.as_deref_mut().expect("a member's group transaction is open")
            }
        }
    }
}
