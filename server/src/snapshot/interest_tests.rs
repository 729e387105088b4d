//! `InterestScene`'s tests: a property test of deltas between cuts against `encode_delta` of the
//! whole views, over a model of the world.

use std::collections::BTreeMap;

use proptest::prelude::*;
use shared::bits::BitWriter;
use shared::snapshot::{PlayerNet, encode_delta};

use super::*;

const SIZE: f32 = 2048.0;

/// A coordinate: often on a cell edge, sometimes past the map's edge.
fn coordinate() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (-200i32..4300).prop_map(|v| v as f32 * 0.5),
        // A coarse lattice: orbs often sit exactly on boxes' edges.
        3 => (-4i32..80).prop_map(|v| v as f32 * 32.0),
        1 => (0u32..9).prop_map(|k| k as f32 * CELL),
    ]
}

fn position() -> impl Strategy<Value = Vec2> {
    (coordinate(), coordinate()).prop_map(|(x, y)| Vec2::new(x, y))
}

#[derive(Clone, Debug)]
struct Round {
    spawns: Vec<Vec2>,
    removals: Vec<prop::sample::Index>,
    /// The journal overflowed: the scene re-reads every orb.
    lost: bool,
    /// Players and projectiles this round (ids stay for the ones kept).
    movers: Vec<Vec2>,
    /// Each client's box: centre and half extent.
    boxes: [(Vec2, Vec2); 3],
}

fn client_box() -> impl Strategy<Value = (Vec2, Vec2)> {
    let half = prop_oneof![
        Just(Vec2::new(1100.0, 750.0)),
        Just(Vec2::splat(CELL)),
        (1u32..1200, 1u32..1200).prop_map(|(x, y)| Vec2::new(x as f32 * 0.5, y as f32 * 0.5)),
        (1u32..40, 1u32..40).prop_map(|(x, y)| Vec2::new(x as f32 * 32.0, y as f32 * 32.0)),
    ];
    (position(), half)
}

fn round() -> impl Strategy<Value = Round> {
    (
        prop::collection::vec(position(), 0..5),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop::bool::weighted(0.03),
        prop::collection::vec(position(), 0..8),
        [client_box(), client_box(), client_box()],
    )
        .prop_map(|(spawns, removals, lost, movers, boxes)| Round { spawns, removals, lost, movers, boxes })
}

fn encoded(tick: Tick, base: Option<&View>, view: &View) -> Vec<u8> {
    let mut writer = BitWriter::new();
    encode_delta(tick, base, view, &mut writer);
    writer.finish().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Against a model of the world: every cut materializes to exactly the entities in its
    /// box at its round, and every fast delta is byte for byte `encode_delta` of the two
    /// whole views, whenever the base is still usable (and only then).
    #[test]
    fn cuts_and_deltas_match_the_world(rounds in prop::collection::vec(round(), 1..40)) {
        let mut scene = InterestScene::new(&MapDef::open("t", SIZE, 0));
        let mut orbs: BTreeMap<NetId, (EntityState, Vec2)> = BTreeMap::new();
        let mut next_id = 1u32;
        let mut movers: Vec<NetId> = Vec::new();
        let mut previous_movers: Vec<(NetId, EntityState, Vec2)> = Vec::new();
        // Per client: (cut, its whole view, the round of the last epoch change before it).
        let mut history: [Vec<(Cut, View, usize)>; 3] = Default::default();
        let mut epoch_round = 0;
        let mut changes = Vec::new();
        let mut writer = BitWriter::new();
        for (number, round) in rounds.iter().enumerate() {
            let tick = Tick(number as u32 * 2);
            let mut journal = Vec::new();
            for pos in &round.spawns {
                let id = NetId(next_id);
                next_id += 1;
                let value = (id.0 % 4) as u8;
                let (x, y) = quant::vec_to_q(*pos);
                orbs.insert(id, (EntityState::Orb(OrbNet { x, y, value }), *pos));
                journal.push(OrbChange::Spawned { net_id: id, pos: *pos, value });
            }
            for pick in &round.removals {
                if orbs.is_empty() {
                    break;
                }
                let id = *orbs.keys().nth(pick.index(orbs.len())).expect("in range");
                let (_, pos) = orbs.remove(&id).expect("present");
                journal.push(OrbChange::Removed { net_id: id, pos });
            }
            // Movers: keep as many as this round lists (new ones get new ids).
            movers.truncate(round.movers.len());
            while movers.len() < round.movers.len() {
                movers.push(NetId(next_id));
                next_id += 1;
            }
            // Every third mover (a different third each round) stands still.
            let dynamic: Vec<(NetId, EntityState, Vec2)> = movers
                .iter()
                .zip(&round.movers)
                .enumerate()
                .map(|(k, (id, pos))| {
                    let kept = previous_movers.iter().find(|(old_id, _, _)| old_id == id);
                    match kept {
                        Some(&entry) if (k + number) % 3 == 0 => entry,
                        _ => {
                            let (x, y) = quant::vec_to_q(*pos);
                            let aim = (id.0 + number as u32) as u8;
                            (*id, EntityState::Player(PlayerNet { x, y, aim, ..PlayerNet::default() }), *pos)
                        }
                    }
                })
                .collect();
            previous_movers = dynamic.clone();
            scene.begin_round(tick);
            if round.lost || number == 0 {
                scene.reset_orbs(orbs.iter().map(|(id, (state, pos))| {
                    let EntityState::Orb(orb) = state else { unreachable!("orbs only") };
                    (*id, orb.value, *pos)
                }));
                epoch_round = number;
            } else {
                scene.apply_orb_changes(&journal);
            }
            scene.set_dynamic(dynamic.iter().copied());
            for (client, (center, half)) in round.boxes.iter().enumerate() {
                let cut = scene.cut(*center, *half);
                let area = Area { min: *center - *half, max: *center + *half };
                let mut truth = View::default();
                for (id, (state, pos)) in &orbs {
                    if area.contains(*pos) {
                        truth.entities.push((*id, *state));
                    }
                }
                for (id, state, pos) in &dynamic {
                    if area.contains(*pos) {
                        truth.entities.push((*id, *state));
                    }
                }
                truth.entities.sort_unstable_by_key(|(id, _)| *id);
                let mut whole = View::default();
                prop_assert!(scene.materialize(&cut, &mut whole));
                prop_assert_eq!(&whole, &truth, "round {}: client {} box {:?}", number, client, area);
                for (base, base_view, base_epoch) in &history[client] {
                    // Older cuts too: their orbs are rebuilt from what went since.
                    let usable = *base_epoch == epoch_round;
                    prop_assert_eq!(scene.encode(base, &cut, &mut changes, &mut writer), usable);
                    let mut old = View::default();
                    prop_assert_eq!(scene.materialize(base, &mut old), usable);
                    if usable {
                        prop_assert_eq!(&old, base_view, "round {}: an old cut changed", number);
                        prop_assert_eq!(
                            writer.finish(),
                            &encoded(tick, Some(base_view), &truth)[..],
                            "round {}: client {} from round {}", number, client, base.round
                        );
                    }
                }
                history[client].push((cut, truth, epoch_round));
            }
        }
    }
}

#[test]
fn cuts_older_than_the_retention_are_not_baselines() {
    let mut scene = InterestScene::new(&MapDef::open("t", SIZE, 0));
    scene.begin_round(Tick(0));
    scene.reset_orbs([(NetId(1), 1, Vec2::splat(100.0))].into_iter());
    let old = scene.cut(Vec2::splat(100.0), Vec2::splat(50.0));
    for round in 1..=RETAIN_ROUNDS {
        scene.begin_round(Tick(round as u32));
        scene.apply_orb_changes(&[]);
    }
    let now = scene.cut(Vec2::splat(100.0), Vec2::splat(50.0));
    let mut changes = Vec::new();
    let mut writer = BitWriter::new();
    assert!(scene.encode(&old, &now, &mut changes, &mut writer), "exactly {RETAIN_ROUNDS} rounds old is still usable");
    assert!(changes.is_empty(), "nothing changed: {changes:?}");
    scene.begin_round(Tick(9999));
    let now = scene.cut(Vec2::splat(100.0), Vec2::splat(50.0));
    assert!(!scene.encode(&old, &now, &mut changes, &mut writer));
    assert!(!scene.materialize(&old, &mut View::default()));
    // Another scene's cut is never read.
    let other = InterestScene::new(&MapDef::open("t", SIZE, 0));
    assert!(!other.usable(&now));
}
