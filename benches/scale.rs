//! Scale: what xdpctl costs on a host with many interfaces (issue 18). One
//! network namespace of our own grows to 10, 100 and 1000 veth pairs, one
//! end of each running xdp_pass loaded by xdpctl; at each size, `xdpctl
//! status` against `bpftool net` in the same namespace (medians of
//! interleaved runs). `load` + `unload` on one more interface beside the
//! 1000 against the same before any was loaded, and one sample of `stats
//! --all` over the 1000. The namespace is deleted at the
//! end without waiting for the kernel to free its devices.
//! Run by `make bench` (needs root).
//!
//! For work on status alone: `XDPCTL_SCALE_SIZES=10,100` picks the sizes,
//! `XDPCTL_SCALE_STATUS_ONLY=1` skips load/unload and stats (and records
//! nothing), `XDPCTL_SCALE_BASELINE=<xdpctl>` interleaves a second build's
//! status in the same runs, so before and after share one machine state.

use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use anyhow::{bail, Context, Result};
use common::crowd::Crowd;
use common::{median, sh, Goal, Mean, Row};

const SIZES: [usize; 3] = [10, 100, 1000];
/// Interleaved runs of status and bpftool net per size.
const STATUS_RUNS: usize = 50;
/// load + unload pairs, with others loaded and without.
const PAIR_RUNS: usize = 30;
const STATS_RUNS: usize = 10;
const WARMUP: usize = 3;

fn main() -> Result<()> {
    let xdpctl = common::xdpctl();
    let tag = format!("xs{}", std::process::id() % 100_000);
    let _tool_dirs = common::ToolDirs::snapshot();
    let lab = Crowd::new(&tag)?;
    // load + unload on one more interface: first with nothing else loaded
    // anywhere in the lab, at the end beside 1000 loaded. Not interleaved
    // (the 1000 cannot come and go between runs); the means are compared.
    let status_only = std::env::var_os("XDPCTL_SCALE_STATUS_ONLY").is_some();
    let baseline = std::env::var("XDPCTL_SCALE_BASELINE").ok();
    let sizes = sizes()?;
    let spare = lab.spare()?;
    let pair = || -> Result<()> {
        lab.within(|| {
            sh(&xdpctl, &["-q", "load", "--dev", &spare, "--skb-mode"])?;
            sh(&xdpctl, &["-q", "unload", "--dev", &spare])
        })
    };
    let idle = if status_only { Vec::new() } else { timed(PAIR_RUNS, &pair)? };

    let mut rows = Vec::new();
    let mut table = Vec::new();
    for size in sizes {
        lab.grow(size, &xdpctl)?;
        let times = lab.within(|| {
            let status = || run_quiet(&xdpctl, &["-q", "status"]);
            let bpftool = || run_quiet("bpftool", &["net"]);
            let base = || run_quiet(baseline.as_deref().unwrap_or(&xdpctl), &["-q", "status"]);
            match baseline {
                Some(_) => interleaved(STATUS_RUNS, &[&status, &bpftool, &base]),
                None => interleaved(STATUS_RUNS, &[&status, &bpftool]),
            }
        })?;
        let mut medians = times.into_iter().map(|t| median(t.into_iter()));
        let (ours, peer) = (medians.next().unwrap_or(0.0), medians.next().unwrap_or(0.0));
        table.push(format!("| {size} | {ours:.2} | {peer:.2} | {:.2} |", ours / peer));
        if let Some(base) = medians.next() {
            table.push(format!(
                "| {size} (baseline) | {base:.2} | {peer:.2} | {:.2} |",
                base / peer
            ));
        }
        rows.push(
            Row::new("scale_status_ms", format!("status, {size} interfaces loaded"), "ms")
                .figures(ours, "bpftool net", peer)
                .goal(Goal::AtMost(1.0), STATUS_RUNS),
        );
    }
    println!(
        "## status at scale (median of {STATUS_RUNS} interleaved runs; veth pairs in one \
         namespace, xdp_pass on one end of each)\n"
    );
    println!("| interfaces loaded | xdpctl status ms | bpftool net ms | ratio |");
    println!("|---:|---:|---:|---:|");
    for line in &table {
        println!("{line}");
    }
    println!();
    if status_only {
        return Ok(());
    }

    let busy = timed(PAIR_RUNS, &pair)?;
    let (busy, idle) = (Mean::of(busy.into_iter()), Mean::of(idle.into_iter()));
    println!(
        "## load + unload beside 1000 loaded interfaces ({PAIR_RUNS} runs each, before and \
         after loading the 1000)\n"
    );
    println!("| case | wall ms (mean ± standard error) |");
    println!("|---|---:|");
    println!("| 1000 others loaded | {:.2} ± {:.2} |", busy.mean, busy.stderr);
    println!("| none loaded | {:.2} ± {:.2} |", idle.mean, idle.stderr);
    println!("| ratio | {:.3} |\n", busy.mean / idle.mean);
    rows.push(
        Row::new("scale_load_ms", "load + unload, skb mode, 1000 others loaded", "ms")
            .figures(busy.mean, "the same, none loaded", idle.mean)
            .goal(Goal::AtMost(1.1), PAIR_RUNS),
    );

    // One sample of stats --all over the 1000, against stats of one.
    let all = lab.within(|| {
        let first = format!("{tag}a0");
        let all =
            || run_quiet(&xdpctl, &["--json", "stats", "--all", "--count", "1", "-i", "0.01"]);
        let one = || {
            run_quiet(&xdpctl, &["--json", "stats", "--dev", &first, "--count", "1", "-i", "0.01"])
        };
        interleaved(STATS_RUNS, &[&all, &one])
    })?;
    let mut medians = all.into_iter().map(|t| median(t.into_iter()));
    let (all, one) = (medians.next().unwrap_or(0.0), medians.next().unwrap_or(0.0));
    println!(
        "## stats --all over 1000 interfaces (one sample, --interval 0.01; median of \
         {STATS_RUNS})\n"
    );
    println!("| command | ms |");
    println!("|---|---:|");
    println!("| stats --all, 1000 interfaces | {all:.2} |");
    println!("| stats --dev, one interface | {one:.2} |\n");
    rows.push(
        Row::new("scale_stats_all_ms", "stats --all, one sample, 1000 interfaces", "ms")
            .figures(all, "stats --dev of one", one)
            .goal(Goal::None, STATS_RUNS),
    );
    common::record("scale", &rows)
}

/// Run `cmd` with its output discarded; fail if it fails.
fn run_quiet(cmd: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !status.success() {
        bail!("{cmd} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Wall ms of `f` over `runs` runs after a warm-up.
fn timed(runs: usize, f: &dyn Fn() -> Result<()>) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..WARMUP + runs {
        let start = Instant::now();
        f()?;
        if i >= WARMUP {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

/// Wall ms of each command over `runs` rounds after a warm-up, the order
/// rotating.
fn interleaved(runs: usize, tools: &[&dyn Fn() -> Result<()>]) -> Result<Vec<Vec<f64>>> {
    let n = tools.len();
    let mut times = vec![Vec::new(); n];
    for i in 0..WARMUP + runs {
        for k in 0..n {
            let t = (i + k) % n;
            let start = Instant::now();
            (tools[t])()?;
            if i >= WARMUP {
                times[t].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times)
}

/// The sizes to grow to: `XDPCTL_SCALE_SIZES` (ascending, comma-separated)
/// or all of `SIZES`.
fn sizes() -> Result<Vec<usize>> {
    let Ok(list) = std::env::var("XDPCTL_SCALE_SIZES") else {
        return Ok(SIZES.to_vec());
    };
    let sizes = list
        .split(',')
        .map(|s| s.trim().parse::<usize>().with_context(|| format!("XDPCTL_SCALE_SIZES: {s:?}")))
        .collect::<Result<Vec<_>>>()?;
    if sizes.is_empty() || sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("XDPCTL_SCALE_SIZES: ascending sizes, comma-separated");
    }
    Ok(sizes)
}
