//! One full server tick — world step plus a snapshot round for every connected client — scaled
//! by players (each a connected client) and entities (orbs on an 8000×8000 map, plus the
//! projectiles a third of the players keep firing). Also the step alone. The map has 64 spawn
//! points ([`spread_map`]), so the players killed respawn spread out and the scene stays the same
//! however long criterion runs it.
//! Run: `cargo bench -p arena-benches --bench full_tick`

use std::hint::black_box;
use std::time::{Duration, Instant};

use arena_benches::{SnapshotScene, spread_map};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn full_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_tick");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for players in [10usize, 100, 500, 1000] {
        for entities in [1_000u32, 10_000, 20_000] {
            let mut scene = SnapshotScene::with_map(players, 0, spread_map(8000.0, entities as u16), true);
            let label = format!("{players}p_{}k", entities / 1000);
            let total_entities = scene.room.world.orbs.len() + scene.room.world.projectiles.len() + players;
            eprintln!("full_tick/{label}: {total_entities} entities in the world");
            group.bench_with_input(BenchmarkId::new("step_and_snapshots", &label), &(), |b, _| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        scene.feed_inputs();
                        let started = Instant::now();
                        scene.room.step();
                        scene.room.send_snapshots();
                        total += started.elapsed();
                        scene.drain_and_ack();
                    }
                    total
                });
            });
            group.bench_with_input(BenchmarkId::new("step_only", &label), &(), |b, _| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        scene.feed_inputs();
                        let started = Instant::now();
                        scene.room.step();
                        total += started.elapsed();
                        black_box(&scene.room.world.tick);
                    }
                    scene.snapshot_and_ack();
                    total
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, full_tick);
criterion_main!(benches);
