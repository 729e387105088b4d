//! Storage figures for BENCHMARKS.md: how many finished rounds (12 players each) one writer
//! commits per second, in batches, into SQLite and into PostgreSQL; and how long the boards take
//! to answer (top 100, around a player) with a million players. PostgreSQL is a throwaway
//! cluster this binary starts on a free loopback port (Debian's `postgresql`), as the tests do.
//!
//! `storebench [--rounds N] [--players N] [--queries N] [--batch N] [--backend sqlite|postgres|both]`

#[allow(dead_code)] // The tests use the other half of the helper.
#[path = "../../../server/tests/common/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use server::store::db::{Board, Store};
use server::store::rating::RatingRules;
use server::store::record::{RecordedPlayer, RoundRecord, guest_player_id};

struct Args {
    rounds: u32,
    players: u32,
    queries: u32,
    batch: usize,
    backends: Vec<&'static str>,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 20_000,
        players: 1_000_000,
        queries: 300,
        batch: server::store::writer::BATCH,
        backends: vec!["sqlite", "postgres"],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--players" => args.players = value.parse().expect("--players N"),
            "--queries" => args.queries = value.parse().expect("--queries N"),
            "--batch" => args.batch = value.parse().expect("--batch N"),
            "--backend" => {
                args.backends = match value.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    other => panic!("--backend sqlite|postgres|both, got {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn round(n: u32, rng: &mut u64) -> RoundRecord {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let players = (0..12u16)
        .map(|place| {
            let who = (next() % 100_000) as u32;
            RecordedPlayer {
                player: Some(guest_player_id(&who.to_le_bytes())),
                name: format!("p{who}"),
                place: place + 1,
                bot: false,
                left: false,
                score: 100 - place,
                kills: 3,
                deaths: 2,
                orbs: 5,
                shots: 40,
                hits: 12,
                seconds_played: 300,
                net_id: None,
            }
        })
        .collect::<Vec<_>>();
    let mut unique = players;
    unique.sort_by(|a, b| a.player.cmp(&b.player));
    unique.dedup_by(|a, b| a.player == b.player);
    RoundRecord {
        round_id: format!("{:016x}{n:016x}", 0xbe4c_u64),
        server: "bench".into(),
        room: "ABCD".into(),
        round: n,
        map: "arena".into(),
        ended_unix_ms: 1_700_000_000_000 + u64::from(n),
        why: "time".into(),
        seconds: 300,
        replay: None,
        players: unique,
    }
}

fn quantile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

/// Adds players straight into the tables (random all-time ratings and scores) until there are
/// `total`, then counts the boards' buckets afresh.
async fn fill_players(store: &Store, url: &str, total: u32) {
    sqlx::any::install_default_drivers();
    let connect = match url.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite://{path}"),
        None => url.to_string(),
    };
    // One connection with a large page cache: the fill's random ids touch every page.
    let pool =
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&connect).await.expect("connect for the bulk fill");
    if url.starts_with("sqlite:") {
        sqlx::query("PRAGMA cache_size=-1048576").execute(&pool).await.unwrap();
        sqlx::query("PRAGMA synchronous=OFF").execute(&pool).await.unwrap();
    }
    use sqlx::Row;
    let have: i64 = sqlx::query("SELECT COUNT(*) FROM players").fetch_one(&pool).await.unwrap().get(0);
    let mut next = have as u32;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    while next < total {
        let chunk = (total - next).min(500);
        let mut players = String::from("INSERT INTO players (id, name, first_unix_ms, last_unix_ms, banned) VALUES ");
        let mut standings = String::from(
            "INSERT INTO standings (season, player_id, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key) VALUES ",
        );
        for i in 0..chunk {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let ordinal = (rng % 40_000) as f64 / 1000.0 - 10.0;
            let score = rng % 100_000;
            if i > 0 {
                players.push(',');
                standings.push(',');
            }
            let id = guest_player_id(&(10_000_000 + next + i).to_le_bytes());
            players.push_str(&format!("('{id}', 'bulk', 0, 0, 0)"));
            standings.push_str(&format!(
                "(0, '{id}', {r}, 2.0, 5, 5, 1, {score}, 1, 1, {ordinal}, {score})",
                r = ordinal + 6.0
            ));
        }
        players.push_str(" ON CONFLICT (id) DO NOTHING");
        standings.push_str(" ON CONFLICT (season, player_id) DO NOTHING");
        sqlx::query(&players).execute(&pool).await.expect("bulk insert");
        sqlx::query(&standings).execute(&pool).await.expect("bulk insert");
        next += chunk;
    }
    // PostgreSQL's autovacuum would get there on its own; the bench does not wait for it (an
    // index-only scan needs the visibility map a vacuum writes).
    let analyze = if url.starts_with("postgres") { "VACUUM ANALYZE" } else { "ANALYZE" };
    sqlx::query(analyze).execute(&pool).await.unwrap();
    pool.close().await;
    store.rebuild_counts().await.expect("count the boards");
}

async fn measure(backend: &str, url: &str, args: &Args) {
    let store = Store::open(url, RatingRules::default()).await.expect("open");
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let rounds: Vec<RoundRecord> = (0..args.rounds).map(|n| round(n, &mut rng)).collect();
    let started = Instant::now();
    for batch in rounds.chunks(args.batch) {
        store.write(batch).await.expect("write");
    }
    let elapsed = started.elapsed();
    println!(
        "{backend}: wrote {} rounds of up to 12 players in {:.2} s: {:.0} rounds/s (batches of {})",
        args.rounds,
        elapsed.as_secs_f64(),
        f64::from(args.rounds) / elapsed.as_secs_f64(),
        args.batch
    );
    let fill = Instant::now();
    fill_players(&store, url, args.players).await;
    println!("{backend}: board filled to {} players in {:.1} s", args.players, fill.elapsed().as_secs_f64());
    let probe: Vec<String> =
        (0..args.queries).map(|i| guest_player_id(&(10_000_000 + i * 3001 % args.players).to_le_bytes())).collect();
    for (what, board, around) in [
        ("top 100 by rating", Board::Rating, false),
        ("around me (11) by rating", Board::Rating, true),
        ("top 100 by score", Board::Score, false),
        ("around me (11) by score", Board::Score, true),
    ] {
        let mut samples = Vec::new();
        for player in &probe {
            let started = Instant::now();
            let page = if around {
                store.board(board, Some(player), 0, 11).await.unwrap()
            } else {
                store.board(board, None, 0, 100).await.unwrap()
            };
            samples.push(started.elapsed());
            assert!(!page.lines.is_empty());
        }
        println!(
            "{backend}: {what} at {} players: p50 {:.2} ms, p99 {:.2} ms ({} queries)",
            args.players,
            quantile(&mut samples, 0.5),
            quantile(&mut samples, 0.99),
            samples.len()
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    for backend in args.backends.clone() {
        match backend {
            "sqlite" => {
                let dir = std::env::temp_dir().join(format!("arena-storebench-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                measure("sqlite", &format!("sqlite:{}", dir.join("bench.db").display()), &args).await;
                let _ = std::fs::remove_dir_all(&dir);
            }
            _ => {
                let pg = postgres::Postgres::start_durable("bench");
                measure("postgres", &pg.url(), &args).await;
            }
        }
    }
}
