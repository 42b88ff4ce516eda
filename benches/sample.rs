//! Capture rate with zero loss: `xdpctl sample -w` against `tcpdump -w`, on
//! the same veth, with the same traffic, both writing to tmpfs with 8 MiB of
//! buffer. Traffic is 64-byte frames sent at a fixed rate by `xdpctl
//! trafficgen`'s generator out of one veth end into the other. For each
//! tool the highest rate at which it writes every frame sent and reports no
//! drop is searched for (doubling, then bisecting), in alternating rounds;
//! medians are compared. For tcpdump the capture end runs a no-op XDP
//! program, so frames take the same path into the stack in both runs.
//! A third search captures through an xdpctl program (xdp_pass, loaded for
//! each trial): the stats helper's sampling path and the perf buffers
//! `sample` opens on it.
//! Run by `make bench` (needs root). XDPCTL_BENCH_DEBUG=1 prints every
//! trial; XDPCTL_BENCH_TRIAL=xdpctl|tcpdump|nothing,PPS runs just one (for
//! profiling with perf).

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::{Link, ProgramMut};
use serde_json::Value;

mod common;

use common::lab::{self, LinkGuard, RemoveDir, Veth};
use common::Proc;
use xdpctl::io::trafficgen::{Generator, Plan};
use xdpctl::net::frame::{self, UdpSpec};

/// Seconds of traffic per trial: long enough to overflow an 8 MiB buffer
/// (about 90 000 small samples) at a rate 5% above what drains it.
const SECONDS: f64 = 2.0;
const ROUNDS: usize = 5;
const BUFFER_KIB: &str = "8192";
/// Lowest rate tried, and the ceiling where the search stops.
const START_PPS: f64 = 200_000.0;
const CEILING_PPS: f64 = 6_400_000.0;
/// Bisection steps after the first failure: a 2x bracket down to ~9%.
const BISECT: usize = 3;
const FRAME_LEN: usize = 64;
const GEN: &str = "gen";
const CAP: &str = "cap";
/// The sender, and with it the veth's receive path (its NAPI runs on the
/// sending CPU), on one CPU; the capture processes on the other.
const SENDER_CPU: usize = 0;
const READER_CPU: &str = "1";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Xdpctl,
    /// `xdpctl sample` through xdp_pass, loaded by xdpctl on the capture end.
    Through,
    Tcpdump,
    /// No capture, the no-op program on the capture end: the sender's own
    /// limit with the receive path every trial shares.
    Nothing,
}

/// What one trial saw.
#[derive(Debug)]
struct Trial {
    written: u64,
    dropped: u64,
    sent_pps: f64,
}

/// The highest clean rate of one search.
#[derive(Debug, Clone, Copy)]
struct Best {
    pps: f64,
    capped: bool,
}

struct Bench {
    xdpctl: String,
    gen: Generator<'static>,
    noop: ProgramMut<'static>,
    cap_ifindex: u32,
    dir: std::path::PathBuf,
}

fn main() -> Result<()> {
    let ref_path = std::env::var("XDPCTL_BENCH_REF").context(
        "XDPCTL_BENCH_REF must name the compiled benches/ref/xdp_ref.bpf.c (make bench does this)",
    )?;
    let xdpctl = common::xdpctl();
    let xdpctl = std::fs::canonicalize(&xdpctl)
        .with_context(|| format!("{xdpctl}: build it first"))?
        .to_string_lossy()
        .into_owned();
    let (_pair, cap_ifindex) = lab()?;
    common::pin_to_cpu(SENDER_CPU)?;
    let mut progs = common::Programs::load(&ref_path)?;
    let dir = std::path::PathBuf::from(format!("/dev/shm/xdpctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kept = dir.clone();
    let _cleanup = RemoveDir(&kept);
    // To a MAC nobody has: the stack drops the frames early, after both
    // captures have seen them.
    let frame = frame::udp(&UdpSpec {
        src_mac: "02:00:00:00:00:01".parse()?,
        dst_mac: "02:00:00:00:00:99".parse()?,
        src_ip: "198.18.0.1".parse()?,
        dst_ip: "198.18.0.2".parse()?,
        src_port: 9,
        dst_port: 9,
        size: FRAME_LEN,
    })?;
    let mut bench = Bench {
        xdpctl,
        gen: common::generator(GEN, &frame)?,
        noop: progs.take("noop")?,
        cap_ifindex,
        dir,
    };

    // One trial, for profiling: XDPCTL_BENCH_TRIAL=xdpctl|tcpdump,PPS
    if let Ok(spec) = std::env::var("XDPCTL_BENCH_TRIAL") {
        let (tool, pps) = spec.split_once(',').context("XDPCTL_BENCH_TRIAL=tool,pps")?;
        let tool = match tool {
            "tcpdump" => Tool::Tcpdump,
            "nothing" => Tool::Nothing,
            "through" => Tool::Through,
            _ => Tool::Xdpctl,
        };
        let pps: f64 = pps.parse().context("pps")?;
        let trial = bench.trial(tool, pps, (pps * SECONDS) as u64)?;
        eprintln!("{tool:?} at {pps:.0}: {trial:?}");
        return Ok(());
    }
    let mut results: Vec<(Tool, Best)> = Vec::new();
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [Tool::Xdpctl, Tool::Through, Tool::Tcpdump, Tool::Nothing]
        } else {
            [Tool::Nothing, Tool::Tcpdump, Tool::Through, Tool::Xdpctl]
        };
        for tool in order {
            let best = bench.max_lossless(tool)?;
            eprintln!("round {round}: {tool:?} {:.0} pps with zero loss", best.pps);
            results.push((tool, best));
        }
    }
    let of = |tool| -> Vec<Best> { results.iter().filter(|r| r.0 == tool).map(|r| r.1).collect() };
    let (ours, theirs, none) = (of(Tool::Xdpctl), of(Tool::Tcpdump), of(Tool::Nothing));
    let (m_ours, m_theirs, m_none) = (median(&ours), median(&theirs), median(&none));
    let through = of(Tool::Through);
    let m_through = median(&through);
    let mark = |b: &Best| if b.capped { "≥ " } else { "" };
    let rounds = |v: &[Best]| {
        v.iter().map(|b| format!("{}{:.0}", mark(b), b.pps / 1e3)).collect::<Vec<_>>().join(", ")
    };
    // What each capture adds per frame on the receiving CPU, when the sender
    // (whose CPU also receives) was the limit in both runs.
    let cost = |b: &Best| {
        if b.capped && m_none.capped {
            format!("{:.0}", 1e9 / b.pps - 1e9 / m_none.pps)
        } else {
            "–".to_string()
        }
    };
    println!(
        "## Capture to a file: highest rate with zero loss (64-byte frames over a veth, \
         {SECONDS} s per trial, {BUFFER_KIB} KiB buffers, median of {ROUNDS} alternating searches)"
    );
    println!();
    println!(
        "| capture | kpps, each search | median kpps | ratio | ns per frame on the receiving CPU |"
    );
    println!("|---|---|---:|---:|---:|");
    let row = |name: &str, v: &[Best], m: &Best| {
        println!(
            "| {name} | {} | {}{:.0} | {:.2} | {} |",
            rounds(v),
            mark(m),
            m.pps / 1e3,
            m.pps / m_theirs.pps,
            cost(m)
        );
    };
    row("xdpctl sample -w", &ours, &m_ours);
    row("xdpctl sample -w, through xdp_pass", &through, &m_through);
    row("tcpdump -w", &theirs, &m_theirs);
    row("none (no-op XDP, no capture)", &none, &m_none);
    let capped = |b: &Best| if b.capped { " (the sender's ceiling)" } else { "" };
    common::record(
        "sample",
        &[
            common::Row::new(
                "sample_pps",
                format!("highest rate with zero loss, 64-byte frames{}", capped(&m_ours)),
                "kpps",
            )
            .figures(
                m_ours.pps / 1e3,
                format!("tcpdump -w{}", capped(&m_theirs)),
                m_theirs.pps / 1e3,
            )
            .goal(common::Goal::AtLeast(1.5), ROUNDS),
            common::Row::new(
                "sample_pps",
                format!(
                    "through xdp_pass (the program's sampling path), highest rate with zero loss, \
                 64-byte frames{}",
                    capped(&m_through)
                ),
                "kpps",
            )
            .figures(
                m_through.pps / 1e3,
                format!("tcpdump -w{}", capped(&m_theirs)),
                m_theirs.pps / 1e3,
            )
            .goal(common::Goal::None, ROUNDS),
        ],
    )?;
    println!();
    println!(
        "≥: nothing lost at the most the sender reached. The veth receives on the \
         sending CPU, so a capture's kernel-side cost lowers that ceiling; the last \
         column is that cost (time per frame minus the no-capture run's)."
    );
    println!();
    Ok(())
}

impl Bench {
    /// Double the rate until a trial loses frames, then bisect (geometric
    /// midpoints) between the last clean rate and the first lossy one. The
    /// result is the rate the sender reached in the best clean trial, marked
    /// `capped` when the sender, not the capture, set the limit.
    fn max_lossless(&mut self, tool: Tool) -> Result<Best> {
        let mut best = Best { pps: 0.0, capped: false };
        let mut rate = START_PPS;
        let mut bad = None;
        while rate <= CEILING_PPS {
            let (clean, sent_pps) = self.lossless(tool, rate)?;
            if !clean {
                bad = Some(rate);
                break;
            }
            best.pps = sent_pps;
            if sent_pps < rate * 0.95 {
                // The sender is flat out: a higher target changes nothing.
                best.capped = true;
                return Ok(best);
            }
            rate *= 2.0;
        }
        let Some(mut bad) = bad else { return Ok(best) };
        let mut good = best.pps;
        for _ in 0..BISECT {
            let mid = if good > 0.0 { (good * bad).sqrt() } else { bad / 2.0 };
            let (clean, sent_pps) = self.lossless(tool, mid)?;
            if clean {
                (good, best.pps) = (mid, sent_pps);
            } else {
                bad = mid;
            }
        }
        Ok(best)
    }

    /// Whether a trial at `pps` wrote every frame with no drop reported,
    /// and the rate the sender reached.
    fn lossless(&mut self, tool: Tool, pps: f64) -> Result<(bool, f64)> {
        let total = (pps * SECONDS) as u64;
        let trial = self.trial(tool, pps, total)?;
        if std::env::var_os("XDPCTL_BENCH_DEBUG").is_some() {
            eprintln!("{tool:?} at {pps:.0} pps: sent {total}, {trial:?}");
        }
        Ok((trial.dropped == 0 && trial.written == total, trial.sent_pps))
    }

    fn trial(&mut self, tool: Tool, pps: f64, total: u64) -> Result<Trial> {
        let file = self.dir.join("trial.pcap");
        let file = file.to_str().context("utf-8 path")?;
        // The no-op program makes the veth take frames in for tcpdump as the
        // sampler does for xdpctl.
        let _noop: Option<Link> = match tool {
            Tool::Tcpdump | Tool::Nothing => Some(self.noop.attach_xdp(self.cap_ifindex as i32)?),
            Tool::Xdpctl | Tool::Through => None,
        };
        let _loaded = match tool {
            Tool::Through => Some(Loaded::new(&self.xdpctl)?),
            _ => None,
        };
        let mut capture = match tool {
            Tool::Nothing => {
                let sent_pps = self.send(pps, total)?;
                return Ok(Trial { written: total, dropped: 0, sent_pps });
            }
            Tool::Xdpctl => Proc::start(
                READER_CPU,
                &[
                    &self.xdpctl,
                    "--json",
                    "sample",
                    "--dev",
                    CAP,
                    "-m",
                    "native",
                    "-B",
                    BUFFER_KIB,
                    "-w",
                    file,
                ],
                "Ctrl-C stops",
            )?,
            Tool::Through => Proc::start(
                READER_CPU,
                &[&self.xdpctl, "--json", "sample", "--dev", CAP, "-B", BUFFER_KIB, "-w", file],
                "Ctrl-C stops",
            )?,
            Tool::Tcpdump => Proc::start(
                READER_CPU,
                &["tcpdump", "-i", CAP, "-n", "-Z", "root", "-B", BUFFER_KIB, "-w", file],
                "listening on",
            )?,
        };
        let sent_pps = self.send(pps, total)?;
        // Let the readers catch up before they are stopped: tcpdump hands a
        // partly filled buffer block to user space only after its 1 s
        // timeout; xdpctl drains its ring every 50 ms.
        sleep(Duration::from_millis(if tool == Tool::Tcpdump { 1500 } else { 300 }));
        let (_, stdout, stderr) = capture.stop()?;
        let _ = std::fs::remove_file(file);
        if matches!(tool, Tool::Xdpctl | Tool::Through) {
            let v: Value = serde_json::from_str(stdout.trim())
                .with_context(|| format!("xdpctl summary: {stdout}{stderr}"))?;
            let field = |k: &str| v[k].as_u64().with_context(|| format!("{k} in {v}"));
            return Ok(Trial { written: field("written")?, dropped: field("lost")?, sent_pps });
        }
        let count = |what: &str| -> Result<u64> {
            stderr
                .lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("'{what}' in tcpdump's output: {stderr}"))
        };
        Ok(Trial {
            written: count("packets captured")?,
            dropped: count("dropped by kernel")?,
            sent_pps,
        })
    }

    /// `total` frames out of the generator end at `pps`; the rate reached.
    fn send(&mut self, pps: f64, total: u64) -> Result<f64> {
        let plan = Plan {
            pps: Some(pps),
            count: Some(total),
            interval: Duration::from_secs(3600),
            ..Plan::default()
        };
        let start = Instant::now();
        let sent = self.gen.run(&plan, || false, |_| Ok(()))?;
        Ok(sent as f64 / start.elapsed().as_secs_f64())
    }
}

/// xdp_pass loaded by xdpctl on the capture end, in native mode; unloaded
/// when dropped.
struct Loaded {
    xdpctl: String,
}

impl Loaded {
    fn new(xdpctl: &str) -> Result<Loaded> {
        let args = ["-q", "load", "--dev", CAP, "--progname", "xdp_pass", "--mode", "native"];
        let status = std::process::Command::new(xdpctl)
            .args(args)
            .status()
            .context("running xdpctl load")?;
        anyhow::ensure!(status.success(), "xdpctl {}: {status}", args.join(" "));
        Ok(Loaded { xdpctl: xdpctl.to_string() })
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new(&self.xdpctl).args(["-q", "unload", "--dev", CAP]).status();
    }
}

/// A veth pair in a network namespace of this process's own (it goes when
/// the process does); IPv6 off so nothing but the benchmark's frames flow.
/// The capture end's ifindex.
fn lab() -> Result<(LinkGuard, u32)> {
    lab::private_netns(false)?;
    let pair = Veth { name: GEN, peer: CAP, ..Veth::default() }.add_up()?;
    let index = nix::net::if_::if_nametoindex(CAP).with_context(|| format!("ifindex of {CAP}"))?;
    Ok((pair, index))
}

fn median(v: &[Best]) -> Best {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.pps.total_cmp(&b.pps));
    v[v.len() / 2]
}
