//! Estimates the server's tick clock from ping/pong, so remote entities can be drawn at a
//! steady point in server time regardless of when packets happen to arrive.

/// Maps local time (milliseconds, `performance.now()`) to a fractional server tick.
#[derive(Debug, Clone)]
pub struct ServerClock {
    tick_rate: f64,
    /// `server_tick - local_ms * tick_rate / 1000`, smoothed.
    offset: Option<f64>,
    /// Smoothed round-trip time, milliseconds.
    pub rtt_ms: f64,
    /// Lowest round trip seen recently; samples near it are trusted most.
    best_rtt_ms: f64,
}

impl ServerClock {
    pub fn new(tick_rate: u16) -> ServerClock {
        ServerClock { tick_rate: f64::from(tick_rate), offset: None, rtt_ms: 0.0, best_rtt_ms: f64::INFINITY }
    }

    /// Feeds one pong: sent at `client_time_ms`, received at `now_ms`, carrying the server's tick
    /// at the moment it answered.
    pub fn on_pong(&mut self, client_time_ms: f64, server_tick: u32, now_ms: f64) {
        let rtt = (now_ms - client_time_ms).max(0.0);
        self.rtt_ms = if self.rtt_ms == 0.0 { rtt } else { self.rtt_ms * 0.8 + rtt * 0.2 };
        self.best_rtt_ms = (self.best_rtt_ms * 1.01).min(rtt).max(0.01);
        // The server answered about half a round trip ago.
        let tick_now = f64::from(server_tick) + rtt / 2.0 * self.tick_rate / 1000.0;
        let sample = tick_now - now_ms * self.tick_rate / 1000.0;
        self.offset = Some(match self.offset {
            // Large disagreement (first sample, a server restart): jump.
            Some(offset) if (sample - offset).abs() < self.tick_rate => {
                // Trust samples from fast round trips more: their midpoint error is smaller.
                let weight = if rtt <= self.best_rtt_ms * 1.5 { 0.25 } else { 0.05 };
                offset + (sample - offset) * weight
            }
            _ => sample,
        });
    }

    /// Also learns from snapshots: a snapshot for `tick` arriving at `now_ms` proves the server
    /// was at least at `tick`, which fixes the estimate before the first pong.
    pub fn on_snapshot(&mut self, tick: u32, now_ms: f64) {
        let floor = f64::from(tick) - now_ms * self.tick_rate / 1000.0;
        match self.offset {
            None => self.offset = Some(floor),
            Some(offset) if floor > offset + self.tick_rate => self.offset = Some(floor),
            _ => {}
        }
    }

    /// The server's tick now, fractional; `None` before any sample.
    pub fn server_tick(&self, now_ms: f64) -> Option<f64> {
        self.offset.map(|offset| offset + now_ms * self.tick_rate / 1000.0)
    }

    pub fn is_synced(&self) -> bool {
        self.offset.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_on_the_true_clock() {
        // Server tick = (t_ms + 5000) * 0.06 at 60 Hz; one-way delay 20 ms each way.
        let true_tick = |t: f64| (t + 5000.0) * 0.06;
        let mut clock = ServerClock::new(60);
        for i in 0..50 {
            let sent = i as f64 * 1000.0;
            let server_time = sent + 20.0;
            let received = sent + 40.0;
            clock.on_pong(sent, true_tick(server_time).floor() as u32, received);
        }
        let estimate = clock.server_tick(60_000.0).unwrap();
        assert!((estimate - true_tick(60_000.0)).abs() < 1.0, "{estimate} vs {}", true_tick(60_000.0));
        assert!((clock.rtt_ms - 40.0).abs() < 1.0);
    }

    #[test]
    fn snapshots_seed_the_clock() {
        let mut clock = ServerClock::new(60);
        assert!(clock.server_tick(0.0).is_none());
        clock.on_snapshot(600, 1000.0);
        assert!((clock.server_tick(1000.0).unwrap() - 600.0).abs() < 1e-9);
        assert!((clock.server_tick(2000.0).unwrap() - 660.0).abs() < 1e-9);
    }
}
