//! The snapshot codec on one client's view: encoding on the server and decoding/applying on the
//! client, for a view of 150 entities (as in the target) with some players moving.
//! Also prints the bytes per moving and per idle entity.
//! Run: `cargo bench -p arena-benches --bench codec`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use shared::bits::BitWriter;
use shared::snapshot::{EntityState, NetId, OrbNet, PlayerNet, View, apply_delta, encode_delta};
use shared::tick::Tick;

/// 150 entities: `players` players (ids 1..) and orbs for the rest.
fn view(players: u32, step: u16) -> View {
    let mut entities = Vec::new();
    for id in 1..=150u32 {
        let state = if id <= players {
            // Moving 6.7 units (53 steps of 1/8) per snapshot in x and a bit in y, turning.
            EntityState::Player(PlayerNet {
                x: 8000 + step * 53 + id as u16,
                y: 9000 + step * 7,
                aim: (step * 3 + id as u16) as u8,
                hp: 100,
                score: 5,
                flags: 1,
            })
        } else {
            EntityState::Orb(OrbNet { x: (id * 97) as u16, y: (id * 31) as u16, value: 1 })
        };
        entities.push((NetId(id), state));
    }
    View { entities }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_150_entities");
    for moving in [0u32, 30, 150] {
        let (baseline, current) = (view(moving, 0), view(moving, 1));
        let mut writer = BitWriter::new();
        encode_delta(Tick(2), Some(&baseline), &current, &mut writer);
        let bytes = writer.finish().to_vec();
        let idle = 150 - moving;
        eprintln!(
            "codec: {moving} moving + {idle} idle entities -> {} bytes ({:.2} bytes per moving entity after the 3-byte header)",
            bytes.len(),
            if moving > 0 { (bytes.len() as f64 - 3.0) / f64::from(moving) } else { 0.0 }
        );
        group.bench_with_input(BenchmarkId::new("encode_delta", moving), &(), |b, _| {
            b.iter(|| {
                encode_delta(Tick(2), Some(black_box(&baseline)), black_box(&current), &mut writer);
                black_box(writer.finish().len())
            })
        });
        let mut out = View::default();
        group.bench_with_input(BenchmarkId::new("apply_delta", moving), &(), |b, _| {
            b.iter(|| {
                apply_delta(Tick(2), Some(black_box(&baseline)), black_box(&bytes), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    let full = view(150, 0);
    let mut writer = BitWriter::new();
    group.bench_function("encode_full", |b| {
        b.iter(|| {
            encode_delta(Tick(2), None, black_box(&full), &mut writer);
            black_box(writer.finish().len())
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
