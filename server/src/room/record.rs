//! Recording: the room hands every operation it applies to its [`Recorder`] (see `replay`).

use tracing::warn;

use super::state::{Room, match_seed};
use crate::replay::{self, Op, Recorder};
use crate::sim::world::Rules;
use crate::stats::unix_ms;

impl Room {
    /// Starts recording this match if replays are on and it is not recorded yet.
    pub(super) fn ensure_recording(&mut self) {
        if self.recorder.is_some() {
            return;
        }
        let Some(dir) = self.config.replay_dir.as_ref() else { return };
        let header = replay::ReplayHeader {
            protocol_version: shared::PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            tick_hz: self.config.tick_hz,
            snapshot_hz: self.config.snapshot_hz,
            seed: match_seed(&self.config, self.match_number),
            rules: match self.config.rules {
                Rules::Arena => 0,
                Rules::S1 => 1,
            },
            map: (*self.setup.map).clone(),
            started_unix_ms: unix_ms(),
            hash_every: replay::HASH_EVERY,
            lag_comp_ticks: self.world.config.lag_comp_ticks,
        };
        // A recording must start from the match's first tick: a match already under way (players
        // joined before recording could start) is not recorded.
        if self.world.tick.0 != 0 {
            return;
        }
        match Recorder::create_named(dir, &header, self.setup.code.as_str(), self.config.replay_retention) {
            Ok(mut recorder) => {
                for player in self.world.players.values() {
                    recorder.op(Op::Join { id: player.net_id, name: player.name.clone(), bot: player.bot.is_some() });
                }
                self.rounds.replay = recorder.path.file_name().map(|name| name.to_string_lossy().into_owned());
                self.recorder = Some(recorder);
            }
            Err(error) => {
                warn!(room = %self.setup.code, dir = %dir.display(), %error, "cannot record a replay; playing without one")
            }
        }
    }

    /// Closes the recording (a round's end, a new match). Closing joins the file's writer thread
    /// (a final flush and fsync): off the room's thread when there is a runtime.
    pub(super) fn close_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || recorder.finish())),
                Err(_) => recorder.finish(),
            }
        }
    }

    pub(super) fn record(&mut self, op: Op) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.op(op);
        }
    }

    /// Hands the recording's last ticks to its writer (see [`Recorder::flush`]).
    pub fn flush_recording(&mut self) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush();
        }
    }

    /// Flushes and closes the replay file, if recording.
    pub fn finish_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish();
        }
    }

    /// Where this room's replay is being written.
    pub fn replay_path(&self) -> Option<&std::path::Path> {
        self.recorder.as_ref().map(|r| r.path.as_path())
    }
}
