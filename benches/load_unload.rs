//! Wall time of `xdpctl load` + `xdpctl unload` against `ip link set dev X
//! xdpgeneric obj ... sec xdp.frags` + `xdpgeneric off` and against `xdp-loader
//! load -m skb` + `unload --all`, same object, same veth, runs interleaved
//! (the order rotating), means compared. Wall time is dominated by the kernel
//! (an RCU grace period in the XDP dispatcher on attach and again on detach),
//! so the CPU time both spend (children's rusage) is reported beside it. Means,
//! not medians: each wait lasts one or two 4 ms ticks, and the median of such
//! a two-humped sum jumps by a tick from run to run.
//! Run by `make bench` (needs root).

use std::time::Instant;

mod common;

use anyhow::{Context, Result};
use common::lab::{self, LinkGuard, Netns, Veth};
use common::{sh, Goal, Mean, Row};
use nix::sys::resource::{getrusage, UsageWho};

const RUNS: usize = 60;
const WARMUP: usize = 3;
/// The object the skeleton embeds, as build.rs wrote it.
const OBJECT: &str = concat!(env!("OUT_DIR"), "/xdp_prog_kern.bpf.o");

fn main() -> Result<()> {
    let xdpctl = common::xdpctl();
    let lab = Lab::new()?;
    let dev = lab.veth.as_str();

    let ours = || -> Result<()> {
        sh(&xdpctl, &["-q", "load", "--dev", dev, "--skb-mode"])?;
        sh(&xdpctl, &["-q", "unload", "--dev", dev])
    };
    let ip = || -> Result<()> {
        sh("ip", &["link", "set", "dev", dev, "xdpgeneric", "obj", OBJECT, "sec", "xdp.frags"])?;
        sh("ip", &["link", "set", "dev", dev, "xdpgeneric", "off"])
    };
    // Without freplace (EPERM here) libxdp falls back to attaching the
    // program alone, as ip does.
    let loader = || -> Result<()> {
        sh("xdp-loader", &["load", "-m", "skb", dev, OBJECT, "-n", "xdp_pass"])?;
        sh("xdp-loader", &["unload", dev, "--all"])
    };
    let tools: [(&str, &dyn Fn() -> Result<()>); 3] = [
        ("xdpctl load --skb-mode + xdpctl unload", &ours),
        ("ip link set xdpgeneric obj ... sec xdp.frags + xdpgeneric off", &ip),
        ("xdp-loader load -m skb + xdp-loader unload --all", &loader),
    ];

    // (wall ms, CPU ms) of each pair, per tool.
    let mut times = vec![Vec::new(); tools.len()];
    for i in 0..WARMUP + RUNS {
        // Rotate which goes first, so drift and order effects hit all alike.
        for k in 0..tools.len() {
            let t = (i + k) % tools.len();
            let cpu0 = children_cpu_ms()?;
            let start = Instant::now();
            (tools[t].1)()?;
            let wall = start.elapsed().as_secs_f64() * 1e3;
            let cpu = children_cpu_ms()? - cpu0;
            if i >= WARMUP {
                times[t].push((wall, cpu));
            }
        }
    }
    let wall: Vec<Mean> = times.iter().map(|t| Mean::of(t.iter().map(|x| x.0))).collect();
    let cpu: Vec<Mean> = times.iter().map(|t| Mean::of(t.iter().map(|x| x.1))).collect();
    println!(
        "## load + unload ({RUNS} interleaved runs, mean ± standard error; skb mode on a veth; \
         ratios to xdpctl's)\n"
    );
    println!("| command pair | wall ms | wall ratio | CPU ms | CPU ratio |");
    println!("|---|---:|---:|---:|---:|");
    for ((name, _), (w, c)) in tools.iter().zip(wall.iter().zip(&cpu)) {
        println!(
            "| {name} | {w} | {:.3} | {c} | {:.3} |",
            w.mean / wall[0].mean,
            c.mean / cpu[0].mean
        );
    }
    println!();
    // The goal is against the faster peer, in wall time and in CPU time.
    let faster = |m: &[Mean]| if m[1].mean <= m[2].mean { 1 } else { 2 };
    let short = ["xdpctl", "ip link", "xdp-loader"];
    let (fw, fc) = (faster(&wall), faster(&cpu));
    common::record(
        "load_unload",
        &[
            Row::new("load_ms", "load + unload, skb mode, wall time", "ms")
                .figures(wall[0].mean, short[fw], wall[fw].mean)
                .goal(Goal::AtMost(0.9), RUNS),
            Row::new("load_ms", "load + unload, skb mode, CPU time", "ms")
                .figures(cpu[0].mean, short[fc], cpu[fc].mean)
                .goal(Goal::AtMost(0.9), RUNS),
        ],
    )
}

/// User + system time of all waited-for children so far.
fn children_cpu_ms() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    Ok(ms(usage.user_time()) + ms(usage.system_time()))
}

impl std::fmt::Display for Mean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ± {:.2}", self.mean, self.stderr)
    }
}

/// A veth pair of our own (peer in its own netns), removed on drop, with
/// whatever `ip` and `xdp-loader` leave under bpffs (see common::ToolDirs).
/// Fields drop in order: the pins, the pair, the namespace, the tools' dirs.
struct Lab {
    veth: String,
    _pins: PinDir,
    _pair: LinkGuard,
    _ns: Netns,
    _tool_dirs: common::ToolDirs,
}

impl Lab {
    fn new() -> Result<Lab> {
        let tool_dirs = common::ToolDirs::snapshot();
        let name = lab::unique("xbench");
        let ns = Netns::add(&name)?;
        Veth { name: &name, peer: "veth0", peer_ns: Some(&name), ..Veth::default() }.add()?;
        let pair = LinkGuard { ns: None, name: name.clone() };
        sh("ip", &["link", "set", "dev", &name, "up"])?;
        let pins = PinDir(format!("/sys/fs/bpf/{name}"));
        Ok(Lab { veth: name, _pins: pins, _pair: pair, _ns: ns, _tool_dirs: tool_dirs })
    }
}

/// xdpctl's pin directory of the interface, removed on drop.
struct PinDir(String);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
