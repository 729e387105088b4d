//! A link conditioner in the application (this machine's kernel has no `netem`): per connection
//! and per direction, every message is delivered at a scheduled time that adds latency, jitter,
//! periodic stalls and a bandwidth cap, in order (TCP never reorders: loss shows up as a stall
//! followed by a burst). Off unless `--net-sim` is given.
//!
//! The spec is a comma-separated list, e.g. `latency=75ms,jitter=10ms,stall=250ms/10s,bandwidth=64000`:
//! `latency` one way, `jitter` ± around it (uniform), `stall=FOR/EVERY` nothing delivered for FOR
//! once every EVERY, `bandwidth` bytes per second.

use std::str::FromStr;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use tokio::time::Instant;

/// What the conditioned link does to every message, in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetSim {
    /// One-way delay.
    pub latency: Duration,
    /// Uniform ± around the latency.
    pub jitter: Duration,
    /// Nothing is delivered for `stall_for` at the start of every `stall_every` (0: never).
    pub stall_for: Duration,
    pub stall_every: Duration,
    /// Bytes per second (0: unlimited).
    pub bytes_per_second: u64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        return Err(format!("{text:?}: give a unit, ms or s"));
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a duration"))?;
    if !(0.0..=600.0).contains(&(value * scale)) {
        return Err(format!("{text:?} is out of range (0 to 600 s)"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

impl FromStr for NetSim {
    type Err = String;

    fn from_str(spec: &str) -> Result<NetSim, String> {
        let mut sim = NetSim::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected key=value"))?;
            match key.trim() {
                "latency" => sim.latency = parse_duration(value)?,
                "jitter" => sim.jitter = parse_duration(value)?,
                "stall" => {
                    let (length, every) =
                        value.split_once('/').ok_or_else(|| format!("stall={value}: expected FOR/EVERY"))?;
                    sim.stall_for = parse_duration(length)?;
                    sim.stall_every = parse_duration(every)?;
                    if sim.stall_for >= sim.stall_every {
                        return Err(format!("stall={value}: the stall must be shorter than its period"));
                    }
                }
                "bandwidth" => {
                    sim.bytes_per_second =
                        value.trim().parse().map_err(|_| format!("bandwidth={value}: expected bytes per second"))?
                }
                other => return Err(format!("unknown --net-sim key {other:?} (latency, jitter, stall, bandwidth)")),
            }
        }
        if sim.jitter > sim.latency {
            return Err("jitter must not exceed latency".to_string());
        }
        Ok(sim)
    }
}

impl std::fmt::Display for NetSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "latency={}ms,jitter={}ms", self.latency.as_millis(), self.jitter.as_millis())?;
        if !self.stall_every.is_zero() {
            write!(f, ",stall={}ms/{}ms", self.stall_for.as_millis(), self.stall_every.as_millis())?;
        }
        if self.bytes_per_second > 0 {
            write!(f, ",bandwidth={}", self.bytes_per_second)?;
        }
        Ok(())
    }
}

/// One direction of one conditioned connection: when each message arrives.
#[derive(Debug)]
pub struct Link {
    sim: NetSim,
    started: Instant,
    last: Instant,
    rng: Pcg32,
}

impl Link {
    pub fn new(sim: NetSim, started: Instant, seed: u64) -> Link {
        Link { sim, started, last: started, rng: Pcg32::seed_from_u64(seed) }
    }

    /// When a message of `bytes` sent at `now` is delivered: never before an earlier one.
    pub fn deliver_at(&mut self, now: Instant, bytes: usize) -> Instant {
        let jitter_us = self.sim.jitter.as_micros() as i64;
        let offset = if jitter_us > 0 { self.rng.random_range(-jitter_us..=jitter_us) } else { 0 };
        let delay_us = (self.sim.latency.as_micros() as i64 + offset).max(0) as u64;
        let mut at = now + Duration::from_micros(delay_us);
        if !self.sim.stall_every.is_zero() {
            let since = at.saturating_duration_since(self.started).as_nanos();
            let phase = Duration::from_nanos((since % self.sim.stall_every.as_nanos()) as u64);
            if phase < self.sim.stall_for {
                at += self.sim.stall_for - phase;
            }
        }
        if self.sim.bytes_per_second > 0 {
            let wire = Duration::from_secs_f64(bytes as f64 / self.sim.bytes_per_second as f64);
            at = at.max(self.last + wire);
        }
        at = at.max(self.last);
        self.last = at;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let sim: NetSim = "latency=75ms, jitter=10ms,stall=250ms/10s,bandwidth=64000".parse().unwrap();
        assert_eq!(sim.latency, Duration::from_millis(75));
        assert_eq!(sim.jitter, Duration::from_millis(10));
        assert_eq!((sim.stall_for, sim.stall_every), (Duration::from_millis(250), Duration::from_secs(10)));
        assert_eq!(sim.bytes_per_second, 64000);
        assert_eq!(sim.to_string().parse::<NetSim>().unwrap(), sim);
        for bad in ["latency=5", "color=red", "stall=2s/1s", "latency=10ms,jitter=20ms", "latency=-3ms", "x"] {
            assert!(bad.parse::<NetSim>().is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delivery_adds_latency_keeps_order_stalls_and_caps_bandwidth() {
        let start = Instant::now();
        let sim = NetSim { latency: Duration::from_millis(50), jitter: Duration::from_millis(20), ..NetSim::default() };
        let mut link = Link::new(sim, start, 7);
        let mut last = start;
        for i in 0..200u64 {
            let now = start + Duration::from_millis(i);
            let at = link.deliver_at(now, 10);
            assert!(at >= last, "in order");
            assert!(at >= now + Duration::from_millis(30) && at <= (now + Duration::from_millis(70)).max(last));
            last = at;
        }
        let stall =
            NetSim { stall_for: Duration::from_millis(250), stall_every: Duration::from_secs(1), ..NetSim::default() };
        let mut link = Link::new(stall, start, 1);
        // Sent inside the stall window: held to its end.
        assert_eq!(link.deliver_at(start + Duration::from_millis(100), 1), start + Duration::from_millis(250));
        assert_eq!(link.deliver_at(start + Duration::from_millis(500), 1), start + Duration::from_millis(500));
        assert_eq!(link.deliver_at(start + Duration::from_millis(1010), 1), start + Duration::from_millis(1250));
        let capped = NetSim { bytes_per_second: 1000, ..NetSim::default() };
        let mut link = Link::new(capped, start, 1);
        assert_eq!(link.deliver_at(start, 100), start + Duration::from_millis(100));
        assert_eq!(link.deliver_at(start, 100), start + Duration::from_millis(200));
    }
}
