//! A traffic source that needs no pktgen: BPF_PROG_TEST_RUN in live-frames
//! mode runs `xdp_trafficgen` on copies of a template frame, and its XDP_TX
//! sends each one out of the interface named in the run's context, 64 frames
//! a batch.

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

use crate::iface::Iface;
use crate::logging;
use crate::netlink;
use crate::skel::trafficgen::{TrafficgenSkel, TrafficgenSkelBuilder};
use crate::xdp::{self, Mode};

/// Frames per test run when sending flat out: a few milliseconds' worth, so
/// Ctrl-C and progress lines are never far off.
const FLAT_OUT_CALL: u64 = 16 * 1024;
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
    ctx: [u8; 24],
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
            ctx: xdp::test_run_ctx(setup.frame, setup.dev.index),
            _hold_link: hold_link,
            _hold_ns: hold_ns,
        })
    }

    /// The id of the generator program, for tracing it with bpftool.
    pub fn prog_id(&self) -> Result<u32> {
        Program::id_from_fd(self.skel.progs.xdp_trafficgen.as_fd())
            .context("asking for xdp_trafficgen's id")
    }

    /// Frames the program has sent out so far.
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
            context_in: Some(&mut self.ctx),
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat: n,
            ..Default::default()
        };
        self.skel.progs.xdp_trafficgen.test_run(input).context("sending live frames")?;
        Ok(())
    }

    /// Send as `plan` says until it is done or `stop` says so; `progress`
    /// gets the frames sent so far every `plan.interval`. Returns the frames
    /// sent.
    pub fn run(
        &mut self,
        plan: &Plan,
        stop: impl Fn() -> bool,
        mut progress: impl FnMut(u64) -> Result<()>,
    ) -> Result<u64> {
        let base = self.frames_sent()?;
        let start = Instant::now();
        let mut asked = 0u64;
        let mut next_report = start + plan.interval;
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(start);
            let left = plan.count.map_or(u64::MAX, |c| c.saturating_sub(asked));
            if left == 0 || plan.duration.is_some_and(|d| elapsed >= d) || stop() {
                break;
            }
            if now >= next_report {
                progress(self.frames_sent()? - base)?;
                next_report = (next_report + plan.interval).max(now);
            }
            let n = match plan.pps {
                None => FLAT_OUT_CALL.min(left),
                Some(pps) => {
                    // Calls of about a millisecond's worth, at least one batch.
                    let chunk = ((pps / 1000.0) as u64).clamp(64, FLAT_OUT_CALL);
                    let due = (elapsed.as_secs_f64() * pps) as u64;
                    if due < asked + chunk.min(left) {
                        sleep(Duration::from_micros(100));
                        continue;
                    }
                    (due - asked).min(4 * chunk).min(left)
                }
            };
            match self.send(n as u32) {
                Ok(()) => asked += n,
                // A signal cuts a run short (EINTR); the loop's check decides.
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.frames_sent()? - base)
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
                let link = xdp::attach_link(&dev, prog, Some(Mode::Native))
                    .context("attaching the generator to its private veth")?;
                Ok((link, ns.into()))
            })
            .join()
            .map_err(|_| anyhow!("the namespace thread panicked"))?
    })
}
