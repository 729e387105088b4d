//! Building and encoding one round of snapshots (every client's view, delta against its acked
//! baseline, bincode framing), parameterised by clients.
//! Run: `cargo bench -p arena-benches --bench snapshot_encode`

use std::time::{Duration, Instant};

use arena_benches::SnapshotScene;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn snapshot_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_round");
    group.measurement_time(Duration::from_secs(5));
    for clients in [50usize, 200] {
        let mut scene = SnapshotScene::new(clients, 0, 2000, 4000.0, true);
        scene.advance();
        scene.snapshot_and_ack();
        eprintln!(
            "snapshot_round/{clients}: {} bytes per round, {:.0} bytes per client",
            scene.last_bytes,
            scene.last_bytes as f64 / clients as f64
        );
        group.bench_with_input(BenchmarkId::new("interest", clients), &(), |b, _| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    scene.advance();
                    let started = Instant::now();
                    scene.room.send_snapshots();
                    total += started.elapsed();
                    scene.drain_and_ack();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, snapshot_encode);
criterion_main!(benches);
