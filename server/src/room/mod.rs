//! Rooms: many matches in one server. Each live room is its own task that owns its `World`
//! ([`state`], its jobs in the files beside it, run by [`task`]); a replay being watched is a room of spectators only ([`theater`]); the
//! [`registry`] creates rooms, maps codes to their handles and lists them, and is never on a
//! tick's path.

pub mod host;
pub mod input;
pub mod operate;
pub mod ops;
pub mod public;
pub mod record;
pub mod registry;
pub mod round;
pub mod seats;
pub mod send;
pub mod sockets;
pub mod state;
pub mod task;
pub mod theater;

pub use crate::net::kick::{ConnId, Kick};
pub use crate::stats::RoomStats;
pub use host::{BOT_CHANGE_COOLDOWN, NEW_MATCH_COOLDOWN};
pub use input::{Attachment, SimInput};
pub use public::{Drain, RoomPublic, random_code, random_host_key};
pub use registry::Registry;
pub use seats::{MAX_SPECTATORS, TAKEOVER_SILENCE};
pub use state::{Room, RoomSetup};
pub use task::{run, run_when_used};
