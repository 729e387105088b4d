//! The writer: one task takes finished rounds from the rooms' bounded queue, appends each to the
//! spool file (one JSON line, fsynced) and then commits them to the database in batches. The
//! spool is what makes a round's result survive: the room shows its end screen once the line is
//! on disk ([`Saved`]), and whatever the database does (down, slow, restarted), the spool keeps
//! the rounds until a commit takes them; at start the spool is replayed. A round stored twice
//! counts once (its id), so a crash between the commit and the spool's truncation loses
//! nothing and doubles nothing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::db::{Store, StoreCell};
use super::record::{Offer, RatedPlayer, RoundRecord};

/// Most rounds committed in one transaction.
pub const BATCH: usize = 4096;
/// How long the writer waits before trying a failed database again (doubling up to 8 s).
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MOST: Duration = Duration::from_secs(8);

/// The writer's figures.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub spooled: AtomicU64,
    pub committed: AtomicU64,
    pub duplicates: AtomicU64,
    pub failures: AtomicU64,
    /// Rounds waiting for the database (in the spool).
    pub pending: AtomicU64,
}

/// Reads the rounds a spool file holds (a torn last line, from a crash mid-write, is skipped).
pub fn read_spool(path: &Path) -> Vec<RoundRecord> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| match serde_json::from_str::<RoundRecord>(line) {
            Ok(record) => Some(record),
            Err(error) => {
                warn!(%error, "results spool: an unreadable line skipped");
                None
            }
        })
        .collect()
}

fn append(path: &Path, records: &[RoundRecord]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).expect("records serialize"));
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Rewrites the spool to hold exactly `records` (written to a temporary file, fsynced, renamed).
fn rewrite(path: &Path, records: &[RoundRecord]) -> std::io::Result<()> {
    if records.is_empty() {
        return match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        };
    }
    let temporary = path.with_extension("spool.new");
    let _ = std::fs::remove_file(&temporary);
    append(&temporary, records)?;
    std::fs::rename(&temporary, path)
}

/// What a commit hands back: the batch it tried, and per round its rating changes (with board
/// places for the rounds a room waits on), or the error.
type Committed = (Vec<RoundRecord>, Result<Vec<Option<Vec<RatedPlayer>>>, String>);

/// Commits `batch`, then looks up the board places of the rated players of the rounds in `waited`.
async fn commit(store: Arc<Store>, batch: Vec<RoundRecord>, waited: HashSet<String>) -> Committed {
    let mut outcomes = match store.write_rated(&batch).await {
        Ok(outcomes) => outcomes,
        Err(error) => return (batch, Err(error)),
    };
    for (round, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        let Some(changes) = outcome.as_mut().filter(|_| waited.contains(&round.round_id)) else { continue };
        let players: Vec<String> = changes.iter().map(|c| c.player.clone()).collect();
        if let Ok(ranks) = store.ranks(&players).await {
            for (change, rank) in changes.iter_mut().zip(ranks) {
                change.rank = rank;
            }
        }
    }
    (batch, Ok(outcomes))
}

/// Runs the writer until `stop`, then commits what it can within 5 s (the spool keeps the rest).
/// Rounds reach the spool while a commit is under way: a slow or unreachable database never
/// holds up an end screen. `store` may still be empty (PostgreSQL unreachable at start): the
/// rounds wait in the spool until it is filled.
pub async fn run(
    store: Option<StoreCell>,
    mut queue: mpsc::Receiver<Offer>,
    spool: PathBuf,
    stats: Arc<WriterStats>,
    stop: CancellationToken,
) {
    let mut pending = read_spool(&spool);
    if !pending.is_empty() {
        info!(rounds = pending.len(), spool = %spool.display(), "results spool: rounds from before are written first");
    }
    stats.pending.store(pending.len() as u64, Ordering::Relaxed);
    // Where each round still waiting for its commit wants its rating changes.
    let mut waiting: HashMap<String, super::record::Rated> = HashMap::new();
    let mut retry = RETRY_FIRST;
    let mut next_try = tokio::time::Instant::now();
    let mut in_flight: Option<Pin<Box<dyn Future<Output = Committed> + Send>>> = None;
    loop {
        let open = store.as_ref().and_then(|cell| cell.get().cloned());
        if in_flight.is_none()
            && let Some(store) = &open
            && !pending.is_empty()
            && tokio::time::Instant::now() >= next_try
        {
            let batch: Vec<RoundRecord> = pending.iter().take(BATCH).cloned().collect();
            let waited =
                batch.iter().filter(|r| waiting.contains_key(&r.round_id)).map(|r| r.round_id.clone()).collect();
            in_flight = Some(Box::pin(commit(store.clone(), batch, waited)));
        }
        let mut offers = Vec::new();
        tokio::select! {
            _ = stop.cancelled() => break,
            got = queue.recv_many(&mut offers, BATCH), if !queue.is_closed() || !queue.is_empty() => {
                if got == 0 && in_flight.is_none() && pending.is_empty() {
                    break;
                }
            }
            (batch, result) = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                match result {
                    Ok(outcomes) => {
                        let new = outcomes.iter().filter(|o| o.is_some()).count();
                        for (round, outcome) in batch.iter().zip(outcomes) {
                            if let (Some(slot), Some(changes)) = (waiting.remove(&round.round_id), outcome) {
                                let _ = slot.set(changes);
                            }
                        }
                        stats.committed.fetch_add(new as u64, Ordering::Relaxed);
                        stats.duplicates.fetch_add((batch.len() - new) as u64, Ordering::Relaxed);
                        // The batch is the front of `pending` (rounds only join at the back).
                        pending.drain(..batch.len());
                        let left = pending.clone();
                        let path = spool.clone();
                        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || rewrite(&path, &left)).await {
                            warn!(%error, "results spool: cannot shorten it (its rounds count once anyway)");
                        }
                        if retry > RETRY_FIRST {
                            info!("database: writing again");
                        }
                        retry = RETRY_FIRST;
                    }
                    Err(error) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        if retry == RETRY_FIRST {
                            warn!(%error, pending = pending.len(), "database: cannot write round results; they wait in the spool");
                        }
                        next_try = tokio::time::Instant::now() + retry;
                        retry = (retry * 2).min(RETRY_MOST);
                    }
                }
            }
            _ = tokio::time::sleep_until(next_try), if in_flight.is_none() && !pending.is_empty() && store.is_some() => {
                if open.is_none() {
                    // Not open yet: look again shortly.
                    next_try = tokio::time::Instant::now() + RETRY_FIRST;
                }
            }
        }
        if !offers.is_empty() {
            let records: Vec<RoundRecord> = offers.iter().map(|offer| offer.record.clone()).collect();
            let path = spool.clone();
            let written = tokio::task::spawn_blocking(move || append(&path, &records)).await;
            if !matches!(written, Ok(Ok(()))) {
                warn!(spool = %spool.display(), "results spool: cannot write; the rounds wait in memory for the database");
            }
            for offer in &offers {
                offer.saved.store(true, Ordering::Release);
                waiting.insert(offer.record.round_id.clone(), offer.rated.clone());
            }
            stats.spooled.fetch_add(offers.len() as u64, Ordering::Relaxed);
            pending.extend(offers.into_iter().map(|offer| offer.record));
        }
        stats.pending.store(pending.len() as u64, Ordering::Relaxed);
    }
    // Stopping: a commit under way is dropped (its transaction rolls back; the spool has its
    // rounds); what is still queued goes to the spool, then one last try, briefly.
    drop(in_flight);
    queue.close();
    let mut last = Vec::new();
    while let Ok(offer) = queue.try_recv() {
        offer.saved.store(true, Ordering::Release);
        last.push(offer.record);
    }
    if !last.is_empty() {
        let path = spool.clone();
        let records = last.clone();
        let _ = tokio::task::spawn_blocking(move || append(&path, &records)).await;
        pending.extend(last);
    }
    stats.pending.store(pending.len() as u64, Ordering::Relaxed);
    if let Some(store) = store.as_ref().and_then(|cell| cell.get())
        && !pending.is_empty()
    {
        let batch: Vec<RoundRecord> = pending.clone();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), store.write(&batch)).await {
            pending.clear();
            stats.pending.store(0, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || rewrite(&spool, &[])).await;
        }
    }
}

/// A flag the room polls: the round's line is on disk (or the writer gave up on the disk).
pub type Saved = Arc<AtomicBool>;
