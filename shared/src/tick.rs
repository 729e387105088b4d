//! The simulation clock: a wrapping tick counter.

use serde::{Deserialize, Serialize};

/// Simulation tick. Wraps at `u32::MAX`; compare with [`Tick::is_newer_than`], not `>`.
///
/// At 60 Hz a `u32` lasts over two years, but wrapping comparison keeps long-running servers and
/// replays correct without anyone having to think about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tick(pub u32);

impl Tick {
    pub const ZERO: Tick = Tick(0);

    /// The tick after this one.
    #[must_use]
    pub fn next(self) -> Tick {
        Tick(self.0.wrapping_add(1))
    }

    /// `self + n` ticks, wrapping.
    #[must_use]
    pub fn plus(self, n: u32) -> Tick {
        Tick(self.0.wrapping_add(n))
    }

    /// True when `self` is strictly after `other`, treating differences under 2^31 as forward.
    pub fn is_newer_than(self, other: Tick) -> bool {
        let diff = self.0.wrapping_sub(other.0);
        diff != 0 && diff < 0x8000_0000
    }

    /// Number of ticks from `earlier` to `self` (wrapping); meaningful when `self` is not older.
    pub fn since(self, earlier: Tick) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

impl std::fmt::Display for Tick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_order() {
        assert!(Tick(1).is_newer_than(Tick(0)));
        assert!(!Tick(0).is_newer_than(Tick(1)));
        assert!(!Tick(5).is_newer_than(Tick(5)));
        assert!(Tick(2).is_newer_than(Tick(u32::MAX - 2)));
        assert_eq!(Tick(2).since(Tick(u32::MAX)), 3);
        assert_eq!(Tick(u32::MAX).next(), Tick(0));
    }
}
