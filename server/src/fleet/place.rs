//! Where the lobby places players from: its own memory, or the Redis directory shared by every
//! lobby; and, for a Redis lobby, the last view of the fleet it answers from while Redis does not
//! (placements from it for a while, then none).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::room::RoomCode;
use tracing::{info, warn};

use super::redis::{DirectoryError, RedisDirectory, ServerView};
use super::{Directory, FindError, Placement};

/// How long a built room list is served before it is rebuilt.
pub(super) const LISTING_FRESH: Duration = Duration::from_secs(1);

/// Where the directory lives: this process's memory (one lobby), or Redis (any number).
pub(super) enum Dir {
    Local {
        directory: Mutex<Directory>,
        keys: Mutex<super::ServerKeys>,
    },
    /// `redis` is empty until Redis first answers (a lobby started while it is down retries).
    Redis {
        redis: Arc<std::sync::OnceLock<RedisDirectory>>,
        view: Mutex<View>,
    },
}

/// The Redis directory once connected; unreachable before.
pub(super) fn connected(redis: &std::sync::OnceLock<RedisDirectory>) -> Result<&RedisDirectory, DirectoryError> {
    redis.get().ok_or_else(|| DirectoryError::Unreachable("not connected yet".to_string()))
}

/// A Redis lobby's last view of the fleet, what it answers from while Redis does not.
#[derive(Default)]
pub(super) struct View {
    /// When Redis last answered (`None`: not since the start).
    answered: Option<Instant>,
    /// When Redis first failed to answer since then.
    failing_since: Option<Instant>,
    /// When it was last asked and did not answer.
    tried: Option<Instant>,
    pub(super) rooms: Vec<serde_json::Value>,
    pub(super) servers: Vec<ServerView>,
}

/// How long a Redis lobby places players from its last view while Redis does not answer; after
/// that placements are refused (503) until it answers again.
pub const STALE_PLACEMENTS_FOR: Duration = Duration::from_secs(15);

/// Why a placement leads nowhere.
pub(super) enum Nowhere {
    NoSuchRoom,
    Ambiguous(Vec<String>),
    Unavailable(&'static str),
}

pub(super) const NO_SERVER: &str = "no server can take players right now; try again in a few seconds";
pub(super) const DIRECTORY_DOWN: &str = "the fleet directory is unreachable; try again in a few seconds";

impl Dir {
    /// Whether the view is the directory's present: read in the last second (the sweeper reads
    /// it every second, so however many players poll, Redis is asked about once a second), or
    /// read now.
    pub(super) async fn view_fresh(&self) -> bool {
        let Dir::Redis { view, .. } = self else { return true };
        {
            let view = view.lock().expect("view lock");
            if view.answered.is_some_and(|at| at.elapsed() < LISTING_FRESH) {
                return true;
            }
            // Redis did not answer a moment ago: the last view at once, not another wait.
            if view.failing_since.is_some() && view.tried.is_some_and(|at| at.elapsed() < LISTING_FRESH) {
                return false;
            }
        }
        self.refresh_view().await.is_ok()
    }

    /// A Redis lobby reads the fleet's rooms and servers into its view; an error (kept in the
    /// view's clock) when Redis does not answer.
    pub(super) async fn refresh_view(&self) -> Result<(), DirectoryError> {
        let Dir::Redis { redis, view } = self else { return Ok(()) };
        let read = async {
            let redis = connected(redis)?;
            let rooms = redis.public_rooms(super::LISTED_ROOMS).await?;
            let servers = redis.servers().await?;
            Ok::<_, DirectoryError>((rooms, servers))
        };
        match read.await {
            Ok((rooms, servers)) => {
                let rooms = rooms.iter().filter_map(|json| serde_json::from_str(json).ok()).collect();
                let mut view = view.lock().expect("view lock");
                if view.failing_since.take().is_some() {
                    info!("the fleet directory (Redis) answers again");
                }
                *view = View { answered: Some(Instant::now()), failing_since: None, tried: None, rooms, servers };
                Ok(())
            }
            Err(error) => {
                let mut view = view.lock().expect("view lock");
                view.tried = Some(Instant::now());
                if view.failing_since.is_none() {
                    view.failing_since = Some(Instant::now());
                    warn!(%error, "the fleet directory (Redis) does not answer: the lobby answers from its last view");
                }
                Err(error)
            }
        }
    }

    /// While Redis does not answer: a placement from the last view (not counted anywhere), for
    /// [`STALE_PLACEMENTS_FOR`] after the last answer; then none.
    fn stale_placement(&self, stale_for: Duration, code: Option<RoomCode>, room: bool) -> Result<Placement, Nowhere> {
        let Dir::Redis { view, .. } = self else { return Err(Nowhere::Unavailable(NO_SERVER)) };
        let view = view.lock().expect("view lock");
        if view.answered.is_none_or(|at| at.elapsed() > stale_for) {
            return Err(Nowhere::Unavailable(DIRECTORY_DOWN));
        }
        let url_of =
            |server: &str| view.servers.iter().find(|s| s.server == server && !s.draining).map(|s| s.url.clone());
        if let Some(code) = code {
            let text = code.to_string();
            return view
                .rooms
                .iter()
                .find(|r| r["code"] == text.as_str())
                .and_then(|r| r["server"].as_str())
                .and_then(|server| {
                    Some(Placement { server: server.to_string(), url: url_of(server)?, room: Some(code) })
                })
                // The view holds only the listed rooms: about any other code it cannot say.
                .ok_or(Nowhere::Unavailable(DIRECTORY_DOWN));
        }
        if room {
            let open = view.rooms.iter().find(|r| {
                r["locked"] == false
                    && r["players"].as_u64().unwrap_or(u64::MAX) < r["max_players"].as_u64().unwrap_or(0)
            });
            if let Some(found) = open.and_then(|r| {
                let server = r["server"].as_str()?;
                Some(Placement {
                    server: server.to_string(),
                    url: url_of(server)?,
                    room: RoomCode::parse(r["code"].as_str()?),
                })
            }) {
                return Ok(found);
            }
        }
        view.servers
            .iter()
            .filter(|s| !s.draining && s.free_slots > 0)
            .max_by(|a, b| a.free_slots.cmp(&b.free_slots).then(b.players.cmp(&a.players)))
            .map(|s| Placement { server: s.server.clone(), url: s.url.clone(), room: None })
            .ok_or(Nowhere::Unavailable(NO_SERVER))
    }

    /// The server hosting room `code` (on `on`, when the player picked one), the player counted.
    pub(super) async fn by_code(
        &self,
        stale_for: Duration,
        code: RoomCode,
        on: Option<&str>,
    ) -> Result<Placement, Nowhere> {
        match self {
            Dir::Local { directory, .. } => {
                let mut directory = directory.lock().expect("directory lock");
                let placement = directory.find(code, on).map_err(|error| match error {
                    FindError::NoSuchRoom => Nowhere::NoSuchRoom,
                    FindError::Ambiguous(servers) => Nowhere::Ambiguous(servers),
                })?;
                directory.sent(&placement);
                Ok(placement)
            }
            Dir::Redis { redis, .. } => match async { connected(redis)?.join(code, on).await }.await {
                Ok(found) => found.ok_or(Nowhere::NoSuchRoom),
                Err(DirectoryError::Unreachable(_)) => self.stale_placement(stale_for, Some(code), true),
                Err(error) => {
                    warn!(%error, "join by code");
                    Err(Nowhere::Unavailable(DIRECTORY_DOWN))
                }
            },
        }
    }

    /// The fullest public room with a seat, the seat taken; `None` when there is none.
    pub(super) async fn open_room(&self, stale_for: Duration) -> Result<Option<Placement>, Nowhere> {
        match self {
            Dir::Local { directory, .. } => {
                let mut directory = directory.lock().expect("directory lock");
                let found = directory.quick_play().filter(|placement| placement.room.is_some());
                if let Some(placement) = &found {
                    directory.sent(placement);
                }
                Ok(found)
            }
            Dir::Redis { redis, .. } => match async { connected(redis)?.quick_play().await }.await {
                Ok(found) => Ok(found),
                Err(DirectoryError::Unreachable(_)) => self.stale_placement(stale_for, None, true).map(Some),
                Err(error) => {
                    warn!(%error, "quick play");
                    Err(Nowhere::Unavailable(DIRECTORY_DOWN))
                }
            },
        }
    }

    /// Off Agones, a new room's server: the one with the most free slots and the fewest players,
    /// the slot taken.
    pub(super) async fn least_loaded(&self, stale_for: Duration) -> Result<Placement, Nowhere> {
        match self {
            Dir::Local { directory, .. } => {
                let mut directory = directory.lock().expect("directory lock");
                let placement = directory.least_loaded().ok_or(Nowhere::Unavailable(NO_SERVER))?;
                directory.sent(&placement);
                Ok(placement)
            }
            Dir::Redis { redis, .. } => match async { connected(redis)?.least_loaded().await }.await {
                Ok(found) => found.ok_or(Nowhere::Unavailable(NO_SERVER)),
                Err(DirectoryError::Unreachable(_)) => self.stale_placement(stale_for, None, false),
                Err(error) => {
                    warn!(%error, "least loaded");
                    Err(Nowhere::Unavailable(DIRECTORY_DOWN))
                }
            },
        }
    }

    /// A server the allocator picked: its URL, unless it is unknown or draining.
    pub(super) async fn allocated(&self, name: &str) -> Option<String> {
        let found = match self {
            Dir::Local { directory, .. } => directory
                .lock()
                .expect("directory lock")
                .server(name)
                .map(|e| (e.report.url.clone(), e.report.draining)),
            Dir::Redis { redis, .. } => match connected(redis) {
                Ok(redis) => redis.server(name).await.ok().flatten(),
                Err(_) => None,
            },
        };
        match found {
            None => {
                warn!(server = %name, "allocated a GameServer the lobby has not heard from yet");
                None
            }
            Some((_, true)) => {
                warn!(server = %name, "allocated a GameServer that is draining");
                None
            }
            Some((url, false)) => Some(url),
        }
    }

    /// Counts a player the allocator placed, until that server's next report.
    pub(super) async fn count(&self, placement: &Placement) {
        match self {
            Dir::Local { directory, .. } => directory.lock().expect("directory lock").sent(placement),
            Dir::Redis { redis, .. } => {
                if let Err(error) = async { connected(redis)?.count(placement).await }.await {
                    warn!(%error, "counting an allocated player");
                }
            }
        }
    }
}
