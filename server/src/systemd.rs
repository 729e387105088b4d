//! systemd `Type=notify` (through `$NOTIFY_SOCKET`; nothing happens without it): READY once the
//! server listens, STOPPING with a timeout extension when it drains, and WATCHDOG pings while
//! every room with players keeps ticking (a wedged room stops them and systemd restarts us).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::room::registry::Registry;

/// Tells systemd the server accepts players.
pub fn ready(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the server drains and needs `extend` more before it exits.
pub fn stopping(extend: Duration) {
    let usec = extend.as_micros().min(u128::from(u32::MAX)) as u32;
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Stopping, NotifyState::ExtendTimeoutUsec(usec), NotifyState::Status("draining")],
    );
}

/// Pings the watchdog at half its interval for as long as no room with players is stuck; runs
/// until dropped. Does nothing when systemd set no watchdog.
pub async fn watchdog(rooms: Arc<Registry>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    let stuck_after = Duration::from_micros(usec).max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        if rooms.stuck_rooms(stuck_after).is_empty() {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        }
    }
}
