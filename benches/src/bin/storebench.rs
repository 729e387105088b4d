//! Storage figures for BENCHMARKS.md: how many finished rounds (12 players each) one writer
//! commits per second, in batches, into SQLite and into PostgreSQL; and how long the boards take
//! to answer (top 100, around a player) with a million players. PostgreSQL is a throwaway
//! cluster this binary starts on a free loopback port (Debian's `postgresql`), as the tests do.
//!
//! `storebench [--rounds N] [--players N] [--queries N] [--backend sqlite|postgres|both]`

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
    backends: Vec<&'static str>,
}

fn args() -> Args {
    let mut args = Args { rounds: 20_000, players: 1_000_000, queries: 300, backends: vec!["sqlite", "postgres"] };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--players" => args.players = value.parse().expect("--players N"),
            "--queries" => args.queries = value.parse().expect("--queries N"),
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

/// Adds players straight into the table (random ratings and scores) until there are `total`.
async fn fill_players(url: &str, total: u32) {
    sqlx::any::install_default_drivers();
    let connect = match url.strip_prefix("sqlite:") {
        Some(path) => format!("sqlite://{path}"),
        None => url.to_string(),
    };
    let pool = sqlx::AnyPool::connect(&connect).await.expect("connect for the bulk fill");
    use sqlx::Row;
    let have: i64 = sqlx::query("SELECT COUNT(*) FROM players").fetch_one(&pool).await.unwrap().get(0);
    let mut next = have as u32;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    while next < total {
        let chunk = (total - next).min(500);
        let mut sql = String::from(
            "INSERT INTO players (id, name, rating, uncertainty, ordinal, rated_rounds, rounds, wins, score, kills, deaths, first_unix_ms, last_unix_ms, banned) VALUES ",
        );
        for i in 0..chunk {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let ordinal = (rng % 40_000) as f64 / 1000.0 - 10.0;
            let score = rng % 100_000;
            if i > 0 {
                sql.push(',');
            }
            let id = guest_player_id(&(10_000_000 + next + i).to_le_bytes());
            sql.push_str(&format!(
                "('{id}', 'bulk', {r}, 2.0, {ordinal}, 5, 5, 1, {score}, 1, 1, 0, 0, 0)",
                r = ordinal + 6.0
            ));
        }
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
        sqlx::query(&sql).execute(&pool).await.expect("bulk insert");
        next += chunk;
    }
    if url.starts_with("postgres") {
        sqlx::query("ANALYZE players").execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn measure(backend: &str, url: &str, args: &Args) {
    let store = Store::open(url, RatingRules::default()).await.expect("open");
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let rounds: Vec<RoundRecord> = (0..args.rounds).map(|n| round(n, &mut rng)).collect();
    let started = Instant::now();
    for batch in rounds.chunks(server::store::writer::BATCH) {
        store.write(batch).await.expect("write");
    }
    let elapsed = started.elapsed();
    println!(
        "{backend}: wrote {} rounds of up to 12 players in {:.2} s: {:.0} rounds/s (batches of {})",
        args.rounds,
        elapsed.as_secs_f64(),
        f64::from(args.rounds) / elapsed.as_secs_f64(),
        server::store::writer::BATCH
    );
    let fill = Instant::now();
    fill_players(url, args.players).await;
    println!("{backend}: board filled to {} players in {:.1} s", args.players, fill.elapsed().as_secs_f64());
    let probe: Vec<String> =
        (0..args.queries).map(|i| guest_player_id(&(10_000_000 + i * 3001 % args.players).to_le_bytes())).collect();
    for (what, around) in [("top 100", false), ("around me (11)", true)] {
        let mut samples = Vec::new();
        for player in &probe {
            let started = Instant::now();
            let page = if around {
                store.board(Board::Rating, Some(player), 0, 11).await.unwrap()
            } else {
                store.board(Board::Rating, None, 0, 100).await.unwrap()
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
