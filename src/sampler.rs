//! What every command that reports at intervals shares: `--interval` and
//! `--count`, the tick schedule and the one loop around it, counters turned
//! into per-second rates over the measured period, and the JSON envelope
//! each sample goes out in (`{"time", "period", ...the command's fields}`).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::output::unix_time;
use crate::stop::Stop;

/// How a periodic command samples; flattened into its arguments.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Args {
    /// Seconds between samples
    #[arg(short, long, value_name = "S", default_value_t = 2.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print this many samples, then exit
    #[arg(short, long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,
}

/// `-c/--count`, the one spelling of "this many, then exit" in every
/// command: a whole number of at least 1 (0 would do nothing at all).
pub fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("0 would do nothing: give 1 or more, or leave --count out to run until \
                      Ctrl-C"
            .to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of 1 or more")),
    }
}

/// `--interval`: seconds between samples, as a positive finite number.
pub fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0.01 and 86400")),
    }
}

/// What one turn of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// A sample went out: it counts towards `--count`.
    Printed,
    /// Nothing to report this time (the source is gone or restarted).
    Skipped,
}

impl Args {
    /// Call `sample` at every tick with the seconds since the previous one,
    /// until `--count` samples went out or a stop request (Ctrl-C, SIGTERM).
    pub fn run(&self, stop: &Stop, mut sample: impl FnMut(f64) -> Result<Tick>) -> Result<()> {
        let mut ticker = Ticker::new(Duration::from_secs_f64(self.interval));
        let mut printed = 0u64;
        while self.count.is_none_or(|n| printed < n) {
            if !stop.sleep(ticker.left(Instant::now())) {
                break;
            }
            let Some(period) = ticker.tick(Instant::now()) else { continue };
            if sample(period)? == Tick::Printed {
                printed += 1;
            }
        }
        Ok(())
    }

    /// Whether `printed` samples are all `--count` asked for.
    pub fn done(&self, printed: u64) -> bool {
        self.count.is_some_and(|n| printed >= n)
    }
}

/// The schedule of ticks, `interval` apart from the start, so the time a
/// sample takes does not push the next one back.
pub struct Ticker {
    interval: Duration,
    next: Instant,
    last: Instant,
}

impl Ticker {
    pub fn new(interval: Duration) -> Ticker {
        let now = Instant::now();
        Ticker { interval, next: now + interval, last: now }
    }

    /// Time left until the next tick; zero if it is due.
    pub fn left(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// If a tick is due at `now`, the seconds since the last one; the
    /// schedule moves on, and after a stall starts afresh rather than catch
    /// up in a burst.
    pub fn tick(&mut self, now: Instant) -> Option<f64> {
        if now < self.next {
            return None;
        }
        let period = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.next = (self.next + self.interval).max(now + self.interval / 2);
        Some(period)
    }
}

/// Per second over `period` seconds, of a counter that went from `before` to
/// `now`: zero for an empty period, or for a counter that went back.
pub fn per_second(before: u64, now: u64, period: f64) -> f64 {
    if period > 0.0 {
        now.saturating_sub(before) as f64 / period
    } else {
        0.0
    }
}

/// Packets and bytes: totals, and per-second rates over the period, in base
/// units (bytes, bits per second).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Rate {
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

impl Rate {
    /// The rate of (packets, bytes) counters that went from `before` to `now`.
    pub fn new(before: (u64, u64), now: (u64, u64), period: f64) -> Rate {
        Rate {
            packets: now.0,
            bytes: now.1,
            pps: per_second(before.0, now.0, period),
            bps: per_second(before.1, now.1, period) * 8.0,
        }
    }
}

/// `v` for people, in at most four characters and an SI prefix: `999`,
/// `1.23K`, `12.3K`, `123K`, `1.23M`, ... (whole numbers below 1000).
pub fn si(v: f64) -> String {
    const PREFIXES: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let (mut v, mut i) = (v.max(0.0), 0);
    while v >= 999.5 && i + 1 < PREFIXES.len() {
        v /= 1000.0;
        i += 1;
    }
    let p = PREFIXES[i];
    match v {
        _ if i == 0 => format!("{v:.0}"),
        v if v < 9.995 => format!("{v:.2}{p}"),
        v if v < 99.95 => format!("{v:.1}{p}"),
        v => format!("{v:.0}{p}"),
    }
}

/// One sample as JSON: when, over how long, and the command's own fields.
#[derive(Serialize, Debug)]
pub struct Sample<T> {
    /// Unix time of the sample, seconds.
    pub time: f64,
    /// Seconds the sample's rates are measured over.
    pub period: f64,
    #[serde(flatten)]
    pub data: T,
}

impl<T: Serialize> Sample<T> {
    /// `data`, sampled now, over the last `period` seconds.
    pub fn new(period: f64, data: T) -> Sample<T> {
        Sample { time: unix_time(), period, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_over_the_period_in_base_units() {
        let r = Rate::new((100, 50_000), (300, 150_000), 2.0);
        assert_eq!(r, Rate { packets: 300, bytes: 150_000, pps: 100.0, bps: 400_000.0 });
        assert_eq!(per_second(5, 3, 1.0), 0.0);
        assert_eq!(per_second(0, 3, 0.0), 0.0);
    }

    #[test]
    fn si_fits_four_characters_and_a_prefix() {
        let cases = [
            (0.0, "0"),
            (7.4, "7"),
            (999.0, "999"),
            (999.6, "1.00K"),
            (1234.0, "1.23K"),
            (12_345.0, "12.3K"),
            (99_960.0, "100K"),
            (123_456.0, "123K"),
            (1_500_000.0, "1.50M"),
            (42e9, "42.0G"),
            (-3.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(si(v), want, "{v}");
        }
    }

    #[test]
    fn ticks_keep_to_the_schedule_and_skip_a_stall() {
        let mut t = Ticker::new(Duration::from_secs(1));
        let start = t.last;
        assert_eq!(t.tick(start + Duration::from_millis(500)), None);
        assert_eq!(t.tick(start + Duration::from_millis(1100)), Some(1.1));
        // Due at 2 s, whatever the last one took.
        assert_eq!(t.left(start + Duration::from_millis(1500)), Duration::from_millis(500));
        // A 5 s stall: one tick, then the next half an interval on.
        assert_eq!(t.tick(start + Duration::from_secs(7)), Some(5.9));
        assert_eq!(t.left(start + Duration::from_secs(7)), Duration::from_millis(500));
    }

    #[test]
    fn the_envelope_puts_time_and_period_around_the_fields() {
        #[derive(Serialize)]
        struct Fields {
            ifname: &'static str,
        }
        let s = Sample { time: 1.5, period: 2.0, data: Fields { ifname: "veth0" } };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"time":1.5,"period":2.0,"ifname":"veth0"}"#);
    }
}
