//! The storage suite, the same checks against SQLite (a file) and a real PostgreSQL (a throwaway
//! cluster on a free port): rounds stored once however often they are written, ratings that
//! move the right way, boards and profiles, bounded pages; a newer schema refused; a file that
//! is not a database refused and left alone; the writer's spool keeping rounds through a
//! database that goes away and comes back; eight writers on one PostgreSQL at once.

mod common;

#[allow(dead_code)] // The storage benchmark uses the rest of the helper.
#[path = "common/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::eventually;
use server::store::db::{Board, Store, StoreCell};
use server::store::rating::RatingRules;
use server::store::record::{RecordedPlayer, ResultsSink, RoundRecord, guest_player_id};
use server::store::writer::{self, WriterStats};
use tokio_util::sync::CancellationToken;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("arena-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn id(n: u8) -> String {
    guest_player_id(&[n; 16])
}

fn line(player: Option<String>, name: &str, place: u16, score: u16) -> RecordedPlayer {
    RecordedPlayer {
        player,
        name: name.to_string(),
        place,
        bot: false,
        left: false,
        score,
        kills: score / 10,
        deaths: 1,
        orbs: 2,
        shots: 10,
        hits: 3,
        seconds_played: 300,
        net_id: None,
    }
}

fn round(n: u32, players: Vec<RecordedPlayer>) -> RoundRecord {
    RoundRecord {
        round_id: format!("{n:032x}"),
        server: "gs-1".into(),
        room: "ABCD".into(),
        round: n,
        map: "arena".into(),
        ended_unix_ms: 1_700_000_000_000 + u64::from(n),
        why: "time".into(),
        seconds: 300,
        replay: Some(format!("ABCD-{n}.arenarec")),
        players,
    }
}

/// The checks every backend passes.
async fn suite(url: &str) {
    let store = Store::open(url, RatingRules::default()).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    let (ann, bo, cy) = (id(1), id(2), id(3));
    let mut bot = line(None, "bot", 2, 50);
    bot.bot = true;
    let first = round(
        1,
        vec![line(Some(ann.clone()), "ann", 1, 90), bot, line(Some(bo.clone()), "bo", 3, 20), line(None, "anon", 4, 5)],
    );
    assert_eq!(store.write(std::slice::from_ref(&first)).await.unwrap(), 1);
    // The same round again (a retry, a replayed spool): counted once.
    assert_eq!(store.write(&[first.clone(), first.clone()]).await.unwrap(), 0);
    assert_eq!(store.rounds().await.unwrap(), 1);
    let board = store.board(Board::Rating, None, 0, 100).await.unwrap();
    let order: Vec<&str> = board.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(order, ["ann", "bo"], "rated humans only, the winner first: {board:?}");
    assert!(board.lines[0].rating > 0.0 && board.lines[1].rating < board.lines[0].rating, "{board:?}");
    assert_eq!(board.total, 2);
    // A short-played player: not rated, but their totals count.
    let mut late = line(Some(cy.clone()), "<b>cy</b>", 1, 40);
    late.seconds_played = 10;
    let second = round(2, vec![line(Some(bo.clone()), "bo", 1, 70), line(Some(ann.clone()), "ann", 2, 10), late]);
    assert_eq!(store.write(&[second]).await.unwrap(), 1);
    let profile = store.profile(&bo, 10).await.unwrap().expect("bo's profile");
    assert_eq!((profile.rated_rounds, profile.rounds, profile.wins, profile.score), (2, 2, 1, 90), "{profile:?}");
    assert_eq!(profile.recent.len(), 2);
    assert_eq!(profile.recent[0].round_id, format!("{:032x}", 2), "newest first");
    assert!(profile.recent[0].rating_change.unwrap() > 0.0, "a win raises the rating: {profile:?}");
    assert_eq!(profile.recent[0].replay.as_deref(), Some("ABCD-2.arenarec"));
    assert!(profile.rank.is_some());
    let cy_profile = store.profile(&cy, 10).await.unwrap().expect("cy has totals");
    assert_eq!((cy_profile.rated_rounds, cy_profile.rounds, cy_profile.rank), (0, 1, None));
    assert_eq!(cy_profile.name, "<b>cy</b>", "names are kept as given (pages render them as text)");
    let stored = store.round(&format!("{:032x}", 1)).await.unwrap().expect("round 1");
    assert_eq!(stored.players.len(), 4);
    assert!(stored.rated);
    assert!(stored.players[1].bot && stored.players[1].rating_after.is_none(), "bots are not rated");
    assert!(store.round(&format!("{:032x}", 99)).await.unwrap().is_none());
    assert!(store.profile(&id(9), 10).await.unwrap().is_none());
    // Boards: by score, pages, around a player.
    let by_score = store.board(Board::Score, None, 0, 100).await.unwrap();
    assert_eq!(by_score.lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["ann", "bo", "<b>cy</b>"]);
    let page = store.board(Board::Score, None, 1, 1).await.unwrap();
    assert_eq!((page.lines.len(), page.lines[0].rank, page.lines[0].name.as_str()), (1, 2, "bo"));
    let around = store.board(Board::Score, Some(&cy), 0, 1).await.unwrap();
    assert_eq!(around.lines[0].player, cy, "around centres on the player: {around:?}");
    assert_eq!(store.rank(Board::Score, &cy).await.unwrap(), Some(3));
    drop(store);

    // Many players: the top and around-me pages stay exact.
    let store = Store::open(url, RatingRules::default()).await.unwrap();
    let mut rounds = Vec::new();
    for n in 0..50u32 {
        let a = Some(guest_player_id(&n.to_le_bytes()));
        let b = Some(guest_player_id(&(n + 1000).to_le_bytes()));
        rounds
            .push(round(100 + n, vec![line(a, &format!("w{n}"), 1, 100 + n as u16), line(b, &format!("l{n}"), 2, 1)]));
    }
    assert_eq!(store.write(&rounds).await.unwrap(), 50);
    let top = store.board(Board::Score, None, 0, 100).await.unwrap();
    assert_eq!(top.total, 103);
    // Places: tied scores share one (competition ranking), the next place skips past them.
    for (position, pair) in top.lines.windows(2).enumerate() {
        let expected = if pair[0].score == pair[1].score { pair[0].rank } else { position as u64 + 2 };
        assert!(pair[0].score >= pair[1].score && pair[1].rank == expected, "line {}: {top:?}", position + 1);
    }
    assert_eq!(top.lines.last().unwrap().score, 1);
    let tied = store.board(Board::Score, None, 60, 10).await.unwrap();
    assert!(tied.lines.iter().all(|l| l.score == 1 && l.rank == top.lines[60].rank), "a page inside a tie: {tied:?}");
    let around = store.board(Board::Score, Some(&guest_player_id(&1025u32.to_le_bytes())), 0, 5).await.unwrap();
    assert_eq!(around.lines.len(), 5, "around a tied player: {around:?}");
    assert!(around.lines.iter().any(|l| l.player == guest_player_id(&1025u32.to_le_bytes())), "{around:?}");
}

#[tokio::test]
async fn sqlite_keeps_rounds_once_rates_them_and_serves_the_boards() {
    let dir = temp("suite");
    suite(&format!("sqlite:{}", dir.join("arena.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_rounds_once_rates_them_and_serves_the_boards() {
    let pg = postgres::Postgres::start("suite");
    suite(&pg.url()).await;
}

async fn refuses_a_newer_schema(url: &str) {
    let store = Store::open(url, RatingRules::default()).await.unwrap();
    drop(store);
    let pool = sqlx_pool(url).await;
    sqlx::query("INSERT INTO arena_schema (version) VALUES (99)").execute(&pool).await.unwrap();
    pool.close().await;
    let error = Store::open(url, RatingRules::default()).await.unwrap_err();
    assert!(error.contains("version 99") && error.contains("newer"), "{error}");
}

async fn sqlx_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match url.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite://{path}"),
        None => url.to_string(),
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_with_the_reason_on_both_backends() {
    let dir = temp("newer");
    refuses_a_newer_schema(&format!("sqlite:{}", dir.join("arena.db").display())).await;
    let pg = postgres::Postgres::start("newer");
    refuses_a_newer_schema(&pg.url()).await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = temp("corrupt");
    let path = dir.join("arena.db");
    let junk = b"this is not a database, and it is somebody's file".repeat(200);
    std::fs::write(&path, &junk).unwrap();
    let error = Store::open(&format!("sqlite:{}", path.display()), RatingRules::default()).await.unwrap_err();
    assert!(error.contains("is not a SQLite database (left as it is)"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), junk, "never a silent new database");
    let error = Store::open("mysql://x", RatingRules::default()).await.unwrap_err();
    assert!(error.contains("sqlite:FILE or postgres://"), "{error}");
}

/// A database stopped under a running writer: the rounds wait in the spool (and say they are
/// saved), and land exactly once when it is back; a writer restarted over a spool replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_survive_the_database_going_away_and_land_once() {
    let mut pg = postgres::Postgres::start("outage");
    let dir = temp("outage");
    let spool = dir.join("results.spool");
    let store = Arc::new(Store::open(&pg.url(), RatingRules::default()).await.unwrap());
    let (sink, queue) = ResultsSink::new();
    let stats = Arc::new(WriterStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer::run(
        Some(StoreCell::ready(store.clone())),
        queue,
        spool.clone(),
        stats.clone(),
        stop.clone(),
    ));
    let two = |n: u8| vec![line(Some(id(n)), "a", 1, 10), line(Some(id(n + 1)), "b", 2, 5)];
    let (saved, rated) = sink.offer(round(1, two(1))).unwrap();
    eventually("round 1 committed", async || {
        (stats.committed.load(Ordering::Relaxed) == 1, stats.committed.load(Ordering::Relaxed))
    })
    .await;
    assert!(saved.load(Ordering::Acquire));
    let changes = rated.get().expect("the committed round's rating changes are handed back");
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().any(|c| c.after > c.before && c.rank == Some(1)), "the winner rises to 1st: {changes:?}");
    assert!(changes.iter().any(|c| c.after < c.before && c.rank == Some(2)), "{changes:?}");

    pg.stop();
    let mut flags = Vec::new();
    for n in 2..=6 {
        flags.push(sink.offer(round(n, two(n as u8 * 2))).unwrap().0);
    }
    eventually("the rounds spooled while the database is down", async || {
        let spooled = writer::read_spool(&spool).len();
        (flags.iter().all(|f| f.load(Ordering::Acquire)) && spooled == 5, spooled)
    })
    .await;
    eventually("the writer noticed the outage", async || (stats.failures.load(Ordering::Relaxed) > 0, ())).await;

    pg.start_again();
    eventually("every round committed after the database came back", async || {
        let rounds = store.rounds().await.unwrap_or(-1);
        (rounds == 6 && !spool.exists(), (rounds, spool.exists()))
    })
    .await;
    stop.cancel();
    task.await.unwrap();

    // A spool left by a crash (a round committed and still spooled, and one not committed):
    // a new writer replays it; the committed one counts once.
    std::fs::write(
        &spool,
        format!(
            "{}\n{}\n{{\"torn",
            serde_json::to_string(&round(6, two(12))).unwrap(),
            serde_json::to_string(&round(7, two(14))).unwrap()
        ),
    )
    .unwrap();
    let (_sink, queue) = ResultsSink::new();
    let stats = Arc::new(WriterStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer::run(
        Some(StoreCell::ready(store.clone())),
        queue,
        spool.clone(),
        stats.clone(),
        stop.clone(),
    ));
    eventually("the spool replayed", async || {
        let rounds = store.rounds().await.unwrap_or(-1);
        (rounds == 7 && !spool.exists(), rounds)
    })
    .await;
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1, "round 6 was already stored");
    stop.cancel();
    task.await.unwrap();
}

/// Eight servers (each its own pool) writing to one PostgreSQL at once, over the same players:
/// every round lands once and every rated round moves its players' counts exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_on_one_postgres_keep_the_boards_consistent() {
    let pg = postgres::Postgres::start("eight");
    let url = pg.url();
    Store::open(&url, RatingRules::default()).await.unwrap();
    // Eight servers asking for the current season of an empty database at once begin one season.
    let mut opening = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        opening.push(tokio::spawn(async move {
            let store = Store::open(&url, RatingRules::default()).await.unwrap();
            store.current_season().await.unwrap().season
        }));
    }
    let mut seasons = Vec::new();
    for task in opening {
        seasons.push(task.await.unwrap());
    }
    assert_eq!(seasons, vec![1; 8], "every server saw the same first season");
    let mut tasks = Vec::new();
    for server in 0..8u32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::open(&url, RatingRules::default()).await.unwrap();
            for n in 0..25u32 {
                // Twelve players out of a shared pool of 24: servers contend for the same rows.
                let players = (0..12u32)
                    .map(|p| {
                        let who = ((server * 7 + n * 5 + p * 2) % 24) as u8;
                        line(Some(id(who)), &format!("p{who}"), p as u16 + 1, 100 - p as u16)
                    })
                    .collect::<Vec<_>>();
                let mut unique = players.clone();
                unique.sort_by(|a, b| a.player.cmp(&b.player));
                unique.dedup_by(|a, b| a.player == b.player);
                let record = round(10_000 * (server + 1) + n, unique);
                let mut tries = 0;
                while let Err(error) = store.write(std::slice::from_ref(&record)).await {
                    tries += 1;
                    assert!(tries < 20, "server {server} round {n}: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let store = Store::open(&url, RatingRules::default()).await.unwrap();
    assert_eq!(store.rounds().await.unwrap(), 200);
    let pool = sqlx_pool(&url).await;
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT (SELECT CAST(COALESCE(SUM(rated_rounds), 0) AS BIGINT) FROM standings WHERE season = 0), \
         (SELECT COUNT(*) FROM round_players WHERE ordinal_after IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(rounds), 0) AS BIGINT) FROM standings WHERE season = 0), \
         (SELECT COUNT(*) FROM round_players WHERE player_id IS NOT NULL)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (rated, rated_lines, rounds, lines): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(rated, rated_lines, "every rated line moved its player's count once");
    assert_eq!(rounds, lines, "every line counted once in its player's totals");
    let board = store.board(Board::Rating, None, 0, 100).await.unwrap();
    assert_eq!(board.total, 24);
    assert!(board.lines.windows(2).all(|w| w[0].rating >= w[1].rating), "{board:?}");
    // The season's standings took the same rounds; the bucket counts match the standings.
    let row = sqlx::query(
        "SELECT (SELECT CAST(COALESCE(SUM(rounds), 0) AS BIGINT) FROM standings WHERE season = 1), \
         (SELECT COUNT(*) FROM standings WHERE rating_key IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(players), 0) AS BIGINT) FROM board_counts WHERE board = 0), \
         (SELECT COUNT(*) FROM standings WHERE score_key IS NOT NULL), \
         (SELECT CAST(COALESCE(SUM(players), 0) AS BIGINT) FROM board_counts WHERE board = 1)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let figures: (i64, i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let seasons: i64 = sqlx::query("SELECT COUNT(*) FROM seasons").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(seasons, 1, "no second season was begun by a race");
    assert_eq!(figures.0, rounds, "season 1 counted every line too: {figures:?}");
    assert_eq!((figures.1, figures.3), (figures.2, figures.4), "counts match the standings: {figures:?}");
    for (place, line) in board.lines.iter().enumerate() {
        assert_eq!(store.rank(Board::Rating, &line.player).await.unwrap(), Some(line.rank), "line {place}");
    }
}

/// Seasons, a rated-play ban and an erasure, on both backends: a season's board starts empty and
/// fresh, the ended one is kept; a banned player leaves every board and is not rated, and comes
/// back as they were; an erased player is gone from the boards, their lines kept without an id.
async fn seasons_bans_and_erasure(url: &str) {
    use server::store::db::SeasonPick;
    let store = Store::open(url, RatingRules::default()).await.unwrap();
    let (ann, bo, cy) = (id(1), id(2), id(3));
    let three = |n: u32, order: [&String; 3]| {
        round(
            n,
            order
                .iter()
                .enumerate()
                .map(|(i, p)| line(Some((*p).clone()), &format!("p{}", &p[..4]), i as u16 + 1, 30 - i as u16 * 10))
                .collect(),
        )
    };
    store.write(&[three(1, [&ann, &bo, &cy])]).await.unwrap();
    let first = store.current_season().await.unwrap();
    assert_eq!(first.season, 1);
    let season = store.season_board(Board::Rating, SeasonPick::Current, None, 0, 10).await.unwrap();
    assert_eq!((season.season, season.total), (1, 3), "{season:?}");
    assert_eq!(season.lines[0].player, ann);

    // The operator ends the season: the next starts empty, the ended one keeps its board.
    let (ended, next) = store.end_season().await.unwrap();
    assert_eq!((ended.season, next.season), (1, 2));
    assert!(ended.ended_unix_ms.is_some() && next.ended_unix_ms.is_none());
    let empty = store.season_board(Board::Rating, SeasonPick::Current, None, 0, 10).await.unwrap();
    assert_eq!((empty.season, empty.total, empty.lines.len()), (2, 0, 0), "{empty:?}");
    store.write(&[three(2, [&cy, &bo, &ann])]).await.unwrap();
    let now = store.season_board(Board::Rating, SeasonPick::Current, None, 0, 10).await.unwrap();
    assert_eq!(now.lines[0].player, cy, "this season cy won its only round: {now:?}");
    assert!(
        (now.lines[0].rating
            - store.season_board(Board::Rating, SeasonPick::Number(1), None, 0, 1).await.unwrap().lines[0].rating)
            .abs()
            < 1e-9,
        "a season starts everyone afresh: one win each is the same rating"
    );
    let past = store.season_board(Board::Rating, SeasonPick::Number(1), None, 0, 10).await.unwrap();
    assert_eq!(past.lines.iter().map(|l| l.player.clone()).collect::<Vec<_>>(), [ann.clone(), bo.clone(), cy.clone()]);
    let all = store.season_board(Board::Score, SeasonPick::AllTime, None, 0, 10).await.unwrap();
    assert_eq!((all.season, all.total), (0, 3));
    assert!(all.lines.iter().all(|l| l.rounds == 2), "all time counts both rounds: {all:?}");
    assert!(store.season_board(Board::Rating, SeasonPick::Number(9), None, 0, 10).await.is_err());
    let listed = store.seasons_list(10).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.season).collect::<Vec<_>>(), [2, 1]);
    let profile = store.profile(&cy, 5).await.unwrap().unwrap();
    let this = profile.this_season.expect("cy played this season");
    assert_eq!((this.season, this.rounds, this.rank), (2, 1, Some(1)), "{this:?}");

    // A rated-play ban: off every board, not rated; lifted: back as before.
    let before = store.profile(&ann, 5).await.unwrap().unwrap();
    assert!(store.set_rated_ban(&ann, true).await.unwrap());
    assert!(!store.set_rated_ban(&id(77), true).await.unwrap(), "no such player");
    for season in [SeasonPick::AllTime, SeasonPick::Current, SeasonPick::Number(1)] {
        for board in [Board::Rating, Board::Score] {
            let page = store.season_board(board, season, None, 0, 10).await.unwrap();
            assert!(page.lines.iter().all(|l| l.player != ann), "{season:?} {board:?}: {page:?}");
            assert_eq!(page.total as usize, page.lines.len(), "counts follow the ban: {page:?}");
        }
    }
    store.write(&[three(3, [&ann, &bo, &cy])]).await.unwrap();
    let banned = store.profile(&ann, 5).await.unwrap().unwrap();
    assert!(banned.banned && banned.rank.is_none());
    assert_eq!(
        (banned.rated_rounds, banned.rounds, banned.rating),
        (before.rated_rounds, 3, before.rating),
        "not rated while banned"
    );
    let stored = store.round(&format!("{:032x}", 3)).await.unwrap().unwrap();
    assert!(
        stored.players[0].rating_after.is_none() && stored.players[1].rating_after.is_some(),
        "the others are still rated"
    );
    assert!(store.set_rated_ban(&ann, false).await.unwrap());
    assert!(store.rank(Board::Rating, &ann).await.unwrap().is_some(), "back on the board");

    // Erasure: the player is gone; their lines stay, without an id or a name.
    let erased = store.erase_player(&bo).await.unwrap().expect("bo was stored");
    // What is left to rewrite: each of bo's rounds' replay, named by the line's name (these
    // lines were stored without an entity id).
    let files: Vec<&str> = erased.replays.iter().map(|r| r.file.as_str()).collect();
    assert!(files.contains(&"ABCD-1.arenarec") && files.contains(&"ABCD-2.arenarec"), "{erased:?}");
    let bo_name = format!("p{}", &bo[..4]);
    assert!(erased.replays.iter().all(|r| r.net_ids.is_empty() && r.names == [bo_name.clone()]), "{erased:?}");
    assert!(store.profile(&bo, 5).await.unwrap().is_none());
    assert!(store.erase_player(&bo).await.unwrap().is_none(), "erased once");
    for season in [SeasonPick::AllTime, SeasonPick::Current, SeasonPick::Number(1)] {
        let page = store.season_board(Board::Score, season, None, 0, 10).await.unwrap();
        assert!(page.lines.iter().all(|l| l.player != bo), "{page:?}");
        assert_eq!(page.total as usize, page.lines.len(), "{page:?}");
    }
    let stored = store.round(&format!("{:032x}", 1)).await.unwrap().unwrap();
    assert_eq!(stored.players[1].player, None);
    assert_eq!(stored.players[1].name, "(erased)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seasons_bans_and_erasure_on_both_backends() {
    let dir = temp("seasons");
    seasons_bans_and_erasure(&format!("sqlite:{}", dir.join("arena.db").display())).await;
    let pg = postgres::Postgres::start("seasons");
    seasons_bans_and_erasure(&pg.url()).await;
}

/// A database made by the first schema (before seasons), with a player in it, is migrated at
/// start: the player keeps their rating and totals on the all-time board, with their rank.
#[tokio::test]
async fn a_first_schema_database_is_migrated_with_its_players() {
    let dir = temp("migrate");
    let url = format!("sqlite:{}", dir.join("arena.db").display());
    let pool = sqlx_pool(&format!("{url}?mode=rwc")).await;
    let first = include_str!("../migrations/0001_players_and_rounds.sql");
    sqlx::query("CREATE TABLE arena_schema (version BIGINT NOT NULL)").execute(&pool).await.unwrap();
    for statement in first
        .split(';')
        .map(str::trim)
        .filter(|s| s.lines().any(|l| !l.trim().is_empty() && !l.trim().starts_with("--")))
    {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO arena_schema (version) VALUES (1)").execute(&pool).await.unwrap();
    let (ann, bo) = (id(1), id(2));
    for (who, ordinal, score) in [(&ann, 4.5, 120), (&bo, 6.25, 80)] {
        sqlx::query(
            "INSERT INTO players (id, name, rating, uncertainty, ordinal, rated_rounds, rounds, wins, score, kills, deaths, first_unix_ms, last_unix_ms, banned) \
             VALUES ($1, 'old', $2, 2.0, $3, 3, 4, 1, $4, 5, 6, 0, 0, 0)",
        )
        .bind(who.as_str())
        .bind(ordinal + 6.0)
        .bind(ordinal)
        .bind(score as i64)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let store = Store::open(&url, RatingRules::default()).await.unwrap();
    let board = store.board(Board::Rating, None, 0, 10).await.unwrap();
    assert_eq!(board.total, 2);
    assert_eq!(
        board.lines.iter().map(|l| (l.player.clone(), l.rank)).collect::<Vec<_>>(),
        [(bo.clone(), 1), (ann.clone(), 2)]
    );
    let profile = store.profile(&ann, 5).await.unwrap().unwrap();
    assert_eq!((profile.rounds, profile.score, profile.kills, profile.rank), (4, 120, 5, Some(2)), "{profile:?}");
    assert_eq!(store.rank(Board::Score, &ann).await.unwrap(), Some(1));
}
