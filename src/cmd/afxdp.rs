//! `xdpctl afxdp`: receive an interface queue's frames in user space through
//! an AF_XDP socket (advanced03). xdp_sock redirects each frame to the socket
//! bound to its queue; xdpctl answers ICMPv6 echo requests from the UMEM and
//! sends the replies back out through the TX ring, or with --drop only counts.
//! The program is attached through a bpf_link, so it goes with xdpctl.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, Program};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::error::Exit;
use crate::escape;
use crate::io::xsk::{self, Copy, Counts, KernelCounts, Verdict, Xsk};
use crate::net::echo::icmp6_echo_reply;
use crate::net::ethtool;
use crate::net::iface::{self, Iface};
use crate::net::netlink;
use crate::obj::logging;
use crate::obj::maps;
use crate::obj::skel::af_xdp::{AfXdpKernSkel, AfXdpKernSkelBuilder};
use crate::obj::skel::{XskQueueCounts, XSK_MAX_QUEUES};
use crate::output::{self, Output};
use crate::sampler::{self, Rate, Ticker};
use crate::stop::Stop;
use crate::xdp::attach::{self, ModeRequest};
use crate::xdp::ifstate::prog_name;

/// The longest poll(2) sleep, so Ctrl-C is seen promptly.
const POLL_MAX: Duration = Duration::from_millis(100);
/// Busy passes between looks at the clock and for Ctrl-C.
const CHECK_EVERY: u32 = 64;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to receive on
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Receive queue to bind the socket to
    #[arg(short = 'Q', long, value_name = "Q", default_value_t = 0)]
    pub queue: u32,
    /// Force copy mode (-c is --count, as in every command)
    #[arg(long, conflicts_with = "zero_copy")]
    pub copy: bool,
    /// Force zero-copy mode (needs driver support, which veth lacks)
    #[arg(short, long)]
    pub zero_copy: bool,
    /// Sleep in poll(2) when idle instead of busy-polling
    #[arg(short, long)]
    pub poll: bool,
    /// Where xdp_sock runs: native (driver), skb (generic), or auto
    #[arg(short, long, value_enum, default_value_t = ModeRequest::DEFAULT)]
    pub mode: ModeRequest,
    /// UMEM frames of 4096 bytes; the rings get half of them, up to 2048
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(64..=262_144))]
    pub frames: u32,
    /// Most frames handled per pass over the RX ring
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=2048))]
    pub batch: u32,
    /// Count and recycle every frame, answer nothing (rxdrop)
    #[arg(long)]
    pub drop: bool,
    /// Let every other frame through to the kernel, as the tutorial does
    #[arg(long)]
    pub every_other: bool,
    #[command(flatten)]
    pub sampling: sampler::Args,
}

/// The command line, checked against the interface before anything is made.
struct Plan {
    dev: Iface,
    mode: Option<attach::Mode>,
    xsk: xsk::Config,
}

fn plan(args: &Args) -> Result<Plan> {
    let dev = iface::resolve(&args.dev)?;
    let mode = match args.mode {
        ModeRequest::Hw => {
            bail!("--mode hw: AF_XDP needs the program on the host; use native, skb or auto")
        }
        m => m.fixed(),
    };
    let copy = match (args.copy, args.zero_copy) {
        (true, _) => Copy::Copy,
        (_, true) => Copy::ZeroCopy,
        _ => Copy::Auto,
    };
    if copy == Copy::ZeroCopy && mode == Some(attach::Mode::Skb) {
        bail!("--zero-copy needs the program in the driver: use --mode native (or auto)");
    }
    let queues = rx_queues(&dev)?;
    if args.queue >= queues {
        bail!(
            "--queue {}: {} has {} in use; `ethtool -l {1}` shows them",
            args.queue,
            dev.name,
            match queues {
                1 => "1 receive queue (0)".to_string(),
                n => format!("{n} receive queues (0-{})", n - 1),
            }
        );
    }
    if args.queue >= XSK_MAX_QUEUES {
        bail!("--queue {}: xdp_sock serves queues 0-{}", args.queue, XSK_MAX_QUEUES - 1);
    }
    xsk::check(args.frames, args.batch)?;
    Ok(Plan {
        dev,
        mode,
        xsk: xsk::Config {
            queue: args.queue,
            frames: args.frames,
            ring_size: xsk::ring_size(args.frames),
            batch: args.batch,
            copy,
        },
    })
}

/// Receive queues in use: ethtool's count where the driver gives one, else
/// netlink's (the most the device has).
fn rx_queues(dev: &Iface) -> Result<u32> {
    if let Some(n) = ethtool::rx_queues(&dev.name)
        .with_context(|| format!("asking ethtool for the channels of {}", dev.name))?
    {
        return Ok(n);
    }
    Ok(netlink::get_link(dev.index, None)?.rx_queues.unwrap_or(1))
}

/// Refuse an interface another program holds: this one needs it to itself.
fn check_free(dev: &Iface) -> Result<()> {
    if let Some(att) = attach::query(dev.index)?.first() {
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode); AF_XDP needs the \
             interface to itself: `xdpctl unload --dev {0}` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    Ok(())
}

fn load(every_other: bool, storage: &mut MaybeUninit<OpenObject>) -> Result<AfXdpKernSkel<'_>> {
    let mut open = AfXdpKernSkelBuilder::default()
        .open(storage)
        .context("opening the shipped AF_XDP object")?;
    let config = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("no .rodata"))?;
    config.every_other = u8::from(every_other);
    logging::load("the shipped xdp_sock", || open.load())
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let plan = plan(args)?;
    let stop = Stop::install()?;
    // Bound first: a queue that is taken or a mode the driver lacks fails
    // here, before anything is attached.
    let mut sock = Xsk::open(&plan.dev, &plan.xsk)?;
    check_free(&plan.dev)?;
    let mut storage = MaybeUninit::uninit();
    let skel = load(args.every_other, &mut storage)?;
    let dev = &plan.dev;
    let link = attach::attach_link(dev, skel.progs.xdp_sock.as_fd(), plan.mode)
        .with_context(|| Exit::attach(format!("attaching xdp_sock to {}", dev.name)))?;
    let key = plan.xsk.queue.to_ne_bytes();
    skel.maps
        .xsks_map
        .update(&key, &sock.fd().as_raw_fd().to_ne_bytes(), MapFlags::ANY)
        .context("putting the socket into xsks_map")?;
    if !out.quiet {
        let mode = attach::query(dev.index)?.first().map_or("?".into(), |a| a.mode.to_string());
        out.warn(&format!(
            "AF_XDP on {} queue {} ({} mode, program in {mode} mode); {}; Ctrl-C stops",
            escape::text(&dev.name),
            plan.xsk.queue,
            if sock.zero_copy() { "zero-copy" } else { "copy" },
            if args.drop { "dropping every frame" } else { "answering ICMPv6 echo requests" }
        ));
    }

    let mut report = Reporter::new(dev, plan.xsk.queue, &skel, out)?;
    let served = serve(&mut sock, &skel, args, &stop, &mut report);
    // Out of the map first, so frames arriving meanwhile reach the kernel.
    let removed = skel.maps.xsks_map.delete(&key).context("taking the socket out of xsks_map");
    drop(link);
    let last = report.sample(&sock, &skel, true);
    drop(sock);
    served?;
    removed?;
    report.print(&last?)
}

/// Receive and answer until a stop request or --count reports.
fn serve(
    sock: &mut Xsk,
    skel: &AfXdpKernSkel<'_>,
    args: &Args,
    stop: &Stop,
    report: &mut Reporter,
) -> Result<()> {
    let drop_all = args.drop;
    let handle = |frame: &mut [u8]| {
        if !drop_all && icmp6_echo_reply(frame) {
            Verdict::Transmit
        } else {
            Verdict::Recycle
        }
    };
    let mut ticker = Ticker::new(Duration::from_secs_f64(args.sampling.interval));
    let mut reports = 0u64;
    let mut passes = 0u32;
    loop {
        let got = sock.pass(handle);
        passes = passes.wrapping_add(1);
        if got > 0 && passes % CHECK_EVERY != 0 {
            continue;
        }
        if stop.requested() {
            return Ok(());
        }
        let now = Instant::now();
        if ticker.tick(now).is_some() {
            let s = report.sample(sock, skel, false)?;
            report.print(&s)?;
            reports += 1;
            if args.sampling.done(reports) {
                return Ok(());
            }
            continue;
        }
        if got == 0 {
            if args.poll {
                wait(sock, ticker.left(now).min(POLL_MAX))?;
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Sleep until the socket has frames or `timeout` passes.
fn wait(sock: &Xsk, timeout: Duration) -> Result<()> {
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::NONE);
    match poll(&mut [PollFd::new(sock.fd(), PollFlags::POLLIN)], timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e).context("waiting for frames"),
    }
}

/// One report: totals so far and rates since the last report (or, for the
/// final one, over the whole run); the sampler's envelope adds the time
/// and the period.
#[derive(Serialize, Debug)]
struct Report {
    ifname: String,
    ifindex: u32,
    queue: u32,
    /// xdp_sock's id and its XSKMAP's: both are gone once xdpctl is.
    prog_id: u32,
    xsks_map_id: u32,
    #[serde(skip)]
    period: f64,
    rx: Rate,
    tx: Rate,
    /// xdp_sock's counters of this queue: frames to the socket, to the kernel.
    redirected: u64,
    passed: u64,
    socket: KernelCounts,
    /// Replies given up because the TX ring was full.
    tx_ring_full: u64,
    #[serde(rename = "final")]
    last: bool,
}

struct Reporter {
    dev: Iface,
    queue: u32,
    prog_id: u32,
    xsks_map_id: u32,
    out: Output,
    start: Instant,
    at: Instant,
    prev: Counts,
}

impl Reporter {
    fn new(dev: &Iface, queue: u32, skel: &AfXdpKernSkel<'_>, out: Output) -> Result<Reporter> {
        let now = Instant::now();
        let prog_id =
            Program::id_from_fd(skel.progs.xdp_sock.as_fd()).context("asking for xdp_sock's id")?;
        let xsks_map_id = skel.maps.xsks_map.info().context("asking for xsks_map's id")?.info.id;
        Ok(Reporter {
            dev: dev.clone(),
            queue,
            prog_id,
            xsks_map_id,
            out,
            start: now,
            at: now,
            prev: Counts::default(),
        })
    }

    fn sample(&mut self, sock: &Xsk, skel: &AfXdpKernSkel<'_>, last: bool) -> Result<Report> {
        let now = Instant::now();
        let (since, prev) =
            if last { (self.start, Counts::default()) } else { (self.at, self.prev) };
        let period = now.duration_since(since).as_secs_f64().max(1e-9);
        let c = sock.counts;
        let prog = read_queue_counts(&skel.maps.xsk_counts, self.queue)?;
        (self.at, self.prev) = (now, c);
        Ok(Report {
            ifname: self.dev.name.clone(),
            ifindex: self.dev.index,
            queue: self.queue,
            prog_id: self.prog_id,
            xsks_map_id: self.xsks_map_id,
            period,
            rx: Rate::new((prev.rx_packets, prev.rx_bytes), (c.rx_packets, c.rx_bytes), period),
            tx: Rate::new((prev.tx_packets, prev.tx_bytes), (c.tx_packets, c.tx_bytes), period),
            redirected: prog.redirected,
            passed: prog.passed,
            socket: sock.kernel_counts()?,
            tx_ring_full: c.tx_ring_full,
            last,
        })
    }

    fn print(&self, s: &Report) -> Result<()> {
        if self.out.json {
            return self.out.json(&sampler::Sample::new(s.period, s));
        }
        if self.out.quiet && !s.last {
            return Ok(());
        }
        self.out.print(&text(s))
    }
}

/// The tutorial's two lines per report; the final one is a summary.
fn text(s: &Report) -> String {
    let line = |label: &str, r: &Rate| {
        format!(
            "{label:<10} {:>11} pkts ({:>10.0} pps) {:>11} Kbytes ({:>6.0} Mbits/s) period:{:.6}\n",
            r.packets,
            r.pps,
            r.bytes / 1000,
            r.bps / 1e6,
            s.period
        )
    };
    if s.last {
        let drops = s.socket.rx_dropped + s.tx_ring_full;
        return format!(
            "AF_XDP on {} queue {}: received {} ({} bytes), sent {} ({} bytes) in \
             {:.1} s; xdp_sock redirected {}, passed {}; {drops} dropped\n",
            escape::text(&s.ifname),
            s.queue,
            output::count(s.rx.packets, "packet"),
            s.rx.bytes,
            s.tx.packets,
            s.tx.bytes,
            s.period,
            s.redirected,
            s.passed
        );
    }
    format!("{}{}\n", line("AF_XDP RX:", &s.rx), line("       TX:", &s.tx))
}

/// xdp_sock's counters of `queue`, summed over CPUs.
fn read_queue_counts(map: &impl MapCore, queue: u32) -> Result<XskQueueCounts> {
    maps::sum(map, &queue.to_ne_bytes(), "xdp_sock's counters (xsk_counts)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_the_tutorials_two_lines() {
        let rate = Rate { packets: 20, bytes: 2360, pps: 10.0, bps: 9440.0 };
        let s = Report {
            ifname: "eth0".into(),
            ifindex: 2,
            queue: 0,
            prog_id: 1,
            xsks_map_id: 2,
            period: 2.0,
            rx: rate,
            tx: rate,
            redirected: 20,
            passed: 0,
            socket: KernelCounts::default(),
            tx_ring_full: 0,
            last: false,
        };
        let t = text(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("AF_XDP RX:"), "{t}");
        assert!(lines[0].contains(" 20 pkts (") && lines[0].contains("10 pps)"), "{t}");
        assert!(lines[1].starts_with("       TX:"), "{t}");
        assert!(lines[0].contains(" 2 Kbytes") && lines[0].contains("period:2.000000"), "{t}");
    }
}
