//! Shared setup for Arena's criterion benchmarks (`benches/*.rs`).
//!
//! Scenes are built deterministically so runs are comparable: players walk in scripted
//! directions, some of them firing, on an open map with a given number of orbs.

use std::sync::Arc;

use glam::Vec2;
use server::ServerConfig;
use server::room::{ConnId, Kick, Room, RoomStats, SimInput};
use server::sim::testing::Stepper;
use server::sim::world::PlayerKey;
use shared::map::MapDef;
use shared::protocol::InputCmd;
use shared::tick::Tick;
use tokio::sync::{mpsc, oneshot};

/// The scripted input of player `index` at input number `seq`: walking in a slowly turning
/// direction, aiming, and firing when asked.
fn scripted_input(seq: u32, index: usize, aim_rate: f32, fire: bool) -> InputCmd {
    let heading = seq as f32 * 0.02 + index as f32;
    InputCmd {
        seq,
        ack: Tick::ZERO,
        move_x: heading.cos(),
        move_y: heading.sin(),
        aim: heading * aim_rate,
        fire,
        view: None,
    }
}

/// A world with `players` scripted players (every `fire_every`-th one shooting constantly) on an
/// open `size`×`size` map with `orbs` orbs, warmed up for two seconds so projectile counts are at
/// steady state.
pub struct TickScene {
    pub stepper: Stepper,
    pub players: Vec<PlayerKey>,
    seq: u32,
    firing_every: usize,
}

impl TickScene {
    pub fn new(players: usize, orbs: u16, size: f32, firing_every: usize) -> TickScene {
        let mut stepper = Stepper::new(MapDef::open("bench", size, orbs), 42);
        let keys: Vec<PlayerKey> = (0..players).map(|i| stepper.spawn_player(&format!("p{i}"))).collect();
        // Spread players over the map (the map has one spawn point).
        let columns = (players as f32).sqrt().ceil() as usize;
        for (index, key) in keys.iter().enumerate() {
            let x = (index % columns) as f32 + 0.5;
            let y = (index / columns) as f32 + 0.5;
            stepper.place(*key, Vec2::new(x, y) * (size / columns as f32));
        }
        let mut scene = TickScene { stepper, players: keys, seq: 0, firing_every };
        for _ in 0..120 {
            scene.step();
        }
        scene
    }

    /// Feeds every player one input and steps once.
    pub fn step(&mut self) {
        self.seq += 1;
        for (index, key) in self.players.iter().enumerate() {
            let fire = self.firing_every > 0 && index % self.firing_every == 0;
            self.stepper.world.push_input(*key, scripted_input(self.seq, index, 1.7, fire));
        }
        self.stepper.world.step();
    }

    pub fn projectiles(&self) -> usize {
        self.stepper.world.projectiles.len()
    }
}

/// A room with `clients` connected clients (channels instead of sockets) that ack every
/// snapshot, for timing snapshot building and encoding in isolation.
pub struct SnapshotScene {
    pub room: Room,
    outboxes: Vec<mpsc::Receiver<Vec<u8>>>,
    conns: Vec<ConnId>,
    seq: u32,
    /// Bytes of the last round of snapshots.
    pub last_bytes: usize,
}

impl SnapshotScene {
    pub fn new(clients: usize, bots: u16, orbs: u16, size: f32, interest: bool) -> SnapshotScene {
        SnapshotScene::with_map(clients, bots, MapDef::open("bench", size, orbs), interest)
    }

    pub fn with_map(clients: usize, bots: u16, map: MapDef, interest: bool) -> SnapshotScene {
        let size = map.width;
        let config = ServerConfig {
            map: Arc::new(map),
            max_players: clients.max(1) as u16,
            bots,
            interest,
            ..ServerConfig::default()
        };
        let mut room = Room::new(Arc::new(config), Arc::new(RoomStats::default()));
        let mut outboxes = Vec::new();
        let mut conns = Vec::new();
        for index in 0..clients {
            let (outbox, outbox_rx) = mpsc::channel(1024);
            let (reply, _reply_rx) = oneshot::channel();
            let conn = ConnId(index as u64 + 1);
            room.handle(SimInput::Join {
                conn,
                name: format!("c{index}"),
                resume: None,
                outbox,
                kick: Kick::new(),
                reply,
                spectator: false,
                host_key: None,
                client_id: index as u64 + 1,
                ip: None,
                seat_only: false,
                player: None,
            });
            outboxes.push(outbox_rx);
            conns.push(conn);
        }
        // Scatter the clients' players so their views differ.
        let keys: Vec<_> = room.world.players.keys().collect();
        for (index, key) in keys.into_iter().enumerate() {
            let player = &mut room.world.players[key];
            player.pos =
                Vec2::new((index * 7919 % 97) as f32 / 97.0 * size, (index * 104_729 % 89) as f32 / 89.0 * size)
                    .clamp(Vec2::splat(30.0), Vec2::splat(size - 30.0));
        }
        let mut scene = SnapshotScene { room, outboxes, conns, seq: 0, last_bytes: 0 };
        for _ in 0..30 {
            scene.advance();
            scene.snapshot_and_ack();
        }
        scene
    }

    /// Gives every client's player one input (walking, aiming, every third one firing).
    pub fn feed_inputs(&mut self) {
        self.seq += 1;
        for (index, conn) in self.conns.iter().enumerate() {
            let cmd = scripted_input(self.seq, index, 1.3, index % 3 == 0);
            self.room.handle(SimInput::Input { conn: *conn, cmd, received: tokio::time::Instant::now() });
        }
    }

    /// Feeds inputs and steps the room two ticks: one snapshot interval at 60/30 Hz, without
    /// sending.
    pub fn advance(&mut self) {
        for _ in 0..2 {
            self.feed_inputs();
            self.room.step();
        }
    }

    /// Sends one round of snapshots, drains the outboxes, and acks what each client got.
    pub fn snapshot_and_ack(&mut self) {
        self.room.send_snapshots();
        self.drain_and_ack();
    }

    pub fn drain_and_ack(&mut self) {
        let tick = self.room.world.tick;
        self.last_bytes = 0;
        for (outbox, conn) in self.outboxes.iter_mut().zip(&self.conns) {
            while let Ok(bytes) = outbox.try_recv() {
                self.last_bytes += bytes.len();
            }
            self.room.handle(SimInput::Ack { conn: *conn, tick });
        }
    }
}

/// An open `size`×`size` map with `orbs` orbs and 64 spawn points on an even grid. Players
/// killed in a scene respawn at the point farthest from everyone alive, so the crowd stays as
/// spread out as it started; with [`MapDef::open`]'s single central spawn every death adds to a
/// blob in the middle and a long benchmark measures a different (ever more crowded) scene than a
/// short one.
pub fn spread_map(size: f32, orbs: u16) -> MapDef {
    let mut map = MapDef::open("bench", size, orbs);
    map.spawns = (0..64).map(|i| Vec2::new((i % 8) as f32 + 0.5, (i / 8) as f32 + 0.5) * (size / 8.0)).collect();
    map
}

/// The `q` quantile of a histogram of 1 ms buckets (`counts[ms]`), in ms; `None` when empty.
/// The load generator's and the soak's message gaps.
pub fn ms_quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let target = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (ms, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= target {
            return Some(ms as u64);
        }
    }
    None
}
