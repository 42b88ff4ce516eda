//! Wall time of `xdpctl load` + `xdpctl unload` against `ip link set dev X
//! xdpgeneric obj ... sec xdp` + `xdpgeneric off`, same object, same veth,
//! runs interleaved, means compared. Wall time is dominated by the kernel
//! (an RCU grace period in the XDP dispatcher on attach and again on detach),
//! so the CPU time both spend (children's rusage) is reported beside it. Means,
//! not medians: each wait lasts one or two 4 ms ticks, and the median of such
//! a two-humped sum jumps by a tick from run to run.
//! Run by `make bench` (needs root).

use std::process::Command;
use std::time::Instant;

mod common;

use anyhow::{Context, Result};
use common::{sh, Mean};
use nix::sys::resource::{getrusage, UsageWho};

const RUNS: usize = 60;
const WARMUP: usize = 3;
/// The object the skeleton embeds, as build.rs wrote it.
const OBJECT: &str = concat!(env!("OUT_DIR"), "/xdp_prog_kern.bpf.o");

fn main() -> Result<()> {
    let xdpctl = std::env::var("XDPCTL").unwrap_or_else(|_| "target/release/xdpctl".into());
    let lab = Lab::new(&format!("xbench{}", std::process::id() % 100_000))?;
    let dev = lab.veth.as_str();

    let ours = || -> Result<()> {
        sh(&xdpctl, &["-q", "load", "--dev", dev, "--skb-mode"])?;
        sh(&xdpctl, &["-q", "unload", "--dev", dev])
    };
    let ip = || -> Result<()> {
        sh("ip", &["link", "set", "dev", dev, "xdpgeneric", "obj", OBJECT, "sec", "xdp"])?;
        sh("ip", &["link", "set", "dev", dev, "xdpgeneric", "off"])
    };

    // (wall ms, CPU ms) per pair.
    let (mut t_ours, mut t_ip) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + RUNS {
        // Alternate which goes first, so drift hits both alike.
        let order: [(&dyn Fn() -> Result<()>, bool); 2] =
            if i % 2 == 0 { [(&ours, true), (&ip, false)] } else { [(&ip, false), (&ours, true)] };
        for (run, is_ours) in order {
            let cpu0 = children_cpu_ms()?;
            let start = Instant::now();
            run()?;
            let wall = start.elapsed().as_secs_f64() * 1e3;
            let cpu = children_cpu_ms()? - cpu0;
            if i >= WARMUP {
                if is_ours {
                    t_ours.push((wall, cpu))
                } else {
                    t_ip.push((wall, cpu))
                }
            }
        }
    }
    let (ow, pw) = (Mean::of(t_ours.iter().map(|t| t.0)), Mean::of(t_ip.iter().map(|t| t.0)));
    let (oc, pc) = (Mean::of(t_ours.iter().map(|t| t.1)), Mean::of(t_ip.iter().map(|t| t.1)));
    println!(
        "## load + unload ({RUNS} interleaved runs, mean ± standard error; skb mode on a veth)\n"
    );
    println!("| command pair | wall ms | wall ratio | CPU ms | CPU ratio |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| xdpctl load --skb-mode + xdpctl unload | {ow} | {:.3} | {oc} | {:.3} |",
        ow.mean / pw.mean,
        oc.mean / pc.mean
    );
    println!(
        "| ip link set xdpgeneric obj ... sec xdp + xdpgeneric off | {pw} | 1.000 | {pc} | 1.000 |"
    );
    println!();
    Ok(())
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

/// A veth pair of our own (peer in its own netns), removed on drop, with the
/// bpffs entries `ip` makes for itself on first use (removed if it made them).
struct Lab {
    ns: String,
    veth: String,
    ip_dirs_existed: bool,
}

/// What `ip ... obj` creates under bpffs: symlinks first, directories last.
const IP_BPFFS_ENTRIES: [&str; 4] =
    ["/sys/fs/bpf/ip", "/sys/fs/bpf/xdp", "/sys/fs/bpf/tc/globals", "/sys/fs/bpf/tc"];

impl Lab {
    fn new(name: &str) -> Result<Lab> {
        let ip_dirs_existed = std::path::Path::new("/sys/fs/bpf/tc").exists();
        let lab = Lab { ns: name.to_string(), veth: name.to_string(), ip_dirs_existed };
        sh("ip", &["netns", "add", &lab.ns])?;
        sh(
            "ip",
            &["link", "add", &lab.veth, "type", "veth", "peer", "name", "veth0", "netns", &lab.ns],
        )?;
        sh("ip", &["link", "set", "dev", &lab.veth, "up"])?;
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "dev", &self.veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/{}", self.veth));
        if !self.ip_dirs_existed {
            for entry in IP_BPFFS_ENTRIES {
                let _ = std::fs::remove_file(entry).or_else(|_| std::fs::remove_dir(entry));
            }
        }
    }
}
