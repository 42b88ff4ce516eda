//! Wall-clock time for kernel timestamps. BPF programs read CLOCK_MONOTONIC
//! (bpf_ktime_get_ns); capture files want time since the Unix epoch, which
//! the tutorial's tracing04 never converted to.

use std::time::Duration;

use anyhow::{Context, Result};
use nix::time::{clock_gettime, ClockId};

/// A clock step (settimeofday, NTP) larger than this is followed.
const STEP: i128 = 1_000_000;

/// Converts CLOCK_MONOTONIC nanoseconds to time since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    offset: i128,
}

impl WallClock {
    pub fn new() -> Result<WallClock> {
        Ok(WallClock { offset: measure()? })
    }

    /// Follow the wall clock if it was stepped since the last call. Small
    /// differences are read noise and ignored, so timestamps never jitter.
    pub fn refresh(&mut self) -> Result<()> {
        let now = measure()?;
        if (now - self.offset).abs() > STEP {
            self.offset = now;
        }
        Ok(())
    }

    /// `mono_ns` (CLOCK_MONOTONIC) as time since the epoch.
    pub fn wall(&self, mono_ns: u64) -> Duration {
        let ns = (i128::from(mono_ns) + self.offset).clamp(0, i128::from(u64::MAX));
        Duration::from_nanos(ns as u64)
    }

    /// Now, since the epoch.
    pub fn now() -> Result<Duration> {
        Ok(Duration::from_nanos(nanos(ClockId::CLOCK_REALTIME)?.max(0) as u64))
    }
}

/// Now on CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
pub fn monotonic_ns() -> Result<u64> {
    Ok(nanos(ClockId::CLOCK_MONOTONIC)?.max(0) as u64)
}

fn nanos(clock: ClockId) -> Result<i128> {
    let t = clock_gettime(clock).with_context(|| format!("reading {clock}"))?;
    Ok(i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
}

/// REALTIME - MONOTONIC, with the realtime read taken between two monotonic
/// reads and set against their midpoint.
fn measure() -> Result<i128> {
    let before = nanos(ClockId::CLOCK_MONOTONIC)?;
    let real = nanos(ClockId::CLOCK_REALTIME)?;
    let after = nanos(ClockId::CLOCK_MONOTONIC)?;
    Ok(real - (before + after) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_now_maps_to_realtime_now() {
        let clock = WallClock::new().unwrap();
        let mono = nanos(ClockId::CLOCK_MONOTONIC).unwrap() as u64;
        let wall = clock.wall(mono);
        let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let diff = real.abs_diff(wall);
        assert!(diff < Duration::from_millis(50), "{wall:?} vs {real:?}");
    }

    #[test]
    fn later_kernel_timestamps_map_to_later_wall_times() {
        let clock = WallClock { offset: 1_000 };
        assert_eq!(clock.wall(5), Duration::from_nanos(1_005));
        assert_eq!(WallClock { offset: -10 }.wall(3), Duration::ZERO);
    }
}
