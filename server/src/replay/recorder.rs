//! Records the match the room is playing. The room hands over operations and tick ends; frames
//! are encoded on the room's thread (cheap, in memory) and written by a dedicated writer thread,
//! so disk latency never reaches the tick. If the writer falls far behind, recording stops with
//! a warning instead of stalling the game.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::format::{FrameWriter, Op, ReplayHeader, TickRecord, file_start};
use crate::sim::world::World;

/// Frames buffered between the room and the writer thread (several minutes of busy ticks).
const CHANNEL_FRAMES: usize = 4096;
/// The writer flushes to the operating system this long after the first frame it has not
/// flushed. With a frame per tenth of a second of match (and the room handing over its last
/// frame when it empties), killing the server loses at most half a second of the match.
const FLUSH_EVERY: Duration = Duration::from_millis(400);

pub struct Recorder {
    ops: Vec<Op>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    pub path: PathBuf,
    hash_every: u32,
    /// Packs each input against the same player's previous one, a tenth of a second of ticks to
    /// a frame.
    frames: FrameWriter,
    /// The last tick [`Recorder::end_tick`] closed.
    last_tick: u32,
}

impl Recorder {
    /// Creates `dir` if needed and starts a new replay file in it, `match-<unix ms>.arenareplay`.
    pub fn create(dir: &Path, header: &ReplayHeader) -> std::io::Result<Recorder> {
        Recorder::create_named(dir, header, "", super::retention::Retention::default())
    }

    /// Like [`Recorder::create`], with the room's code in the name:
    /// `match-<CODE>-<unix ms>.arenareplay`.
    /// A recording in `dir` named after the room; its writer thread first deletes the oldest
    /// replays beyond `retention`.
    pub fn create_named(
        dir: &Path,
        header: &ReplayHeader,
        room: &str,
        retention: super::retention::Retention,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let stamp = header.started_unix_ms;
        let prefix = if room.is_empty() { "match".to_string() } else { format!("match-{room}") };
        let (path, file) = (0..100)
            .find_map(|attempt| {
                let name = if attempt == 0 {
                    format!("{prefix}-{stamp}.arenareplay")
                } else {
                    format!("{prefix}-{stamp}-{attempt}.arenareplay")
                };
                let path = dir.join(name);
                OpenOptions::new().write(true).create_new(true).open(&path).ok().map(|file| (path, file))
            })
            .ok_or_else(|| std::io::Error::other("could not create a new replay file"))?;
        let mut file = BufWriter::new(file);
        file.write_all(&file_start(header))?;
        file.flush()?;
        let (to_writer, from_room) = sync_channel::<Vec<u8>>(CHANNEL_FRAMES);
        let writer_path = path.clone();
        let writer_dir = dir.to_path_buf();
        // Registered before the writer starts, so no other room's retention can take the file.
        let open = super::retention::OpenRecording::new(&path);
        let writer = std::thread::Builder::new().name("replay-writer".into()).spawn(move || {
            let _open = open;
            super::retention::prune(&writer_dir, retention, &writer_path);
            write_frames(file, from_room, &writer_path)
        })?;
        info!(path = %path.display(), "recording replay");
        Ok(Recorder {
            ops: Vec::new(),
            to_writer: Some(to_writer),
            writer: Some(writer),
            path,
            hash_every: header.hash_every,
            frames: FrameWriter::new(header.tick_hz),
            last_tick: 0,
        })
    }

    /// Notes an operation the room just applied to the world.
    pub fn op(&mut self, op: Op) {
        if self.to_writer.is_some() {
            self.ops.push(op);
        }
    }

    /// Closes the tick the world just stepped to: its operations, and a hash when due. The
    /// frame goes to the writer once it spans a tenth of a second.
    pub fn end_tick(&mut self, world: &World) {
        if self.to_writer.is_none() {
            return;
        }
        let tick = world.tick.0;
        self.last_tick = tick;
        let hash_due = tick.is_multiple_of(self.hash_every.max(1));
        if !self.ops.is_empty() || hash_due {
            let record =
                TickRecord { tick, ops: std::mem::take(&mut self.ops), hash: hash_due.then(|| world.state_hash()) };
            self.frames.push(&record);
        }
        if self.frames.due(tick) {
            self.send_frame();
        }
    }

    /// Hands the frame being built to the writer now (the room calls this when it empties and
    /// stops ticking, so its last ticks do not wait in memory for the next player).
    pub fn flush(&mut self) {
        self.send_frame();
    }

    /// Hands the frame being built to the writer.
    fn send_frame(&mut self) {
        let Some(to_writer) = &self.to_writer else { return };
        let mut bytes = Vec::with_capacity(256);
        self.frames.flush(&mut bytes);
        if bytes.is_empty() {
            return;
        }
        match to_writer.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(path = %self.path.display(), "replay writer fell behind; recording stopped (the file plays up to here)");
                self.to_writer = None;
            }
            Err(TrySendError::Disconnected(_)) => {
                warn!(path = %self.path.display(), "replay writer failed; recording stopped");
                self.to_writer = None;
            }
        }
    }

    /// Operations applied after the last tick (the last player's leave, in a room that then
    /// closed) go into a record of their own, for the tick the room would have stepped next.
    fn take_leftover_ops(&mut self) {
        if !self.ops.is_empty() && self.to_writer.is_some() {
            let record = TickRecord { tick: self.last_tick + 1, ops: std::mem::take(&mut self.ops), hash: None };
            self.frames.push(&record);
        }
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) {
        self.take_leftover_ops();
        self.send_frame();
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        info!(path = %self.path.display(), "replay saved");
    }
}

impl Drop for Recorder {
    /// A room that ends without [`Recorder::finish`] (a panic) still hands over its last ticks;
    /// the writer flushes them when the channel closes.
    fn drop(&mut self) {
        self.take_leftover_ops();
        self.send_frame();
    }
}

fn write_frames(mut file: BufWriter<File>, from_room: std::sync::mpsc::Receiver<Vec<u8>>, path: &Path) {
    // When the oldest unflushed frame arrived.
    let mut dirty_since: Option<Instant> = None;
    loop {
        let wait = dirty_since.map_or(Duration::from_secs(3600), |since| FLUSH_EVERY.saturating_sub(since.elapsed()));
        match from_room.recv_timeout(wait) {
            Ok(bytes) => {
                if let Err(error) = file.write_all(&bytes) {
                    warn!(path = %path.display(), %error, "writing the replay failed");
                    return;
                }
                dirty_since.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = file.flush();
                let _ = file.get_ref().sync_all();
                return;
            }
        }
        if dirty_since.is_some_and(|since| since.elapsed() >= FLUSH_EVERY) {
            if let Err(error) = file.flush() {
                warn!(path = %path.display(), %error, "flushing the replay failed");
                return;
            }
            dirty_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testing::Stepper;

    /// Records go out a frame of six ticks at a time, and the last, partial frame is written
    /// whether the recorder is finished or only dropped (a room that panicked), with the
    /// operations applied after the last tick in a record of their own.
    #[test]
    fn every_tick_reaches_the_file_finished_or_dropped() {
        for finish in [true, false] {
            let dir = std::env::temp_dir().join(format!("arena-recorder-{}-{finish}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let mut recorder = Recorder::create(&dir, &super::super::format::test_header()).unwrap();
            let mut stepper = Stepper::new(shared::map::MapDef::open("t", 1000.0, 3), 1);
            for tick in 1..=15u32 {
                stepper.step(1);
                recorder.op(Op::Chat { id: shared::snapshot::NetId(tick), text: format!("line {tick}") });
                recorder.end_tick(&stepper.world);
            }
            // An operation after the last tick (the last player leaving a room that then closes).
            recorder.flush();
            recorder.op(Op::Chat { id: shared::snapshot::NetId(16), text: "bye".into() });
            let path = recorder.path.clone();
            if finish {
                recorder.finish();
            } else {
                drop(recorder);
                // The writer thread flushes when the channel closes; wait for the last record.
                let deadline = Instant::now() + Duration::from_secs(10);
                while super::super::format::read(File::open(&path).unwrap()).unwrap().records.len() < 16
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let bytes = std::fs::read(&path).unwrap();
            let file = super::super::format::parse(&bytes).unwrap();
            let ticks: Vec<u32> = file.records.iter().map(|r| r.tick).collect();
            // Header, then ticks 1–6, 7–12, the last three (flushed), and the leftover.
            assert_eq!(super::super::format::frame_count(&bytes), 5, "finish: {finish}");
            assert_eq!(ticks, (1..=16).collect::<Vec<_>>(), "finish: {finish}");
            assert!(matches!(&file.records[15].ops[..], [Op::Chat { text, .. }] if text == "bye"));
            assert_eq!(file.tail, super::super::format::TailStatus::Clean);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
