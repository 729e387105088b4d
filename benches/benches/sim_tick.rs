//! One simulation tick, parameterised by players / orbs / projectiles.
//! Run: `cargo bench -p arena-benches --bench sim_tick`

use std::hint::black_box;
use std::time::{Duration, Instant};

use arena_benches::TickScene;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn sim_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_tick");
    group.measurement_time(Duration::from_secs(5));
    for (players, orbs, firing_every) in [(200usize, 2000u16, 1usize), (500, 2000, 2)] {
        let mut scene = TickScene::new(players, orbs, 4000.0, firing_every);
        let label = format!("{players}p_{orbs}o_{}proj", scene.projectiles());
        group.bench_with_input(BenchmarkId::new("step", label), &(), |b, _| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    scene.step();
                    total += started.elapsed();
                    black_box(&scene.stepper.world.tick);
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, sim_tick);
criterion_main!(benches);
