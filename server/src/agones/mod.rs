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
/// Agones Lists hold at most this many values.
const MAX_LIST_CAPACITY: i64 = 1000;

/// What was last told to Agones, to send only changes.
#[derive(Default)]
struct Reported {
    rooms: Option<i64>,
    players: Option<i64>,
    /// The List's values as Agones holds them, once read.
    codes: Option<BTreeSet<String>>,
}

/// Connects (to `port`, else `AGONES_SDK_GRPC_PORT`, else 9357), marks Ready and reports until
/// `stop`; returns the SDK for the final Shutdown.
pub async fn run(
    rooms: Arc<Registry>,
    max_rooms: u16,
    max_players: u16,
    port: Option<u16>,
    stop: CancellationToken,
) -> Result<agones::Sdk, String> {
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
    if let Err(error) = capacities.await {
        warn!(%error, "Agones: cannot set the capacity of the rooms/players Counters and rooms List (are they declared in the Fleet?)");
    }
    sdk.ready().await.map_err(|e| format!("Agones Ready failed: {e}"))?;
    info!(rooms = rooms_capacity, "Agones: GameServer Ready");
    let health = sdk.health_check();
    let mut reported = Reported::default();
    let mut every = tokio::time::interval(REPORT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
        }
        let stuck = crate::room::live::stuck_rooms(&rooms, Duration::from_secs(5));
        if stuck.is_empty() {
            let _ = health.try_send(());
        } else {
            warn!(stuck = stuck.len(), "Agones: health pings withheld while a room with players is not ticking");
        }
        if let Err(error) = report(&mut beta, &rooms, &mut reported).await {
            warn!(%error, "Agones: reporting rooms and players failed; retrying");
            // Start over from what Agones holds.
            reported = Reported::default();
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
