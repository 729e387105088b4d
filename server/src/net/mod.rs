//! The async shell around the room: HTTP (the browser client, `/healthz`) and WebSocket
//! connections on one port. This is the only code that knows about WebSocket.

pub mod assets;
pub mod boards;
pub mod connection;
pub mod context;
pub mod http;
pub mod kick;
pub mod listen;
pub mod netsim;
pub mod polled;
pub mod reader;
pub mod socket;
pub mod tls;
pub mod ws;
