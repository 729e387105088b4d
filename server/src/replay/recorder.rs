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

use super::format::{InputCodec, Op, ReplayHeader, TickRecord, file_start};
use crate::sim::world::World;

/// Frames buffered between the room and the writer thread (about a minute of busy ticks).
const CHANNEL_FRAMES: usize = 4096;
/// The writer flushes to the operating system at least this often, so killing the server loses
/// at most this much of the match.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

pub struct Recorder {
    ops: Vec<Op>,
    to_writer: Option<SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    pub path: PathBuf,
    hash_every: u32,
    /// Packs each input against the same player's previous one (format 5).
    codec: InputCodec,
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
        let writer = std::thread::Builder::new().name("replay-writer".into()).spawn(move || {
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
            codec: InputCodec::default(),
        })
    }

    /// Notes an operation the room just applied to the world.
    pub fn op(&mut self, op: Op) {
        if self.to_writer.is_some() {
            self.ops.push(op);
        }
    }

    /// Closes the tick the world just stepped to: its operations, and a hash when due.
    pub fn end_tick(&mut self, world: &World) {
        let Some(to_writer) = &self.to_writer else { return };
        let tick = world.tick.0;
        let hash_due = tick.is_multiple_of(self.hash_every.max(1));
        if self.ops.is_empty() && !hash_due {
            return;
        }
        let record =
            TickRecord { tick, ops: std::mem::take(&mut self.ops), hash: hash_due.then(|| world.state_hash()) };
        let mut bytes = Vec::with_capacity(64);
        self.codec.frame(&record, &mut bytes);
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

    /// Flushes and closes the file.
    pub fn finish(mut self) {
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        info!(path = %self.path.display(), "replay saved");
    }
}

fn write_frames(mut file: BufWriter<File>, from_room: std::sync::mpsc::Receiver<Vec<u8>>, path: &Path) {
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        match from_room.recv_timeout(FLUSH_EVERY) {
            Ok(bytes) => {
                if let Err(error) = file.write_all(&bytes) {
                    warn!(path = %path.display(), %error, "writing the replay failed");
                    return;
                }
                dirty = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = file.flush();
                let _ = file.get_ref().sync_all();
                return;
            }
        }
        if dirty && last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(error) = file.flush() {
                warn!(path = %path.display(), %error, "flushing the replay failed");
                return;
            }
            dirty = false;
            last_flush = Instant::now();
        }
    }
}
