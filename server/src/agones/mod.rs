//! Running as an Agones GameServer (cargo feature `agones`, switched on at run time by
//! `--agones` only: the SDK waits up to 30 s for its sidecar, so never by default).
//!
//! Once the server listens it connects to the SDK sidecar (`AGONES_SDK_GRPC_PORT`, default
//! 9357), marks the GameServer Ready, and then every 2 s:
//! - sends a health ping, but only while every room with players ticks (a wedged room stops the
//!   pings, and Agones restarts the process after its failure threshold);
//! - keeps the Counters `rooms` and `players` and the List `rooms` (the live room codes) equal to
//!   what the server hosts, so a FleetAutoscaler can scale on free room slots and a
//!   GameServerAllocation can find "the server that hosts room CODE".
//!
//! After the drain (SIGTERM, or the operator's) it tells Agones Shutdown.

pub mod fake;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::room::registry::Registry;

/// How often health and counts are reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// The Counter and List names the Fleet declares (deploy/agones/fleet.yaml).
pub const ROOMS: &str = "rooms";
pub const PLAYERS: &str = "players";
/// Agones Lists hold at most this many values (so `--agones` allows at most this many rooms).
pub const MAX_LIST_CAPACITY: i64 = 1000;
/// Longest wait for one call to the sidecar.
const CALL_LIMIT: Duration = Duration::from_secs(5);
/// An Allocated server with no room in use for this long goes back to Ready.
pub const BACK_TO_READY_AFTER: Duration = Duration::from_secs(30);

/// What was last told to Agones, to send only changes.
#[derive(Default)]
struct Reported {
    rooms: Option<i64>,
    players: Option<i64>,
    /// The List's values as Agones holds them, once read.
    codes: Option<BTreeSet<String>>,
}

/// How the GameServer side runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_rooms: u16,
    pub max_players: u16,
    /// The sidecar's port; `None`: `AGONES_SDK_GRPC_PORT`, else 9357.
    pub port: Option<u16>,
    /// An Allocated server with no room in use for this long goes back to Ready.
    pub back_to_ready_after: Duration,
}

impl Options {
    pub fn new(max_rooms: u16, max_players: u16) -> Options {
        Options { max_rooms, max_players, port: None, back_to_ready_after: BACK_TO_READY_AFTER }
    }
}

/// Connects, marks Ready and reports until `stop`; returns the SDK for the final Shutdown.
pub async fn run(rooms: Arc<Registry>, options: Options, stop: CancellationToken) -> Result<agones::Sdk, String> {
    let Options { max_rooms, max_players, port, back_to_ready_after } = options;
    let mut sdk = tokio::select! {
        _ = stop.cancelled() => return Err("stopped before the Agones SDK answered".to_string()),
        sdk = agones::Sdk::new(port, None) => sdk.map_err(|e| format!("cannot reach the Agones SDK sidecar: {e}"))?,
    };
    // Capacities first: the Fleet declares the Counters and the List; their capacity is this
    // process's (a Fleet may run servers with different --max-rooms).
    let rooms_capacity = i64::from(max_rooms);
    let players_capacity = rooms_capacity * i64::from(max_players);
    let mut beta = sdk.beta().clone();
    let capacities = async {
        beta.set_counter_capacity(ROOMS, rooms_capacity).await?;
        beta.set_counter_capacity(PLAYERS, players_capacity).await?;
        beta.set_list_capacity(ROOMS, rooms_capacity.min(MAX_LIST_CAPACITY)).await
    };
    match tokio::time::timeout(CALL_LIMIT, capacities).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            warn!(%error, "Agones: cannot set the capacity of the rooms/players Counters and rooms List (are they declared in the Fleet?)")
        }
        Err(_) => warn!("Agones: setting capacities timed out"),
    }
    tokio::select! {
        _ = stop.cancelled() => return Err("stopped before the GameServer was Ready".to_string()),
        ready = tokio::time::timeout(CALL_LIMIT, sdk.ready()) => match ready {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("Agones Ready failed: {error}")),
            Err(_) => return Err("Agones Ready timed out".to_string()),
        },
    }
    info!(rooms = rooms_capacity, "Agones: GameServer Ready");
    let mut health = sdk.health_check();
    let mut reported = Reported::default();
    let mut draining_reported = false;
    let mut idle_allocated_since: Option<std::time::Instant> = None;
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let stuck = rooms.stuck_rooms(Duration::from_secs(5));
        if stuck.is_empty() {
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = health.try_send(()) {
                // The health stream ended (the sidecar restarted): open a new one.
                warn!("Agones: health stream closed; reopening it");
                health = sdk.health_check();
            }
        } else {
            warn!(stuck = stuck.len(), "Agones: health pings withheld while a room with players is not ticking");
        }
        let step = async {
            // Draining: no free room slot, so no allocation sends players here.
            if rooms.drain.is_draining() && !draining_reported {
                let count = rooms.handles().len() as i64;
                beta.set_counter_capacity(ROOMS, count).await?;
                draining_reported = true;
                info!("Agones: draining, rooms capacity set to what is open");
            }
            report(&mut beta, &rooms, &mut reported).await?;
            // An Allocated server nobody plays on goes back to Ready, so the Fleet can scale it
            // down or replace it (Agones never does that to an Allocated one).
            let idle = rooms.handles().iter().all(|h| h.public.permanent && h.public.summary().players == 0);
            if idle && !rooms.drain.is_draining() {
                let since = *idle_allocated_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= back_to_ready_after {
                    let allocated = sdk.get_gameserver().await?.status.is_some_and(|s| s.state == "Allocated");
                    if allocated {
                        sdk.ready().await?;
                        info!("Agones: no rooms in use; back to Ready");
                    }
                    idle_allocated_since = None;
                }
            } else {
                idle_allocated_since = None;
            }
            Ok::<(), agones::errors::Error>(())
        };
        match tokio::time::timeout(CALL_LIMIT, step).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(%error, "Agones: reporting rooms and players failed; retrying");
                // Start over from what Agones holds.
                reported = Reported::default();
            }
            Err(_) => {
                warn!("Agones: reporting timed out; retrying");
                reported = Reported::default();
            }
        }
    }
    Ok(sdk)
}

/// Brings the Counters and the List in line with the live rooms.
async fn report(
    beta: &mut agones::beta::Beta,
    rooms: &Registry,
    reported: &mut Reported,
) -> Result<(), agones::errors::Error> {
    let handles = rooms.handles();
    let count = handles.len() as i64;
    let players: i64 = handles.iter().map(|h| i64::from(h.public.summary().players)).sum();
    if reported.rooms != Some(count) {
        beta.set_counter_count(ROOMS, count).await?;
        reported.rooms = Some(count);
    }
    if reported.players != Some(players) {
        beta.set_counter_count(PLAYERS, players).await?;
        reported.players = Some(players);
    }
    // After a start or an error: learn what the List holds.
    let codes = match &mut reported.codes {
        Some(codes) => codes,
        None => reported.codes.insert(beta.get_list_values(ROOMS).await?.into_iter().collect()),
    };
    let live: BTreeSet<String> = handles.iter().map(|h| h.public.code.to_string()).collect();
    for gone in codes.difference(&live).cloned().collect::<Vec<_>>() {
        beta.delete_list_value(ROOMS, &gone).await?;
        codes.remove(&gone);
    }
    for new in live.difference(codes).cloned().collect::<Vec<_>>() {
        beta.append_list_value(ROOMS, &new).await?;
        codes.insert(new);
    }
    Ok(())
}

/// Tells Agones the process is done (after the drain).
pub async fn shutdown(mut sdk: agones::Sdk) {
    match tokio::time::timeout(Duration::from_secs(5), sdk.shutdown()).await {
        Ok(Ok(())) => info!("Agones: Shutdown sent"),
        Ok(Err(error)) => warn!(%error, "Agones: Shutdown failed"),
        Err(_) => warn!("Agones: Shutdown timed out"),
    }
}
