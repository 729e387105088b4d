//! Interest management at the cost of what changed, not of what is seen.
//!
//! A player sees every entity in a box around it (`VIEW_HALF_EXTENT`). Cutting that box out of
//! a freshly quantized world and diffing it against the client's baseline entity by entity costs
//! every visible entity, per client, per round, and most of them are orbs, which never move or
//! change. [`InterestScene`] keeps the orbs in a grid that it updates from the world's orb
//! journal (no re-quantizing or re-sorting of the world per round) and remembers the round each
//! orb appeared in and, for a while, the round it went. A client's view is kept as a [`Cut`]: its
//! box, its round and only its players and projectiles, the orbs being implied. The delta
//! between two cuts ([`InterestScene::delta`]) then looks at players and projectiles, at orbs in
//! cells the two boxes do not share, at shared cells only when an orb newer than the baseline is
//! in them, and at orbs gone since the baseline: at what changed.
//!
//! [`InterestScene::materialize`] turns a cut back into a whole [`View`] (for the byte budget,
//! and for a baseline kept whole). Debug builds check every fast delta against `encode_delta` of
//! the two materialized views; a property test checks both against a model of the world.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use glam::Vec2;
use shared::bits::BitWriter;
use shared::map::MapDef;
use shared::quant;
use shared::snapshot::{DeltaWriter, EncodedUpdate, EntityState, NetId, OrbNet, View};
use shared::tick::Tick;

use super::{player_state, projectile_state};
use crate::sim::world::{OrbChange, World};

/// Cell size of the orb and player grids, world units.
const CELL: f32 = 256.0;
/// Float slack when deciding that a whole cell lies inside a box (a position a hair below a
/// cell's edge can still be bucketed in it).
const EDGE_MARGIN: f32 = 1.0;
/// Rounds a cut stays usable as a baseline; orbs gone longer ago are forgotten. A client whose
/// acknowledged cut is older (one that keeps skipping snapshots without ever being slow long
/// enough to be kicked, say) gets a full snapshot.
pub const RETAIN_ROUNDS: u64 = 256;

/// Scene epochs are unique in the process, so a cut can never be read against another scene.
static EPOCHS: AtomicU64 = AtomicU64::new(1);

/// An axis-aligned box; positions on its edges are inside (as in [`Grid::query_box`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Area {
    min: Vec2,
    max: Vec2,
}

impl Area {
    fn contains(&self, pos: Vec2) -> bool {
        pos.x >= self.min.x && pos.y >= self.min.y && pos.x <= self.max.x && pos.y <= self.max.y
    }

    fn is_finite(&self) -> bool {
        self.min.is_finite() && self.max.is_finite()
    }

    fn covers(&self, other: &Area) -> bool {
        other.min.x >= self.min.x && other.min.y >= self.min.y && other.max.x <= self.max.x && other.max.y <= self.max.y
    }

    fn overlaps(&self, other: &Area) -> bool {
        other.min.x <= self.max.x && other.min.y <= self.max.y && other.max.x >= self.min.x && other.max.y >= self.min.y
    }
}

/// One client's view at one round, without its orbs: those are every orb the scene had in the
/// box at that round.
#[derive(Clone, Debug)]
pub struct Cut {
    epoch: u64,
    round: u64,
    area: Area,
    /// Every player and projectile of its round, sorted by id (shared by the round's cuts).
    everyone: Arc<[(NetId, EntityState)]>,
    /// Indices into `everyone` of those in the box, increasing.
    seen: Vec<u32>,
}

impl Cut {
    /// Players and projectiles in the view.
    pub fn dynamic_len(&self) -> usize {
        self.seen.len()
    }

    fn dynamic(&self) -> impl Iterator<Item = &(NetId, EntityState)> + '_ {
        self.seen.iter().map(|&index| &self.everyone[index as usize])
    }
}

/// Items bucketed by grid cell in one array (rebuilt whole each round: a counting sort), so a
/// box's items are one contiguous run per row of cells.
#[derive(Debug, Default)]
struct Buckets {
    /// `starts[cell]..starts[cell + 1]` indexes `items`.
    starts: Vec<u32>,
    items: Vec<(Vec2, u32)>,
}

/// One entry of a delta between two cuts, small (the states stay where they are).
#[derive(Clone, Copy, Debug)]
pub enum Entry {
    /// A player or projectile in both: its indices in the base's and the current round's lists.
    Update(u32, u32),
    /// The same, from the previous round's state: its index in the current round's list, whose
    /// update is encoded once for every client.
    UpdateFromPrevious(u32),
    /// A player or projectile new to the view: its index in the current round's list.
    Create(u32),
    CreateOrb(OrbNet),
    Remove,
}

/// A view as a client's [`super::Baselines`] keep it: whole (shared views, and views the byte
/// budget cut down) or as a [`Cut`].
#[derive(Clone, Debug)]
pub enum Sent {
    View(Arc<View>),
    Cut(Arc<Cut>),
}

#[derive(Clone, Copy, Debug)]
struct OrbEntry {
    id: NetId,
    state: OrbNet,
    pos: Vec2,
    /// Round it first belonged to the scene.
    born: u64,
}

/// The orbs of one grid cell, twice: sorted by x and by y (with the sort keys apart, so the
/// binary search that finds the few near a box's edge reads a cache line or two).
#[derive(Clone, Debug, Default)]
struct Cell {
    xs: Vec<f32>,
    by_x: Vec<OrbEntry>,
    ys: Vec<f32>,
    by_y: Vec<OrbEntry>,
}

impl Cell {
    fn clear(&mut self) {
        self.xs.clear();
        self.by_x.clear();
        self.ys.clear();
        self.by_y.clear();
    }

    fn contains(&self, id: NetId, pos: Vec2) -> bool {
        let (start, end) = Cell::span(&self.xs, (pos.x, pos.x));
        self.by_x[start..end].iter().any(|orb| orb.id == id)
    }

    fn insert(&mut self, orb: OrbEntry) {
        let at = self.xs.partition_point(|&x| x < orb.pos.x);
        self.xs.insert(at, orb.pos.x);
        self.by_x.insert(at, orb);
        let at = self.ys.partition_point(|&y| y < orb.pos.y);
        self.ys.insert(at, orb.pos.y);
        self.by_y.insert(at, orb);
    }

    /// Appends without keeping the orders ([`Cell::sort`] restores them).
    fn push(&mut self, orb: OrbEntry) {
        self.by_x.push(orb);
        self.by_y.push(orb);
    }

    fn sort(&mut self) {
        self.by_x.sort_unstable_by(|a, b| a.pos.x.total_cmp(&b.pos.x));
        self.by_y.sort_unstable_by(|a, b| a.pos.y.total_cmp(&b.pos.y));
        self.xs.clear();
        self.xs.extend(self.by_x.iter().map(|orb| orb.pos.x));
        self.ys.clear();
        self.ys.extend(self.by_y.iter().map(|orb| orb.pos.y));
    }

    fn remove(&mut self, id: NetId, pos: Vec2) -> Option<OrbEntry> {
        let (start, end) = Cell::span(&self.xs, (pos.x, pos.x));
        let at = start + self.by_x[start..end].iter().position(|orb| orb.id == id)?;
        self.xs.remove(at);
        let orb = self.by_x.remove(at);
        let (start, end) = Cell::span(&self.ys, (orb.pos.y, orb.pos.y));
        let at = start + self.by_y[start..end].iter().position(|other| other.id == id).expect("kept in both orders");
        self.ys.remove(at);
        self.by_y.remove(at);
        Some(orb)
    }

    /// The index range of `keys` (sorted) with `lo <= key <= hi`.
    fn span(keys: &[f32], (lo, hi): (f32, f32)) -> (usize, usize) {
        let start = keys.partition_point(|&key| key < lo);
        (start, start + keys[start..].partition_point(|&key| key <= hi))
    }
}

/// Where two closed intervals differ: the ranges between their low ends and between their high
/// ends (closed, so a superset), merged into one when they meet. Every point in exactly one of
/// the intervals is in one of them.
fn edges(a: (f32, f32), b: (f32, f32)) -> [(f32, f32); 2] {
    let low = (a.0.min(b.0), a.0.max(b.0));
    let high = (a.1.min(b.1), a.1.max(b.1));
    if low.1 >= high.0 { [(low.0, high.1), (f32::NAN, f32::NAN)] } else { [low, high] }
}

fn within(ranges: &[(f32, f32); 2], v: f32) -> bool {
    ranges.iter().any(|&(lo, hi)| v >= lo && v <= hi)
}

#[derive(Clone, Copy, Debug)]
struct Gone {
    orb: OrbEntry,
    /// First round it no longer belonged to the scene.
    removed: u64,
}

/// The world as interest-managed clients see it, updated each snapshot round.
pub struct InterestScene {
    epoch: u64,
    round: u64,
    pub tick: Tick,
    columns: usize,
    rows: usize,
    cells: Vec<Cell>,
    /// Per cell, the newest `born` among its orbs (apart: the cells both boxes cover read only
    /// this).
    newest_born: Vec<u64>,
    /// Orbs that went in the last [`RETAIN_ROUNDS`] rounds, in order of going.
    gone: VecDeque<Gone>,
    /// Players and projectiles this round, sorted by id, and where they are (by index).
    dynamic: Arc<[(NetId, EntityState)]>,
    /// The previous round's, and for each of this round's (by index) what changed since it:
    /// most clients acknowledged the previous round, so one encoding serves them all.
    previous: Arc<[(NetId, EntityState)]>,
    since_previous: Vec<Since>,
    dynamic_buckets: Buckets,
    // Scratch, reused.
    changes: Vec<OrbChange>,
    marks: Vec<u64>,
    staging: Vec<(NetId, EntityState, Vec2)>,
    scratch: BitWriter,
}

/// A player or projectile compared with the previous round.
#[derive(Clone, Copy, Debug)]
enum Since {
    New,
    Same,
    Changed(EncodedUpdate),
}

impl InterestScene {
    pub fn new(map: &MapDef) -> InterestScene {
        let columns = ((map.width / CELL).ceil() as usize).max(1);
        let rows = ((map.height / CELL).ceil() as usize).max(1);
        InterestScene {
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed),
            round: 0,
            tick: Tick::ZERO,
            columns,
            rows,
            cells: vec![Cell::default(); columns * rows],
            newest_born: vec![0; columns * rows],
            gone: VecDeque::new(),
            dynamic: Arc::new([]),
            previous: Arc::new([]),
            since_previous: Vec::new(),
            dynamic_buckets: Buckets { starts: vec![0; columns * rows + 1], items: Vec::new() },
            staging: Vec::new(),
            scratch: BitWriter::new(),
            changes: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Brings the scene to the world's present: one snapshot round. The world must journal its
    /// orbs ([`World::journal_orbs`]); without the journal every orb is re-read (a new epoch:
    /// cuts taken before are no longer baselines). `flash_ticks` as in [`super::Scene::rebuild`].
    pub fn sync(&mut self, world: &mut World, flash_ticks: u32) {
        self.begin_round(world.tick);
        let mut changes = std::mem::take(&mut self.changes);
        if world.take_orb_changes(&mut changes) {
            self.apply_orb_changes(&changes);
        } else {
            self.reset_orbs(world.orbs.values().map(|orb| (orb.net_id, orb.value, orb.pos)));
        }
        self.changes = changes;
        let tick = world.tick;
        self.set_dynamic(
            world
                .players
                .values()
                .map(|player| (player.net_id, player_state(player, tick, flash_ticks), player.pos))
                .chain(world.projectiles.values().map(|p| (p.net_id, projectile_state(p), p.pos))),
        );
    }

    /// Starts a round at `tick` (the parts of [`InterestScene::sync`], public for tests).
    pub fn begin_round(&mut self, tick: Tick) {
        self.round += 1;
        self.tick = tick;
        while self.gone.front().is_some_and(|gone| gone.removed + RETAIN_ROUNDS < self.round) {
            self.gone.pop_front();
        }
    }

    /// Replaces every orb (a new epoch).
    pub fn reset_orbs(&mut self, orbs: impl Iterator<Item = (NetId, u8, Vec2)>) {
        self.epoch = EPOCHS.fetch_add(1, Ordering::Relaxed);
        self.gone.clear();
        for cell in &mut self.cells {
            cell.clear();
        }
        self.newest_born.fill(0);
        for (id, value, pos) in orbs {
            self.insert_orb(id, value, pos);
        }
        for cell in &mut self.cells {
            cell.sort();
        }
    }

    /// Applies the orb spawns and removals of one round, in order.
    pub fn apply_orb_changes(&mut self, changes: &[OrbChange]) {
        for change in changes {
            match *change {
                OrbChange::Spawned { net_id, pos, value } => {
                    let index = self.cell_index(pos);
                    let cell = &mut self.cells[index];
                    self.newest_born[index] = self.round;
                    if cell.contains(net_id, pos) {
                        continue; // Already known (cannot happen with a consistent journal).
                    }
                    let (x, y) = quant::vec_to_q(pos);
                    cell.insert(OrbEntry { id: net_id, state: OrbNet { x, y, value }, pos, born: self.round });
                }
                OrbChange::Removed { net_id, pos } => {
                    let index = self.cell_index(pos);
                    let cell = &mut self.cells[index];
                    let Some(orb) = cell.remove(net_id, pos) else { continue };
                    // One that came and went within a round was never in any view.
                    if orb.born != self.round {
                        self.gone.push_back(Gone { orb, removed: self.round });
                    }
                }
            }
        }
    }

    /// Sets this round's players and projectiles.
    pub fn set_dynamic(&mut self, entities: impl Iterator<Item = (NetId, EntityState, Vec2)>) {
        self.staging.clear();
        self.staging.extend(entities);
        self.staging.sort_unstable_by_key(|(id, _, _)| *id);
        let current: Arc<[(NetId, EntityState)]> = self.staging.iter().map(|(id, state, _)| (*id, *state)).collect();
        self.previous = std::mem::replace(&mut self.dynamic, current);
        self.since_previous.clear();
        let mut earlier = self.previous.iter().peekable();
        for (id, state) in self.dynamic.iter() {
            while earlier.next_if(|(old_id, _)| old_id < id).is_some() {}
            let since = match earlier.next_if(|(old_id, _)| old_id == id) {
                None => Since::New,
                Some((_, old)) if old == state => Since::Same,
                Some((_, old)) => Since::Changed(EncodedUpdate::new(self.tick, old, state, &mut self.scratch)),
            };
            self.since_previous.push(since);
        }
        // Counting sort by cell; within a cell items stay in id order.
        let buckets = &mut self.dynamic_buckets;
        buckets.starts.clear();
        buckets.starts.resize(self.cells.len() + 1, 0);
        let (columns, rows) = (self.columns, self.rows);
        let cell_index = |pos: Vec2| {
            let column = ((pos.x / CELL).max(0.0) as usize).min(columns - 1);
            let row = ((pos.y / CELL).max(0.0) as usize).min(rows - 1);
            row * columns + column
        };
        for (_, _, pos) in &self.staging {
            buckets.starts[cell_index(*pos) + 1] += 1;
        }
        for cell in 0..self.cells.len() {
            buckets.starts[cell + 1] += buckets.starts[cell];
        }
        buckets.items.clear();
        buckets.items.resize(self.staging.len(), (Vec2::ZERO, 0));
        let mut next = buckets.starts.clone();
        for (index, (_, _, pos)) in self.staging.iter().enumerate() {
            let cell = cell_index(*pos);
            buckets.items[next[cell] as usize] = (*pos, index as u32);
            next[cell] += 1;
        }
    }

    fn insert_orb(&mut self, id: NetId, value: u8, pos: Vec2) {
        let (x, y) = quant::vec_to_q(pos);
        let round = self.round;
        let index = self.cell_index(pos);
        self.newest_born[index] = round;
        let cell = &mut self.cells[index];
        cell.push(OrbEntry { id, state: OrbNet { x, y, value }, pos, born: round });
    }

    fn cell_of(&self, pos: Vec2) -> (usize, usize) {
        let column = ((pos.x / CELL).max(0.0) as usize).min(self.columns - 1);
        let row = ((pos.y / CELL).max(0.0) as usize).min(self.rows - 1);
        (column, row)
    }

    fn cell_index(&self, pos: Vec2) -> usize {
        let (column, row) = self.cell_of(pos);
        row * self.columns + column
    }

    /// Where a cell's orbs can lie, with float slack; edge cells also hold whatever lies past
    /// the map's edge.
    fn cell_bounds(&self, column: usize, row: usize) -> Area {
        let mut min = Vec2::new(column as f32 * CELL, row as f32 * CELL) - EDGE_MARGIN;
        let mut max = Vec2::new((column + 1) as f32 * CELL, (row + 1) as f32 * CELL) + EDGE_MARGIN;
        if column == 0 {
            min.x = f32::NEG_INFINITY;
        }
        if row == 0 {
            min.y = f32::NEG_INFINITY;
        }
        if column + 1 == self.columns {
            max.x = f32::INFINITY;
        }
        if row + 1 == self.rows {
            max.y = f32::INFINITY;
        }
        Area { min, max }
    }

    /// Calls `visit` with the index and bounds of every cell that may hold orbs inside `area`.
    fn cells_under(&self, area: &Area, mut visit: impl FnMut(usize, &Area)) {
        let (first_column, first_row) = self.cell_of(area.min);
        let (last_column, last_row) = self.cell_of(area.max);
        for row in first_row..=last_row {
            for column in first_column..=last_column {
                visit(row * self.columns + column, &self.cell_bounds(column, row));
            }
        }
    }

    /// The view within `half_extent` of `center` this round.
    pub fn cut(&mut self, center: Vec2, half_extent: Vec2) -> Cut {
        let area = Area { min: center - half_extent, max: center + half_extent };
        // Marking a bitset and scanning it yields id order without sorting (crowds are large).
        self.marks.clear();
        self.marks.resize(self.dynamic.len().div_ceil(64), 0);
        let mut count = 0;
        let (first_column, first_row) = self.cell_of(area.min);
        let (last_column, last_row) = self.cell_of(area.max);
        let buckets = &self.dynamic_buckets;
        for row in first_row..=last_row {
            let start = buckets.starts[row * self.columns + first_column] as usize;
            let end = buckets.starts[row * self.columns + last_column + 1] as usize;
            for &(pos, index) in &buckets.items[start..end] {
                if area.contains(pos) {
                    self.marks[index as usize / 64] |= 1 << (index % 64);
                    count += 1;
                }
            }
        }
        let mut seen = Vec::with_capacity(count);
        for (word_index, &word) in self.marks.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                seen.push((word_index * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        Cut { epoch: self.epoch, round: self.round, area, everyone: self.dynamic.clone(), seen }
    }

    /// Whether `cut` can still be read (same epoch, recent enough).
    pub fn usable(&self, cut: &Cut) -> bool {
        cut.epoch == self.epoch && cut.round <= self.round && self.round - cut.round <= RETAIN_ROUNDS
    }

    /// Encodes the delta from `base` to `current` (a cut of this round) into `writer`: the bits
    /// `encode_delta` writes for the two whole views. False (nothing written) when `base` is no
    /// longer usable. `entries` is scratch.
    pub fn encode(&self, base: &Cut, current: &Cut, entries: &mut Vec<(NetId, Entry)>, writer: &mut BitWriter) -> bool {
        if !self.delta(base, current, entries) {
            return false;
        }
        let mut delta = DeltaWriter::start(self.tick, writer);
        for &(id, entry) in entries.iter() {
            match entry {
                Entry::Update(old, new) => {
                    delta.update(id, &base.everyone[old as usize].1, &current.everyone[new as usize].1)
                }
                Entry::UpdateFromPrevious(new) => match &self.since_previous[new as usize] {
                    Since::Changed(update) => delta.update_encoded(id, update),
                    since => unreachable!("listed as changed since the previous round: {since:?}"),
                },
                Entry::Create(new) => delta.create(id, &current.everyone[new as usize].1),
                Entry::CreateOrb(orb) => delta.create(id, &EntityState::Orb(orb)),
                Entry::Remove => delta.remove(id),
            }
        }
        delta.finish();
        true
    }

    /// The entries of the delta from `base` to `current`, in id order, into `out`; false when
    /// `base` is no longer usable.
    fn delta(&self, base: &Cut, current: &Cut, out: &mut Vec<(NetId, Entry)>) -> bool {
        if !self.usable(base) || current.epoch != self.epoch || current.round != self.round {
            return false;
        }
        if !(base.area.is_finite() && current.area.is_finite()) {
            return false; // Cannot happen (positions are validated); the slow path copes.
        }
        out.clear();
        // Players and projectiles: both lists are whole.
        let (old, new) = (&base.seen, &current.seen);
        let (old_everyone, new_everyone) = (&base.everyone, &current.everyone);
        // A base of the previous round (the usual case): what changed is already known.
        let from_previous = Arc::ptr_eq(old_everyone, &self.previous) && Arc::ptr_eq(new_everyone, &self.dynamic);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let old_entry = old.get(i).map(|&index| (index, &old_everyone[index as usize]));
            let new_entry = new.get(j).map(|&index| (index, &new_everyone[index as usize]));
            match (old_entry, new_entry) {
                (Some((old_index, (old_id, old_state))), Some((new_index, (new_id, new_state))))
                    if old_id == new_id =>
                {
                    if from_previous {
                        if let Since::Changed(_) = self.since_previous[new_index as usize] {
                            out.push((*new_id, Entry::UpdateFromPrevious(new_index)));
                        }
                    } else if old_state != new_state {
                        out.push((*new_id, Entry::Update(old_index, new_index)));
                    }
                    i += 1;
                    j += 1;
                }
                (Some((_, (old_id, _))), new_entry) if new_entry.is_none_or(|(_, (new_id, _))| old_id < new_id) => {
                    out.push((*old_id, Entry::Remove));
                    i += 1;
                }
                (_, Some((new_index, (new_id, _)))) => {
                    out.push((*new_id, Entry::Create(new_index)));
                    j += 1;
                }
                (Some(_), None) | (None, None) => unreachable!("handled above / loop condition"),
            }
        }
        // Orbs that exist now. One the base held (born by then) changed membership only if it
        // lies where the boxes' x or y extents differ: found by binary search in the cells the
        // boxes' edges cross. One born since then is new if it is in the box.
        let (was_area, is_area) = (base.area, current.area);
        let union = Area { min: was_area.min.min(is_area.min), max: was_area.max.max(is_area.max) };
        let x_edges = edges((was_area.min.x, was_area.max.x), (is_area.min.x, is_area.max.x));
        let y_edges = edges((was_area.min.y, was_area.max.y), (is_area.min.y, is_area.max.y));
        let players_and_projectiles = out.len();
        let mut examine = |orb: &OrbEntry| {
            let was = orb.born <= base.round && was_area.contains(orb.pos);
            let is = is_area.contains(orb.pos);
            if is && !was {
                out.push((orb.id, Entry::CreateOrb(orb.state)));
            } else if was && !is {
                out.push((orb.id, Entry::Remove));
            }
        };
        self.cells_under(&union, |index, bounds| {
            if !was_area.overlaps(bounds) && !is_area.overlaps(bounds) {
                return;
            }
            let fresh = self.newest_born[index] > base.round;
            let cell = &self.cells[index];
            if was_area.covers(bounds) && is_area.covers(bounds) {
                if fresh {
                    cell.by_x.iter().filter(|orb| orb.born > base.round).for_each(&mut examine);
                }
                return;
            }
            if fresh {
                cell.by_x.iter().for_each(&mut examine);
                return;
            }
            // Only the edges that cross this cell (a NaN range crosses none).
            for range in x_edges {
                if range.1 >= bounds.min.x && range.0 <= bounds.max.x {
                    let (start, end) = Cell::span(&cell.xs, range);
                    cell.by_x[start..end].iter().for_each(&mut examine);
                }
            }
            for range in y_edges {
                if range.1 >= bounds.min.y && range.0 <= bounds.max.y {
                    let (start, end) = Cell::span(&cell.ys, range);
                    cell.by_y[start..end].iter().filter(|orb| !within(&x_edges, orb.pos.x)).for_each(&mut examine);
                }
            }
        });
        // Orbs gone since the base that it held.
        for gone in self.gone.iter().rev().take_while(|gone| gone.removed > base.round) {
            if gone.orb.born <= base.round && was_area.contains(gone.orb.pos) {
                out.push((gone.orb.id, Entry::Remove));
            }
        }
        // Two sorted runs (a stable sort merges them in one pass).
        out[players_and_projectiles..].sort_unstable_by_key(|(id, _)| *id);
        out.sort_by_key(|(id, _)| *id);
        true
    }

    /// The whole view `cut` stands for, into `out` (sorted by id); false (and `out` untouched)
    /// when it is no longer usable.
    pub fn materialize(&self, cut: &Cut, out: &mut View) -> bool {
        if !self.usable(cut) {
            return false;
        }
        out.entities.clear();
        self.cells_under(&cut.area, |index, _| {
            for orb in &self.cells[index].by_x {
                if orb.born <= cut.round && cut.area.contains(orb.pos) {
                    out.entities.push((orb.id, EntityState::Orb(orb.state)));
                }
            }
        });
        for gone in self.gone.iter().rev().take_while(|gone| gone.removed > cut.round) {
            if gone.orb.born <= cut.round && cut.area.contains(gone.orb.pos) {
                out.entities.push((gone.orb.id, EntityState::Orb(gone.orb.state)));
            }
        }
        out.entities.extend(cut.dynamic());
        out.entities.sort_unstable_by_key(|(id, _)| *id);
        true
    }

    /// The whole view a kept one stands for (`None`: a cut no longer usable).
    pub fn whole(&self, sent: &Sent) -> Option<Arc<View>> {
        match sent {
            Sent::View(view) => Some(view.clone()),
            Sent::Cut(cut) => {
                let mut view = View::default();
                self.materialize(cut, &mut view).then(|| Arc::new(view))
            }
        }
    }

    /// Orbs in the scene now.
    pub fn orb_count(&self) -> usize {
        self.cells.iter().map(|cell| cell.by_x.len()).sum()
    }
}

#[cfg(test)]
#[path = "interest_tests.rs"]
mod tests;
