//! The snapshot invariant, checked on random histories: whatever the order of world changes,
//! joins, leaves, skipped snapshots, late deliveries and lost or reordered acks, every client
//! reconstructs exactly the view the server meant to send it. Some clients have a byte budget
//! (`--snapshot-budget-bytes`): their deltas stay within it (beyond removals, which always go)
//! and they still reconstruct exactly the view the server recorded for them.

use std::collections::{BTreeMap, VecDeque};

use glam::Vec2;
use proptest::prelude::*;
use server::snapshot::Baselines;
use server::snapshot::budget::{Budget, Focus};
use shared::bits::BitWriter;
use shared::snapshot::{EntityState, NetId, OrbNet, PlayerNet, ProjectileNet, SnapshotReceiver, View, encode_delta};
use shared::tick::Tick;

#[derive(Clone, Debug)]
enum Op {
    Spawn {
        kind: u8,
        a: u16,
        b: u16,
        c: u8,
    },
    Despawn {
        pick: usize,
    },
    Move {
        pick: usize,
        dx: i32,
        dy: i32,
        aim: u8,
    },
    Damage {
        pick: usize,
        hp: u8,
        score: u16,
        flags: u8,
    },
    Join,
    Leave {
        pick: usize,
    },
    /// Advance the tick and offer every client a snapshot; `drops` marks which are skipped.
    Snapshot {
        ticks: u32,
        drops: u32,
    },
    /// Deliver up to `n` in-flight snapshots to one client.
    Deliver {
        pick: usize,
        n: usize,
    },
    /// One pending ack reaches the server (chosen among pending ones: reordering).
    AckArrives {
        pick: usize,
        which: usize,
    },
    /// Drop a client's pending acks (lost).
    LoseAcks {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(kind, a, b, c)| Op::Spawn { kind, a, b, c }),
        1 => any::<usize>().prop_map(|pick| Op::Despawn { pick }),
        5 => (any::<usize>(), prop_oneof![-20i32..20, -3000i32..3000, Just(40_000)], -60i32..60, any::<u8>())
            .prop_map(|(pick, dx, dy, aim)| Op::Move { pick, dx, dy, aim }),
        1 => (any::<usize>(), any::<u8>(), any::<u16>(), 0u8..16).prop_map(|(pick, hp, score, flags)| Op::Damage { pick, hp, score, flags }),
        1 => Just(Op::Join),
        1 => any::<usize>().prop_map(|pick| Op::Leave { pick }),
        4 => (1u32..4, any::<u32>()).prop_map(|(ticks, drops)| Op::Snapshot { ticks, drops }),
        4 => (any::<usize>(), 1usize..6).prop_map(|(pick, n)| Op::Deliver { pick, n }),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(pick, which)| Op::AckArrives { pick, which }),
        1 => any::<usize>().prop_map(|pick| Op::LoseAcks { pick }),
    ]
}

struct Client {
    /// Server side.
    baselines: Baselines,
    /// Interest: this client sees ids where `id % modulus != skip` (changes views over time).
    modulus: u32,
    skip: u32,
    in_flight: VecDeque<(Tick, Option<Tick>, Vec<u8>, View)>,
    /// Client side.
    receiver: SnapshotReceiver,
    pending_acks: Vec<Tick>,
    /// The delta budget in bits, if any, and its priorities.
    budget: Option<usize>,
    priorities: Budget,
}

fn pick<T>(items: &[T], index: usize) -> Option<usize> {
    (!items.is_empty()).then(|| index % items.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn clients_reconstruct_exactly_what_the_server_sent(ops in prop::collection::vec(op(), 1..250)) {
        let mut world: BTreeMap<u32, EntityState> = BTreeMap::new();
        let mut next_id = 1u32;
        let mut clients: Vec<Client> = Vec::new();
        let mut tick = Tick(u32::MAX - 40); // Cross the wrap-around on the way.
        let mut writer = BitWriter::new();
        let mut joins = 0u32;
        for op in ops {
            match op {
                Op::Spawn { kind, a, b, c } => {
                    let state = match kind {
                        0 => EntityState::Player(PlayerNet { x: a, y: b, aim: c, hp: 100, score: 0, flags: 1 }),
                        1 => EntityState::Projectile(ProjectileNet {
                            origin_x: a, origin_y: b, vx: a as i16, vy: b as i16,
                            spawn_tick: Tick(tick.0.wrapping_sub(u32::from(c))), owner: NetId(u32::from(c)),
                        }),
                        _ => EntityState::Orb(OrbNet { x: a, y: b, value: c }),
                    };
                    world.insert(next_id, state);
                    next_id += 1 + u32::from(c % 3); // Gaps in ids, as after removals.
                }
                Op::Despawn { pick: index } => {
                    let ids: Vec<u32> = world.keys().copied().collect();
                    if let Some(i) = pick(&ids, index) { world.remove(&ids[i]); }
                }
                Op::Move { pick: index, dx, dy, aim } => {
                    let ids: Vec<u32> = world.keys().copied().collect();
                    if let Some(i) = pick(&ids, index)
                        && let Some(EntityState::Player(p)) = world.get_mut(&ids[i]) {
                        p.x = (i32::from(p.x) + dx).clamp(0, 65535) as u16;
                        p.y = (i32::from(p.y) + dy).clamp(0, 65535) as u16;
                        p.aim = aim;
                    }
                }
                Op::Damage { pick: index, hp, score, flags } => {
                    let ids: Vec<u32> = world.keys().copied().collect();
                    if let Some(i) = pick(&ids, index)
                        && let Some(EntityState::Player(p)) = world.get_mut(&ids[i]) {
                        p.hp = hp; p.score = score; p.flags = flags;
                    }
                }
                Op::Join => {
                    joins += 1;
                    clients.push(Client {
                        baselines: Baselines::new(),
                        modulus: 2 + joins % 4,
                        skip: joins % 3,
                        in_flight: VecDeque::new(),
                        receiver: SnapshotReceiver::new(),
                        pending_acks: Vec::new(),
                        budget: joins.is_multiple_of(2).then_some(24 + (joins as usize * 97) % 600),
                        priorities: Budget::new(),
                    });
                }
                Op::Leave { pick: index } => {
                    if let Some(i) = pick(&clients, index) { clients.remove(i); }
                }
                Op::Snapshot { ticks, drops } => {
                    tick = tick.plus(ticks);
                    for (index, client) in clients.iter_mut().enumerate() {
                        // Interest shifts with time so entities enter and leave views.
                        let skip = (client.skip + tick.0 / 7) % client.modulus;
                        let view = View {
                            entities: world.iter()
                                .filter(|(id, _)| *id % client.modulus != skip)
                                .map(|(id, state)| (NetId(*id), *state))
                                .collect(),
                        };
                        if drops & (1 << (index % 32)) != 0 {
                            continue; // Outbox full: skipped, not recorded.
                        }
                        let baseline = client.baselines.baseline();
                        let view = match client.budget {
                            Some(bits) => {
                                let focus = Focus { pos: Vec2::new(4000.0, 4000.0), own: NetId(1) };
                                let mut fitted = View::default();
                                let newest = client.baselines.newest().cloned();
                                let outcome = client.priorities.fit(tick, baseline.map(|(_, v)| &**v), newest.as_deref(), &view, focus, bits, &mut fitted);
                                encode_delta(tick, baseline.map(|(_, v)| &**v), &fitted, &mut writer);
                                prop_assert!(writer.bit_len() <= outcome.bits, "estimate {} < actual {}", outcome.bits, writer.bit_len());
                                prop_assert!(outcome.over || writer.bit_len() <= bits, "{} bits over a budget of {bits}", writer.bit_len());
                                fitted
                            }
                            None => view,
                        };
                        encode_delta(tick, baseline.map(|(_, v)| &**v), &view, &mut writer);
                        let bytes = writer.finish().to_vec();
                        client.in_flight.push_back((tick, baseline.map(|(t, _)| t), bytes, view.clone()));
                        client.baselines.record(tick, std::sync::Arc::new(view.clone()));
                    }
                }
                Op::Deliver { pick: index, n } => {
                    if let Some(i) = pick(&clients, index) {
                        let client = &mut clients[i];
                        for _ in 0..n {
                            let Some((snap_tick, baseline, bytes, expected)) = client.in_flight.pop_front() else { break };
                            let got = client.receiver.apply(snap_tick, baseline, &bytes);
                            prop_assert_eq!(got, Ok(&expected));
                            client.pending_acks.push(snap_tick);
                        }
                    }
                }
                Op::AckArrives { pick: index, which } => {
                    if let Some(i) = pick(&clients, index) {
                        let client = &mut clients[i];
                        if let Some(j) = pick(&client.pending_acks, which) {
                            let ack = client.pending_acks.remove(j);
                            client.baselines.ack(ack);
                        }
                    }
                }
                Op::LoseAcks { pick: index } => {
                    if let Some(i) = pick(&clients, index) { clients[i].pending_acks.clear(); }
                }
            }
        }
        // Drain everything still in flight: it must all apply.
        for client in &mut clients {
            while let Some((snap_tick, baseline, bytes, expected)) = client.in_flight.pop_front() {
                prop_assert_eq!(client.receiver.apply(snap_tick, baseline, &bytes), Ok(&expected));
            }
        }
    }
}
