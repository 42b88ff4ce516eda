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

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use anyhow::{bail, Context, Result};
use common::{median, sh, Goal, Mean, Row};
use nix::sched::{setns, CloneFlags};

const SIZES: [usize; 3] = [10, 100, 1000];
/// Interleaved runs of status and bpftool net per size.
const STATUS_RUNS: usize = 50;
/// load + unload pairs, with others loaded and without.
const PAIR_RUNS: usize = 30;
const STATS_RUNS: usize = 10;
const WARMUP: usize = 3;

fn main() -> Result<()> {
    let xdpctl = std::env::var("XDPCTL").unwrap_or_else(|_| "target/release/xdpctl".into());
    let tag = format!("xs{}", std::process::id() % 100_000);
    let home = File::open("/proc/self/ns/net").context("opening this network namespace")?;
    let lab = Lab::new(&tag, &home)?;
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

/// A network namespace of ours with veth pairs `<tag>a<i>`/`<tag>b<i>`;
/// on drop, the namespace is deleted (the kernel frees its devices in the
/// background) and xdpctl's pins and records for it go.
struct Lab<'h> {
    name: String,
    ns: File,
    home: &'h File,
    cookie: u64,
    pairs: std::cell::Cell<usize>,
    _tool_dirs: common::ToolDirs,
}

impl<'h> Lab<'h> {
    fn new(name: &str, home: &'h File) -> Result<Lab<'h>> {
        let tool_dirs = common::ToolDirs::snapshot();
        sh("ip", &["netns", "add", name])?;
        let ns = File::open(format!("/run/netns/{name}")).context("opening the lab namespace")?;
        let cookie = xdpctl::net::netns::cookie_of(&ns)?;
        Ok(Lab {
            name: name.to_string(),
            ns,
            home,
            cookie,
            pairs: std::cell::Cell::new(0),
            _tool_dirs: tool_dirs,
        })
    }

    /// Run `f` with this thread (and the commands it starts) in the lab.
    fn within<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        setns(self.ns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering the lab")?;
        let result = f();
        setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET).context("leaving the lab")?;
        result
    }

    /// Veth pairs up to `size`, made in one `ip -batch`, and xdp_pass
    /// loaded on the new `a` ends.
    fn grow(&self, size: usize, xdpctl: &str) -> Result<()> {
        let from = self.pairs.get();
        self.batch((from..size).map(|i| self.pair_commands(i)).collect())?;
        self.pairs.set(size);
        self.within(|| {
            for i in from..size {
                sh(xdpctl, &["-q", "load", "--dev", &format!("{}a{i}", self.name), "--skb-mode"])?;
            }
            Ok(())
        })
    }

    /// One more pair, nothing loaded; the name of its `a` end.
    fn spare(&self) -> Result<String> {
        self.batch(vec![format!("link add {0}s type veth peer name {0}t", self.name)])?;
        Ok(format!("{}s", self.name))
    }

    fn pair_commands(&self, i: usize) -> String {
        format!("link add {0}a{i} type veth peer name {0}b{i}", self.name)
    }

    fn batch(&self, lines: Vec<String>) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("running ip -batch")?;
        let mut stdin = child.stdin.take().context("ip's stdin")?;
        stdin.write_all(lines.join("\n").as_bytes()).context("writing to ip -batch")?;
        stdin.write_all(b"\n").context("writing to ip -batch")?;
        drop(stdin);
        let status = child.wait().context("waiting for ip -batch")?;
        if !status.success() {
            bail!("ip -batch failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Lab<'_> {
    fn drop(&mut self) {
        // Deleting the namespace returns at once; its devices (and the
        // programs attached to them) go in the background.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        // Our interfaces' pin directories, and xdpctl's records of them.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name
                    .strip_prefix(&self.name)
                    .is_some_and(|rest| rest == "s" || is_pair_end(rest));
                if ours {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let prefix = format!("n{}-i", self.cookie);
        if let Ok(entries) = std::fs::read_dir("/run/xdpctl") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(Path::new("/run/xdpctl").join(e.file_name()));
                }
            }
        }
    }
}

/// `a<digits>`: an end `grow` loaded.
fn is_pair_end(rest: &str) -> bool {
    rest.strip_prefix('a').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
