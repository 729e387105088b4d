//! Finished rounds survive what happens to real server processes and their database:
//! - a server SIGKILLed right after its players saw a round's end screen (while the database was
//!   locked, so the round was only in the spool) has that round in the database after a restart;
//! - a PostgreSQL stopped in the middle of a round and started again: every round the server
//!   ended meanwhile lands exactly once, and the players' totals count each once;
//! - eight server processes playing rated rounds into one PostgreSQL at once, every player on
//!   two of them: every round lands once, and the standings and board counts agree with the lines;
//! - a PostgreSQL not running when the server starts: the server starts anyway, plays rated
//!   rounds into the spool (boards answer 503 meanwhile) and writes them once it answers.

mod common;

#[allow(dead_code)] // The storage benchmark uses the rest of the helper.
#[path = "common/postgres.rs"]
mod postgres;

use std::time::Duration;

use common::{TestClient, eventually, guest_hello, http_to, spawn_binary};
use shared::room::{RoomRequest, RoomSettings, RoundRules};

/// A server process, killed (by its PID) however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("arena-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Two guests in a room of 5-second rounds on the server at `port`.
async fn two_players(port: u16) -> (TestClient, TestClient) {
    two_guests(port, [1; 16], [2; 16]).await
}

/// Guests with the secrets `first` and `second` in a room of 5-second rounds at `port`.
async fn two_guests(port: u16, first: [u8; 16], second: [u8; 16]) -> (TestClient, TestClient) {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let settings =
        RoomSettings { rounds: Some(RoundRules { seconds: 5, score_limit: None }), ..RoomSettings::default() };
    let ann = TestClient::join_with(&url, guest_hello("ann", RoomRequest::Create(settings), first)).await.unwrap();
    let code = ann.welcome.room.code.to_string();
    let bo = TestClient::join_with(&url, guest_hello("bo", RoomRequest::Join { code }, second)).await.unwrap();
    (ann, bo)
}

/// Waits until both clients saw the end of round `round`; returns its id.
async fn round_ends(ann: &mut TestClient, bo: &mut TestClient, round: u32) -> String {
    for client in [&mut *ann, &mut *bo] {
        let ended = client
            .until(Duration::from_secs(20), |c| c.round_over.as_ref().is_some_and(|over| over.round >= round))
            .await;
        assert!(ended, "round {round} never ended; last end screen: {:?}", client.round_over);
    }
    let (a, b) = (ann.round_over.clone().unwrap(), bo.round_over.clone().unwrap());
    assert_eq!(a.round_id, b.round_id, "both saw the same round");
    a.round_id
}

/// A server process on the PostgreSQL at `url` (rated after 1 s of play, 1 s intermissions),
/// spooling to `spool`; (process, port).
fn on_postgres(url: &str, spool: &std::path::Path) -> (std::process::Child, u16) {
    let args = [
        "--bind",
        "127.0.0.1:0",
        "--no-replay",
        "--results-spool",
        spool.to_str().unwrap(),
        "--rated-min-seconds",
        "1",
        "--intermission-seconds",
        "1",
    ];
    spawn_binary(&args, &[("ARENA_NO_DATABASE", "false"), ("ARENA_DATABASE", url)])
}

async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

async fn count(pool: &sqlx::AnyPool, sql: &str, id: &str) -> i64 {
    use sqlx::Row;
    match sqlx::query(sql).bind(id).fetch_one(pool).await {
        Ok(row) => row.try_get::<i64, _>(0).unwrap_or(-1),
        Err(_) => -1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_right_after_the_end_screen_has_the_round_in_the_database_after_restart() {
    let dir = temp("kill");
    let db = dir.join("arena.db");
    let database = format!("sqlite:{}", db.display());
    let spool = dir.join("results.spool");
    let args = [
        "--bind",
        "127.0.0.1:0",
        "--no-replay",
        "--database",
        &database,
        "--results-spool",
        spool.to_str().unwrap(),
        "--rated-min-seconds",
        "1",
        "--intermission-seconds",
        "30",
    ];
    let env = [("ARENA_NO_DATABASE", "false")];
    let (server, port) = spawn_binary(&args, &env);
    let mut server = Server(server);
    // The database made, the test holds its write lock: the server's commit has to wait, so
    // the round is only in the spool when the players see it end.
    let sqlite = format!("sqlite://{}", db.display());
    eventually("the server made and migrated its database", async || {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let version = match sqlx::AnyPool::connect(&sqlite).await {
            Ok(pool) => sqlx::query("SELECT COALESCE(MAX(version), 0) FROM arena_schema")
                .fetch_one(&pool)
                .await
                .and_then(|row| row.try_get::<i64, _>(0))
                .unwrap_or(0),
            Err(_) => 0,
        };
        (version == server::store::db::Store::schema_version(), version)
    })
    .await;
    let locker = pool(&sqlite).await;
    let mut lock = locker.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *lock).await.unwrap();
    let (mut ann, mut bo) = two_players(port).await;
    let round_id = round_ends(&mut ann, &mut bo, 1).await;
    // SIGKILL: no drain, no last write.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let spooled = std::fs::read_to_string(&spool).unwrap_or_default();
    assert!(spooled.contains(&round_id), "the end screen promised the round was on disk: spool {spooled:?}");
    sqlx::query("ROLLBACK").execute(&mut *lock).await.unwrap();
    drop(lock);
    let rounds_sql = "SELECT COUNT(*) FROM rounds WHERE id = $1";
    assert_eq!(count(&locker, rounds_sql, &round_id).await, 0, "not committed before the kill");

    let (again, port) = spawn_binary(&args, &env);
    let _again = Server(again);
    eventually("the restarted server wrote the spooled round", async || {
        let stored = count(&locker, rounds_sql, &round_id).await;
        (stored == 1 && !spool.exists(), (stored, spool.exists()))
    })
    .await;
    let lines = count(&locker, "SELECT COUNT(*) FROM round_players WHERE round_id = $1", &round_id).await;
    assert_eq!(lines, 2, "both players' lines");
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (status, _, body) = common::http_to(address, "GET", &format!("/api/rounds/{round_id}"), None, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ann\"") && body.contains("\"bo\""), "{body}");
    locker.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_round_and_started_again_loses_no_round_and_counts_each_once() {
    let mut pg = postgres::Postgres::start("faults");
    let dir = temp("pg");
    let spool = dir.join("results.spool");
    let url = pg.url();
    let (server, port) = on_postgres(&url, &spool);
    let _server = Server(server);
    let (mut ann, mut bo) = two_players(port).await;
    let first = round_ends(&mut ann, &mut bo, 1).await;
    let check = pool(&url).await;
    let rounds_sql = "SELECT COUNT(*) FROM rounds WHERE id = $1";
    eventually("round 1 committed", async || {
        let n = count(&check, rounds_sql, &first).await;
        (n == 1, n)
    })
    .await;
    check.close().await;
    // Round 2 is running: the database goes away, and round 2 (and 3) end without it.
    pg.stop();
    let second = round_ends(&mut ann, &mut bo, 2).await;
    let third = round_ends(&mut ann, &mut bo, 3).await;
    let spooled = std::fs::read_to_string(&spool).unwrap_or_default();
    assert!(spooled.contains(&second) && spooled.contains(&third), "spooled while the database was down: {spooled:?}");
    pg.start_again();
    let check = pool(&url).await;
    eventually("rounds 2 and 3 written once the database is back", async || {
        let seen = (count(&check, rounds_sql, &second).await, count(&check, rounds_sql, &third).await);
        (seen == (1, 1) && !spool.exists(), (seen, spool.exists()))
    })
    .await;
    // Each player's all-time totals count each of their stored lines once.
    let ann_id = server::store::record::guest_player_id(&[1; 16]);
    let lines = count(&check, "SELECT COUNT(*) FROM round_players WHERE player_id = $1", &ann_id).await;
    let rounds = count(&check, "SELECT rounds FROM standings WHERE season = 0 AND player_id = $1", &ann_id).await;
    assert!(lines >= 3, "ann's lines: {lines}");
    assert_eq!(rounds, lines, "every stored line counted once in ann's totals");
    check.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_at_start_the_server_plays_on_the_spool_and_writes_once_it_answers() {
    let mut pg = postgres::Postgres::start("late");
    pg.stop();
    let dir = temp("late");
    let spool = dir.join("results.spool");
    let url = pg.url();
    let (server, port) = on_postgres(&url, &spool);
    let _server = Server(server);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, body) = http_to(addr, "GET", "/api/leaderboard", None, &[]).await;
    assert_eq!(status, 503, "boards while the database never answered: {body}");
    assert!(body.contains("not answered"), "{body}");
    let (mut ann, mut bo) = two_players(port).await;
    let first = round_ends(&mut ann, &mut bo, 1).await;
    let spooled = std::fs::read_to_string(&spool).unwrap_or_default();
    assert!(spooled.contains(&first), "round 1 waits in the spool: {spooled:?}");
    pg.start_again();
    let check = pool(&url).await;
    eventually("round 1 written once the database answers", async || {
        let n = count(&check, "SELECT COUNT(*) FROM rounds WHERE id = $1", &first).await;
        (n == 1 && !spool.exists(), (n, spool.exists()))
    })
    .await;
    let ann_id = server::store::record::guest_player_id(&[1; 16]);
    eventually("the board answers with ann on it", async || {
        let (status, _, body) = http_to(addr, "GET", "/api/leaderboard?season=all", None, &[]).await;
        (status == 200 && body.contains(&ann_id), (status, body))
    })
    .await;
    check.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_server_processes_on_one_postgres_keep_the_boards_consistent() {
    use sqlx::Row;
    let pg = postgres::Postgres::start("fleet");
    let url = pg.url();
    let dir = temp("fleet");
    let mut servers = Vec::new();
    let mut rooms = Vec::new();
    for n in 0..8u8 {
        let spool = dir.join(format!("results-{n}.spool"));
        let (server, port) = on_postgres(&url, &spool);
        servers.push(Server(server));
        // Player n plays on server n and on server n - 1: each player's rows are written by two
        // processes at once.
        rooms.push(two_guests(port, [n + 1; 16], [(n + 1) % 8 + 1; 16]).await);
    }
    let mut ids = Vec::new();
    for (ann, bo) in &mut rooms {
        ids.push(round_ends(ann, bo, 2).await);
    }
    // Every room's rounds so far: 1 and 2 (a third may be ending now).
    let check = pool(&url).await;
    eventually("every server's second round committed", async || {
        let mut seen = Vec::new();
        for id in &ids {
            seen.push(count(&check, "SELECT COUNT(*) FROM rounds WHERE id = $1", id).await);
        }
        (seen.iter().all(|&n| n == 1), seen)
    })
    .await;
    drop(servers);
    let figures = |row: &sqlx::any::AnyRow| -> Vec<i64> { (0..row.len()).map(|i| row.get::<i64, _>(i)).collect() };
    let row = sqlx::query(
        "SELECT (SELECT CAST(COALESCE(SUM(rated_rounds), 0) AS BIGINT) FROM standings WHERE season = 0), \
         (SELECT COUNT(*) FROM round_players WHERE ordinal_after IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(rounds), 0) AS BIGINT) FROM standings WHERE season = 0), \
         (SELECT COUNT(*) FROM round_players WHERE player_id IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(rounds), 0) AS BIGINT) FROM standings WHERE season > 0), \
         (SELECT COUNT(*) FROM standings WHERE rating_key IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(players), 0) AS BIGINT) FROM board_counts WHERE board = 0), \
         (SELECT COUNT(*) FROM seasons), (SELECT COUNT(*) FROM players)",
    )
    .fetch_one(&check)
    .await
    .unwrap();
    let f = figures(&row);
    assert!(f[1] >= 32, "at least 16 rounds of two rated players: {f:?}");
    assert_eq!(f[0], f[1], "every rated line moved its player's rated count once: {f:?}");
    assert_eq!(f[2], f[3], "every line counted once in its player's all-time totals: {f:?}");
    assert_eq!(f[4], f[3], "and once in the season's: {f:?}");
    assert_eq!(f[5], f[6], "the rating board's bucket counts match its standings: {f:?}");
    assert_eq!((f[7], f[8]), (1, 8), "one season, eight players: {f:?}");
    check.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
