//! Rate limits: a token bucket, one per address (IPv6 by its /64), and the address a limit
//! counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::Instant;

/// Allows `rate` events per second on average with bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket { rate, burst, tokens: burst, last: Instant::now() }
    }

    /// A bucket that starts with `initial` tokens and fills up to `burst`: what it allows at
    /// once grows only with time spent below the rate (credit earned, not given).
    pub fn with_initial(rate: f64, burst: f64, initial: f64) -> TokenBucket {
        TokenBucket { rate, burst, tokens: initial.min(burst), last: Instant::now() }
    }

    /// True when the bucket has refilled to its burst (nothing to remember about its user).
    pub fn is_full(&self) -> bool {
        let elapsed = Instant::now().saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes one token if available.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// [`TokenBucket::try_take`] at `now` (a caller handling many events at once reads the
    /// clock once).
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The address a per-address limit counts: IPv4-mapped IPv6 as IPv4 (so a loopback proxy on a
/// dual-stack socket is loopback), and an IPv6 client by its /64 (one host has a whole /64).
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) if !v6.is_loopback() => {
            let s = v6.segments();
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        other => other,
    }
}

/// Addresses a [`PerAddress`] remembers before idle ones are forgotten.
const MAX_TRACKED: usize = 8192;

/// One token bucket per address (reduced by [`address_key`]): `per_minute` a minute, a burst of
/// as many. The map stays bounded: full buckets are forgotten first, then half of the rest.
#[derive(Debug)]
pub struct PerAddress {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl PerAddress {
    pub fn new(per_minute: f64) -> PerAddress {
        PerAddress { per_minute, buckets: Mutex::default() }
    }

    /// Whether `ip` has nothing left (nothing is taken).
    pub fn exhausted(&self, ip: IpAddr) -> bool {
        let buckets = self.buckets.lock().expect("limits lock");
        buckets.get(&address_key(ip)).is_some_and(|bucket| !bucket.clone().try_take())
    }

    /// Takes one from `ip`'s allowance; false when none was left.
    pub fn take(&self, ip: IpAddr) -> bool {
        let mut buckets = self.buckets.lock().expect("limits lock");
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, bucket| !bucket.is_full());
            if buckets.len() >= MAX_TRACKED {
                let forget: Vec<IpAddr> = buckets.keys().take(MAX_TRACKED / 2).copied().collect();
                for ip in forget {
                    buckets.remove(&ip);
                }
            }
        }
        let (rate, burst) = (self.per_minute / 60.0, self.per_minute);
        buckets.entry(address_key(ip)).or_insert_with(|| TokenBucket::new(rate, burst)).try_take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_over_time() {
        let mut bucket = TokenBucket::new(10.0, 3.0);
        assert!(bucket.try_take() && bucket.try_take() && bucket.try_take());
        assert!(!bucket.try_take());
        tokio::time::advance(std::time::Duration::from_millis(150)).await;
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
    }

    #[tokio::test(start_paused = true)]
    async fn credit_is_earned_by_silence() {
        let mut bucket = TokenBucket::with_initial(10.0, 100.0, 2.0);
        assert!(bucket.try_take() && bucket.try_take());
        assert!(!bucket.try_take(), "a new bucket allows only its initial burst");
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!((0..60).filter(|_| bucket.try_take()).count(), 50, "five silent seconds pay for 50");
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        assert_eq!((0..200).filter(|_| bucket.try_take()).count(), 100, "never more than the capacity");
    }
}
