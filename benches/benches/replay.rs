//! Re-simulation speed of the shipped sample replay (`assets/replays/sample.arenareplay`), the
//! work behind `arena-server replay verify`, reported by criterion as time per full replay; the
//! setup also prints it as a multiple of real time.
//! Run: `cargo bench -p arena-benches --bench replay`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use server::replay::format;

fn replay(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/replays/sample.arenareplay");
    let file = format::read(std::fs::File::open(path).expect("sample replay")).expect("readable");
    let ticks = file.records.last().map_or(0, |r| r.tick);
    let match_seconds = f64::from(ticks) / f64::from(file.header.tick_hz);
    let started = Instant::now();
    server::replay::verify(&file).expect("verifies");
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "replay: {ticks} ticks ({match_seconds:.0} s of play, {} records) verified in {:.1} ms = {:.0}x real time",
        file.records.len(),
        took * 1000.0,
        match_seconds / took
    );
    let mut group = c.benchmark_group("replay");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("verify_sample", |b| b.iter(|| black_box(server::replay::verify(&file).expect("verifies"))));
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
