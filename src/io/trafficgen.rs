//! A traffic source that needs no pktgen: BPF_PROG_TEST_RUN in live-frames
//! mode runs `xdp_trafficgen` on copies of a template frame, and its XDP_TX
//! sends each one out of the interface named in the run's context. Flat out
//! each call sends thousands; at a set rate each sends about a millisecond's
//! worth, down to one frame at a time.

use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use libbpf_rs::libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, Program, ProgramInput};
use nix::net::if_::if_nametoindex;
use nix::sched::{unshare, CloneFlags};

use crate::net::iface::Iface;
use crate::net::netlink;
use crate::obj::logging;
use crate::obj::skel::trafficgen::{TrafficgenSkel, TrafficgenSkelBuilder};
use crate::obj::skel::{self, XdpMd};
use crate::sampler::Ticker;
use crate::xdp::attach::{self, Mode};

/// Frames per test run when sending flat out: a few milliseconds' worth, so
/// Ctrl-C and progress lines are never far off.
const FLAT_OUT_CALL: u64 = 16 * 1024;
/// At a set rate, how far behind its schedule (a slow call, a busy CPU) the
/// sender may catch up; beyond that the lost time is let go rather than made
/// up in one burst.
const MAX_LAG: f64 = 0.02;
/// The longest nap between checks of `stop` and the progress clock.
const MAX_NAP: Duration = Duration::from_millis(50);
/// The device the program is held attached to, in a namespace of its own.
const HOLD: &str = "hold";

/// What to send.
pub struct Setup<'a> {
    pub dev: &'a Iface,
    pub frame: &'a [u8],
    pub udp_offset: usize,
    /// Destination ports to cycle through; the template carries the first.
    pub dst_ports: (u16, u16),
}

/// How much and how fast.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Frames per second; None sends as fast as the CPU allows.
    pub pps: Option<f64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Time between calls of the progress callback.
    pub interval: Duration,
}

pub struct Generator<'obj> {
    skel: TrafficgenSkel<'obj>,
    frame: Vec<u8>,
    /// struct xdp_md for the run: the frame "arrives" on the interface, so
    /// XDP_TX sends it out of there.
    ctx: XdpMd,
    // Dropped in this order: the link detaches, then the namespace goes.
    _hold_link: OwnedFd,
    _hold_ns: OwnedFd,
}

impl<'obj> Generator<'obj> {
    pub fn new(setup: &Setup<'_>, storage: &'obj mut MaybeUninit<OpenObject>) -> Result<Self> {
        let mut open = TrafficgenSkelBuilder::default()
            .open(storage)
            .context("opening the trafficgen program")?;
        let config = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("no .rodata"))?;
        config.udp_offset = u32::try_from(setup.udp_offset).context("UDP offset")?;
        let (first, last) = setup.dst_ports;
        config.port_first = first;
        config.port_count = u32::from(last.saturating_sub(first)) + 1;
        let skel = logging::load("the trafficgen program", || open.load())?;
        let (hold_link, hold_ns) = hold(skel.progs.xdp_trafficgen.as_fd())?;
        Ok(Generator {
            skel,
            frame: setup.frame.to_vec(),
            ctx: attach::test_run_ctx(setup.frame, setup.dev.index),
            _hold_link: hold_link,
            _hold_ns: hold_ns,
        })
    }

    /// The id of the generator program, for tracing it with bpftool.
    pub fn prog_id(&self) -> Result<u32> {
        Program::id_from_fd(self.skel.progs.xdp_trafficgen.as_fd())
            .context("asking for xdp_trafficgen's id")
    }

    /// Runs of the program so far: frames handed to the device, which may
    /// still drop them.
    pub fn frames_sent(&self) -> Result<u64> {
        let bss = self.skel.maps.bss_data.as_deref().ok_or_else(|| anyhow!("no .bss"))?;
        // SAFETY: `frames_sent` is an aligned u64 inside the .bss mapping the
        // skeleton keeps for its whole life. The kernel writes it behind
        // Rust's back, hence the volatile read.
        Ok(unsafe { std::ptr::read_volatile(&raw const bss.frames_sent) })
    }

    /// Send `n` frames in one test run.
    pub fn send(&mut self, n: u32) -> Result<()> {
        let input = ProgramInput {
            data_in: Some(&self.frame),
            context_in: Some(skel::ctx_bytes(&mut self.ctx)),
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat: n,
            ..Default::default()
        };
        self.skel.progs.xdp_trafficgen.test_run(input).context("sending live frames")?;
        Ok(())
    }

    /// Send as `plan` says until it is done or `stop` says so; `progress`
    /// gets the program runs so far every `plan.interval`. Returns the
    /// program runs: frames handed to the device, not necessarily sent.
    pub fn run(
        &mut self,
        plan: &Plan,
        stop: impl Fn() -> bool,
        mut progress: impl FnMut(u64) -> Result<()>,
    ) -> Result<u64> {
        let base = self.frames_sent()?;
        let start = Instant::now();
        let mut pace = plan.pps.map(Pace::new);
        let mut reports = Ticker::new(plan.interval);
        loop {
            // The program's own count: exact even when a signal cut a run short.
            let done = self.frames_sent()? - base;
            let now = Instant::now();
            let elapsed = now.duration_since(start);
            let left = plan.count.map_or(u64::MAX, |c| c.saturating_sub(done));
            if plan.duration.is_some_and(|d| elapsed >= d) || stop() {
                break;
            }
            if reports.tick(now).is_some() {
                progress(done)?;
            }
            // At a rate, the last frame's slot runs out before the run ends:
            // 70 frames at 10 pps take 7 s.
            let step = pace.as_mut().map(|p| p.step(elapsed.as_secs_f64(), done));
            let n = match (step, left) {
                (None | Some(Step::Send(_)), 0) => break,
                (None, _) => FLAT_OUT_CALL.min(left),
                (Some(Step::Send(n)), _) => n.min(left),
                (Some(Step::Wait(secs)), _) => {
                    let nap = Duration::from_secs_f64(secs).min(reports.left(now)).min(MAX_NAP);
                    sleep(nap);
                    continue;
                }
            };
            // At most FLAT_OUT_CALL, so it fits.
            match self.send(n as u32) {
                Ok(()) => {}
                // A signal cuts a run short (EINTR); the loop's check decides.
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.frames_sent()? - base)
    }
}

/// What the sender does next at a set rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Send this many frames now.
    Send(u64),
    /// Nothing is due for this many seconds.
    Wait(f64),
}

/// The schedule of a set rate: frame k is due k/pps seconds after the
/// start, and one call sends about a millisecond's worth (one frame at low
/// rates), so no stretch of time sees much more than the rate. Not fewer:
/// each call sets up a page pool of its own (some 40 us here), which calls
/// of a few dozen frames would pay thousands of times a second.
#[derive(Debug)]
struct Pace {
    pps: f64,
    batch: u64,
    /// Seconds the schedule slipped: lag beyond MAX_LAG is let go.
    slip: f64,
}

impl Pace {
    fn new(pps: f64) -> Pace {
        let batch = (pps / 1000.0).round().clamp(1.0, FLAT_OUT_CALL as f64) as u64;
        Pace { pps, batch, slip: 0.0 }
    }

    /// The step at `elapsed` seconds into the run, with `done` frames sent.
    fn step(&mut self, elapsed: f64, done: u64) -> Step {
        let mut now = elapsed - self.slip;
        let at = done as f64 / self.pps;
        // Under a microsecond early is on time: no clock sleeps that short.
        if at - now > 1e-6 {
            return Step::Wait(at - now);
        }
        if now - at > MAX_LAG {
            self.slip += now - at - MAX_LAG;
            now = at + MAX_LAG;
        }
        // Frames due by now (frame 0 at once), and at least a batch.
        let due = (now * self.pps).floor() as u64 + 1;
        Step::Send(due.saturating_sub(done).clamp(self.batch, FLAT_OUT_CALL))
    }
}

fn interrupted(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<libbpf_rs::Error>()
            .is_some_and(|e| e.kind() == libbpf_rs::ErrorKind::Interrupted)
    })
}

/// Keep `prog` attached natively to a veth in a private network namespace.
/// A live-frames run of a program that no interface runs adds it to the
/// kernel's XDP dispatcher and removes it again, waiting out an RCU grace
/// period each time (about 25 ms); attached, it stays there. The namespace
/// lives as long as the returned fd, so nothing is left behind even if
/// xdpctl is killed.
fn hold(prog: BorrowedFd<'_>) -> Result<(OwnedFd, OwnedFd)> {
    // Only this short-lived thread enters the namespace.
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(OwnedFd, OwnedFd)> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .context("creating a private network namespace (needs CAP_SYS_ADMIN)")?;
                let ns = File::open("/proc/thread-self/ns/net")
                    .context("opening the private network namespace")?;
                netlink::add_veth(HOLD, "hold-peer")?;
                let index = if_nametoindex(HOLD).context("finding the private veth")?;
                let dev = Iface { name: HOLD.to_string(), index };
                let link = attach::attach_link(&dev, prog, Some(Mode::Native))
                    .context("attaching the generator to its private veth")?;
                Ok((link, ns.into()))
            })
            .join()
            .map_err(|_| anyhow!("the namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send times of `count` frames at `pps` when each call takes `cost`
    /// seconds plus `per_frame` a frame, on a clock that sleeps exactly; and
    /// when the last call returned.
    fn schedule(pps: f64, count: u64, cost: f64, per_frame: f64) -> (Vec<f64>, f64) {
        let mut pace = Pace::new(pps);
        let (mut t, mut sent) = (0.0, Vec::new());
        while (sent.len() as u64) < count {
            match pace.step(t, sent.len() as u64) {
                Step::Wait(secs) => {
                    assert!(secs > 0.0, "a wait of {secs} s");
                    t += secs;
                }
                Step::Send(n) => {
                    let n = n.min(count - sent.len() as u64);
                    sent.extend(std::iter::repeat_n(t, n as usize));
                    t += cost + per_frame * n as f64;
                }
            }
        }
        (sent, t)
    }

    #[test]
    fn low_rates_send_one_frame_at_a_time_evenly_spaced() {
        let (times, _) = schedule(10.0, 70, 0.0, 0.0);
        for (k, t) in times.iter().enumerate() {
            assert!((t - k as f64 / 10.0).abs() < 1e-9, "frame {k} at {t}");
        }
        // The first at once, the last after 6.9 s: 7 s for 70 at 10 pps.
        assert_eq!(times[0], 0.0);
    }

    #[test]
    fn high_rates_send_a_millisecond_worth_a_call() {
        let (times, _) = schedule(1e6, 100_000, 5e-6, 0.0);
        // 1000 frames a call, a call each millisecond.
        assert!(times.chunks(1000).all(|c| c.iter().all(|t| *t == c[0])));
        for (k, c) in times.chunks(1000).enumerate() {
            assert!((c[0] - k as f64 * 1e-3).abs() < 1e-9, "call {k} at {}", c[0]);
        }
    }

    #[test]
    fn a_stall_is_not_made_up_in_one_burst() {
        let mut pace = Pace::new(1000.0);
        assert_eq!(pace.step(0.0, 0), Step::Send(1));
        // One second asleep: 1000 frames late, but only MAX_LAG's worth goes out.
        let Step::Send(n) = pace.step(1.0, 1) else { panic!("frames are due") };
        assert_eq!(n, (MAX_LAG * 1000.0).round() as u64 + 1);
        // Then the rate again from there.
        assert!(matches!(pace.step(1.0, 1 + n), Step::Wait(w) if (w - 1e-3).abs() < 1e-9));
    }

    #[test]
    fn a_rate_above_what_the_calls_manage_sends_flat_out() {
        // 5 us a frame: at most 200 kpps, asked for 1 Mpps. No time is
        // spent waiting: 200000 frames take their 1 s and the calls' cost.
        let (_, end) = schedule(1e6, 200_000, 10e-6, 5e-6);
        assert!(end < 1.01, "{end}");
    }

    #[test]
    fn no_second_holds_much_more_than_the_rate() {
        // Calls that take a while now and then: the catch-up stays bounded.
        for pps in [10.0, 333.0, 4000.0, 250_000.0] {
            let mut pace = Pace::new(pps);
            let (mut t, mut sent) = (0.0, Vec::new());
            let total = (pps * 5.0) as u64;
            let mut i = 0u64;
            while (sent.len() as u64) < total {
                i += 1;
                match pace.step(t, sent.len() as u64) {
                    Step::Wait(secs) => t += secs,
                    Step::Send(n) => {
                        sent.extend(std::iter::repeat_n(t, n as usize));
                        // Every 97th call stalls for 0.3 s.
                        t += if i % 97 == 0 { 0.3 } else { 1e-6 };
                    }
                }
            }
            // The most frames in any one second (times are in order).
            let (mut end, mut most) = (0, 0);
            for (i, start) in sent.iter().enumerate() {
                while end < sent.len() && sent[end] < start + 1.0 {
                    end += 1;
                }
                most = most.max(end - i);
            }
            let bound = pps + (pps * MAX_LAG).ceil() + pps / 1000.0 + 1.0;
            assert!(most as f64 <= bound, "{pps} pps: {most} frames in one second");
        }
    }
}
