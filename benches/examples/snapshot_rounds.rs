//! The `full_tick` scene run round after round, reporting the distribution of round times
//! (criterion reports a mean) and how many snapshots the byte budget had to cut down.
//! Run: `cargo run --release -p arena-benches --example snapshot_rounds -- PLAYERS ORBS [ROUNDS]`

use std::sync::atomic::Ordering;
use std::time::Instant;

use arena_benches::{SnapshotScene, spread_map};

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().expect("numbers: PLAYERS ORBS [ROUNDS]")).collect();
    let (players, orbs) = (args.first().copied().unwrap_or(500), args.get(1).copied().unwrap_or(10_000));
    let rounds = args.get(2).copied().unwrap_or(3000) as usize;
    let mut scene = SnapshotScene::with_map(players as usize, 0, spread_map(8000.0, orbs as u16), true);
    let stats = |scene: &SnapshotScene| {
        let stats = scene.room.stats();
        (stats.snapshots_budget_limited.load(Ordering::Relaxed), stats.snapshots_sent.load(Ordering::Relaxed))
    };
    let (limited_before, sent_before) = stats(&scene);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        scene.feed_inputs();
        let started = Instant::now();
        scene.room.step();
        scene.room.send_snapshots();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        scene.drain_and_ack();
    }
    let (limited, sent) = stats(&scene);
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{players} players, {orbs} orbs, {} projectiles, {rounds} rounds: step + snapshots p10 {:.2} p50 {:.2} p90 {:.2} max {:.2} ms; {} of {} snapshots budget-limited",
        scene.room.world.projectiles.len(),
        at(0.1),
        at(0.5),
        at(0.9),
        at(1.0),
        limited - limited_before,
        sent - sent_before
    );
}
