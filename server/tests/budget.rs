//! The snapshot byte budget: 500 moving entities in one client's view, acks arriving five
//! snapshots late (about 150 ms at 30 Hz): every delta fits the budget, the client reconstructs
//! exactly what the server recorded, and every entity is brought up to date at least every K
//! snapshots. Then a real server with hundreds of bots in one view keeps every message within
//! `--snapshot-budget-bytes`.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use common::{TestClient, TestServer};
use glam::Vec2;
use server::ServerConfig;
use server::snapshot::Baselines;
use server::snapshot::budget::{Budget, Focus};
use shared::bits::BitWriter;
use shared::map::MapDef;
use shared::protocol::{self, ServerMsg};
use shared::quant;
use shared::snapshot::{EntityState, NetId, PlayerNet, SnapshotReceiver, View, encode_delta};
use shared::tick::Tick;
use tokio_tungstenite::tungstenite::Message;

/// Entity `i` of 500 at snapshot `n`: circling at its own speed, the fast ones far out.
fn world_at(n: u32) -> View {
    let entities = (0..500u32)
        .map(|i| {
            let radius = 100.0 + (i % 50) as f32 * 16.0;
            let speed = 0.01 + (i % 7) as f32 * 0.01;
            let angle = i as f32 * 0.37 + n as f32 * speed;
            let pos = Vec2::new(1000.0, 1000.0) + Vec2::new(angle.cos(), angle.sin()) * radius;
            let (x, y) = quant::vec_to_q(pos);
            let state = PlayerNet { x, y, aim: quant::angle_to_q(angle), hp: 100, score: (n / 90) as u16, flags: 1 };
            (NetId(i + 1), EntityState::Player(state))
        })
        .collect();
    View { entities }
}

#[test]
fn five_hundred_moving_entities_fit_the_budget_and_all_stay_fresh() {
    let budget_bytes = 1400usize;
    let budget_bits = budget_bytes * 8;
    let mut budget = Budget::new();
    let mut baselines: Baselines = Baselines::new();
    let mut receiver = SnapshotReceiver::new();
    let mut writer = BitWriter::new();
    let mut in_flight: VecDeque<Tick> = VecDeque::new();
    let mut stale = vec![0u32; 500];
    let (mut worst_stale, mut largest, mut total, mut unbudgeted, mut rollbacks) =
        (0u32, 0usize, 0usize, 0usize, 0usize);
    let focus = Focus { pos: Vec2::new(1000.0, 1000.0), own: NetId(1) };
    let snapshots = 300u32;
    for n in 0..snapshots {
        let tick = Tick(n * 2);
        let truth = world_at(n);
        let baseline = baselines.baseline();
        encode_delta(tick, baseline.map(|(_, v)| &**v), &truth, &mut writer);
        unbudgeted += writer.finish().len();
        let mut fitted = View::default();
        let newest = baselines.newest().cloned();
        let outcome =
            budget.fit(tick, baseline.map(|(_, v)| &**v), newest.as_deref(), &truth, focus, budget_bits, &mut fitted);
        // A rollback: the client last got a newer state than the one this snapshot leaves it.
        if let Some(newest) = &newest {
            rollbacks += fitted
                .entities
                .iter()
                .filter(|(id, state)| {
                    newest.get(*id).is_some_and(|last| last != state) && truth.get(*id) != Some(state)
                })
                .count();
        }
        encode_delta(tick, baseline.map(|(_, v)| &**v), &fitted, &mut writer);
        assert!(
            writer.bit_len() <= outcome.bits,
            "the estimate bounds the size: {} > {}",
            writer.bit_len(),
            outcome.bits
        );
        let bytes = writer.finish().to_vec();
        assert!(bytes.len() <= budget_bytes, "snapshot {n}: {} bytes over the budget of {budget_bytes}", bytes.len());
        assert!(!outcome.over);
        largest = largest.max(bytes.len());
        total += bytes.len();
        let got = receiver.apply(tick, baseline.map(|(t, _)| t), &bytes).expect("applies");
        assert_eq!(got, &fitted, "the client holds exactly what the server recorded");
        for (index, (id, true_state)) in truth.entities.iter().enumerate() {
            stale[index] = if fitted.get(*id) == Some(true_state) { 0 } else { stale[index] + 1 };
        }
        if n > 10 {
            worst_stale = worst_stale.max(*stale.iter().max().unwrap());
        }
        baselines.record(tick, Arc::new(fitted));
        // The client acks each snapshot; the ack reaches the server five snapshots later.
        in_flight.push_back(tick);
        if in_flight.len() > 5 {
            baselines.ack(in_flight.pop_front().unwrap());
        }
    }
    let k = 6;
    println!(
        "500 entities, budget {budget_bytes} B: largest snapshot {largest} B, mean {} B (without the budget: mean {} B), every entity refreshed within {} snapshots (bound {k}); entity states rolled back: {rollbacks} of {}",
        total / snapshots as usize,
        unbudgeted / snapshots as usize,
        worst_stale + 1,
        500 * snapshots
    );
    assert!(worst_stale < k, "an entity went {worst_stale} snapshots without an update (bound {k})");
}

#[tokio::test]
async fn a_crowded_view_keeps_every_snapshot_within_the_budget() {
    let budget = 600u32;
    let config = ServerConfig {
        bots: 120,
        map: Arc::new(MapDef::open("crowd", 1200.0, 40)),
        snapshot_budget_bytes: Some(budget),
        replay_dir: None,
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let mut client = TestClient::join(&server, "watcher").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let (mut snapshots, mut largest, mut seen) = (0, 0usize, std::collections::HashSet::new());
    while tokio::time::Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut client.ws)).await;
        let Ok(Some(Ok(message))) = next else { panic!("no message for 2 s after {snapshots} snapshots") };
        let Message::Binary(bytes) = message else { continue };
        if let Ok(ServerMsg::Snapshot(snapshot)) = protocol::decode_server(&bytes) {
            assert!(
                bytes.len() <= budget as usize,
                "snapshot {snapshots} of {} bytes over the budget of {budget}: delta {} B, {} events, leaderboard {}",
                bytes.len(),
                snapshot.delta.len(),
                snapshot.events.len(),
                snapshot.leaderboard.is_some()
            );
            largest = largest.max(bytes.len());
            let view = client.receiver.apply(snapshot.tick, snapshot.baseline, &snapshot.delta).expect("applies");
            seen.extend(view.entities.iter().map(|(id, _)| *id));
            snapshots += 1;
            client.send(&shared::protocol::ClientMsg::Ack { tick: snapshot.tick }).await;
        }
    }
    let (_, _, metrics) = common::http(&server, "GET", "/metrics", None).await;
    println!("{snapshots} snapshots, largest {largest} B, {} entities seen", seen.len());
    assert!(snapshots > 60, "{snapshots}");
    assert!(seen.len() > 160, "every bot and orb eventually arrives: saw {}", seen.len());
    assert!(metrics.contains("arena_snapshots_budget_limited_total "), "{metrics}");
    assert!(!metrics.contains("arena_snapshots_budget_limited_total 0\n"), "the budget was in force: {metrics}");
    server.stop().await;
}
