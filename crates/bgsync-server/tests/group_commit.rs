//! Group commit on a real SQLite file: many concurrent writers share
//! commits, each answered only once its write is durable; a member that
//! fails, is refused or is cancelled leaves nothing behind and takes
//! nothing of the others with it.

use bgsync_server::Writer;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, Sqlite, SqlitePool};
use std::time::Duration;

async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("group.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
    pool.execute("CREATE TABLE notes (n INTEGER PRIMARY KEY)").await.unwrap();
    pool
}

/// A second connection's view: what is committed.
async fn committed(dir: &tempfile::TempDir) -> Vec<i64> {
    let options = SqliteConnectOptions::new().filename(dir.path().join("group.db"));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT n FROM notes ORDER BY n").fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.into_iter().map(|(n,)| n).collect()
}

async fn write(writer: &Writer<Sqlite>, n: i64) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    sqlx::query("INSERT INTO notes (n) VALUES ($1)").bind(n).execute(&mut *tx).await?;
    tx.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_each_sees_its_write_durable() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::group_commit(pool(&dir).await);
    assert!(writer.is_group_commit());
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let writer = writer.clone();
            let dir_path = dir.path().to_owned();
            tokio::spawn(async move {
                write(&writer, n).await.unwrap();
                // Answered: it is committed, visible to another connection.
                let options = SqliteConnectOptions::new().filename(dir_path.join("group.db"));
                let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
                let (found,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes WHERE n = $1")
                    .bind(n)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(found, 1, "note {n} was answered before it was committed");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(committed(&dir).await, (0..200).collect::<Vec<_>>());
    let stats = writer.stats();
    assert_eq!(stats.writes, 200);
    assert!(stats.commits < 100, "200 concurrent writes shared commits: {stats:?}");
}

#[tokio::test]
async fn a_failed_refused_or_cancelled_member_leaves_nothing_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::group_commit(pool(&dir).await);
    write(&writer, 1).await.unwrap();

    // A statement fails (the primary key exists): the member is dropped.
    let failed = async {
        let mut tx = writer.begin().await?;
        sqlx::query("INSERT INTO notes (n) VALUES (2)").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO notes (n) VALUES (1)").execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    assert!(failed.is_err());

    // Refused after writing: rolled back explicitly.
    let mut tx = writer.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (n) VALUES (3)").execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();

    // Cancelled while holding its turn, before commit.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
        let mut tx = writer.begin().await.unwrap();
        sqlx::query("INSERT INTO notes (n) VALUES (4)").execute(&mut *tx).await.unwrap();
        std::future::pending::<()>().await;
        tx.commit().await
    })
    .await;
    assert!(cancelled.is_err(), "the timeout cancels it");

    write(&writer, 5).await.unwrap();
    assert_eq!(committed(&dir).await, [1, 5], "only the committed members' writes");

    // A member dropped with nobody after it: the committer undoes it alone,
    // and the connection is free again.
    let mut tx = writer.begin().await.unwrap();
    sqlx::query("INSERT INTO notes (n) VALUES (6)").execute(&mut *tx).await.unwrap();
    drop(tx);
    write(&writer, 7).await.unwrap();
    assert_eq!(committed(&dir).await, [1, 5, 7]);
}

/// A member's savepoint stays open after its commit and is released by the
/// next member's first statement (one statement less per request): the
/// next member, rolled back, undoes only its own write, and members that
/// follow one another in a group all keep theirs. (On one thread, a member
/// waiting for the slot gets it before the committer that the commit
/// wakes, so each pair below shares a group.)
#[tokio::test]
async fn the_member_after_a_commit_releases_its_savepoint_and_undoes_only_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::group_commit(pool(&dir).await);
    let insert = |n: i64| sqlx::query("INSERT INTO notes (n) VALUES ($1)").bind(n);

    let mut first = writer.begin().await.unwrap();
    insert(1).execute(&mut *first).await.unwrap();
    let first = tokio::spawn(first.commit());
    let mut second = writer.begin().await.unwrap();
    insert(2).execute(&mut *second).await.unwrap();
    second.commit().await.unwrap();
    first.await.unwrap().unwrap();
    let stats = writer.stats();
    assert_eq!((stats.commits, stats.writes), (1, 2), "one group");
    assert_eq!(committed(&dir).await, [1, 2]);

    // Each pair: one kept, then one refused (rolled back) or dropped.
    for (kept_n, refused_n, roll_back) in [(3, 4, true), (5, 6, false)] {
        let mut kept = writer.begin().await.unwrap();
        insert(kept_n).execute(&mut *kept).await.unwrap();
        let kept = tokio::spawn(kept.commit());
        let mut refused = writer.begin().await.unwrap();
        insert(refused_n).execute(&mut *refused).await.unwrap();
        if roll_back {
            refused.rollback().await.unwrap();
        } else {
            drop(refused);
        }
        kept.await.unwrap().unwrap();
    }

    write(&writer, 7).await.unwrap();
    assert_eq!(committed(&dir).await, [1, 2, 3, 5, 7], "each refused member undid its own write only");
}

/// A member's statements through SQLite's C API ([`WriteTx::sqlite`]) are
/// in its savepoint like those through sqlx, mixed in any order: kept when
/// it commits, undone when it is refused, fails or is cancelled while it
/// holds the connection, and the connection is sqlx's again after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_statements_share_the_members_savepoint_and_fate() {
    use bgsync_server::direct::Value;
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::group_commit(pool(&dir).await);
    let insert = "INSERT INTO notes (n) VALUES ($1)";

    // Direct, then sqlx, then direct again, in one member.
    let mut tx = writer.begin().await.unwrap();
    tx.sqlite().await.unwrap().expect("a group member on SQLite").execute(insert, &[Value::Integer(1)]).unwrap();
    sqlx::query(insert).bind(2_i64).execute(&mut *tx).await.unwrap();
    let direct = tx.sqlite().await.unwrap().unwrap();
    assert_eq!(direct.execute(insert, &[Value::Integer(3)]).unwrap(), 1);
    let seen = direct.query_optional("SELECT COUNT(*) FROM notes", &[], |row| row.integer(0)).unwrap();
    assert_eq!(seen, Some(Some(3)), "the direct statements see the sqlx one");
    tx.commit().await.unwrap();

    // Refused after a direct write.
    let mut tx = writer.begin().await.unwrap();
    tx.sqlite().await.unwrap().unwrap().execute(insert, &[Value::Integer(4)]).unwrap();
    tx.rollback().await.unwrap();

    // A direct statement fails (the key exists) after one that succeeded.
    let mut tx = writer.begin().await.unwrap();
    let direct = tx.sqlite().await.unwrap().unwrap();
    direct.execute(insert, &[Value::Integer(5)]).unwrap();
    let error = direct.execute(insert, &[Value::Integer(1)]).unwrap_err();
    assert!(matches!(&error, sqlx::Error::Database(e) if e.is_unique_violation()), "{error}");
    drop(tx);

    // Cancelled while it holds the connection.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), async {
        let mut tx = writer.begin().await.unwrap();
        tx.sqlite().await.unwrap().unwrap().execute(insert, &[Value::Integer(6)]).unwrap();
        std::future::pending::<()>().await;
        tx.commit().await
    })
    .await;
    assert!(cancelled.is_err(), "the timeout cancels it");

    write(&writer, 7).await.unwrap();
    assert_eq!(committed(&dir).await, [1, 2, 3, 7], "only the committed members' writes");

    // Where the transaction is not a group's, there is no direct connection.
    let per_request = Writer::per_request(writer.pool().clone());
    let mut own = per_request.begin().await.unwrap();
    assert!(own.sqlite().await.unwrap().is_none(), "a transaction of its own uses sqlx");
}

/// Many writers at once, each with direct statements only: a group's
/// members share one hand-over of the connection from sqlx's thread.
///
/// A hand-over a member stalled the server under `wrk`: every hand-over is
/// a message to sqlx's thread, which a member could outrun (it took the
/// connection while that thread, between letting it go and asking for it
/// again, was descheduled), leaving the message unread; 50 unread filled
/// the thread's channel, and the next hand-over held the connection while
/// it waited for room, the thread waiting for the connection. Here the
/// channel holds 2 messages (`command_buffer_size`), so a few members
/// outrunning the thread would be enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_direct_writers_share_one_hand_over_a_group_and_never_stall() {
    use bgsync_server::direct::Value;
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("group.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .command_buffer_size(2);
    let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
    pool.execute("CREATE TABLE notes (n INTEGER PRIMARY KEY)").await.unwrap();
    let writer = Writer::group_commit(pool);
    let (writers, each) = (64_i64, 25_i64);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let mut tx = writer.begin().await.unwrap();
                    let direct = tx.sqlite().await.unwrap().expect("a group member on SQLite");
                    direct.execute("INSERT INTO notes (n) VALUES ($1)", &[Value::Integer(w * each + i)]).unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all).await.expect("every write answered (no stall)");
    assert_eq!(committed(&dir).await.len() as i64, writers * each);
    let stats = writer.stats();
    assert_eq!(stats.writes, (writers * each) as u64);
    assert!(stats.commits < stats.writes, "writes were grouped: {stats:?}");
    assert!(stats.hand_overs >= 1, "the statements ran directly: {stats:?}");
    assert!(stats.hand_overs <= stats.commits, "one hand-over a group at most: {stats:?}");
}

#[tokio::test]
async fn a_per_request_writer_commits_each_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::per_request(pool(&dir).await);
    assert!(!writer.is_group_commit());
    write(&writer, 1).await.unwrap();
    let tx = writer.begin().await.unwrap();
    drop(tx);
    assert_eq!(committed(&dir).await, [1]);
}

/// The committer task lives on the runtime of the first write; used from
/// another runtime after that one is gone, a member commits its group
/// itself rather than wait forever.
#[test]
fn a_writer_outlives_the_runtime_that_ran_its_committer() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let writer = first.block_on(async {
        let writer = Writer::group_commit(pool(&dir).await);
        write(&writer, 1).await.unwrap();
        writer
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    second.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), write(&writer, 2))
            .await
            .expect("committed without its committer")
            .unwrap();
        assert_eq!(committed(&dir).await, [1, 2]);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checkpointed_beside_the_writer() {
    // SQLite would checkpoint only once the WAL holds 1,000 pages, in the
    // committing connection; a few commits stay far below that, so the
    // database file grows only if the writer's checkpointer copied them.
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir).await;
    let file = dir.path().join("group.db");
    let before = std::fs::metadata(&file).unwrap().len();
    let writer = Writer::group_commit(pool.clone());
    for n in 0..300 {
        write(&writer, n).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size > before && writer.stats().checkpoints >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint in 10 s: the database file is {size} bytes ({before} before the writes), {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(committed(&dir).await.len(), 300);
    drop(writer);
    pool.close().await;
}
