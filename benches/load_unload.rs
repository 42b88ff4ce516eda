//! Wall time of `xdpctl load` + `xdpctl unload` against `ip link set dev X
//! xdpgeneric obj ... sec xdp` + `xdpgeneric off`, same object, same veth,
//! runs interleaved, medians compared. Wall time is dominated by the kernel
//! (an RCU grace period in the XDP dispatcher on attach and again on detach),
//! so the CPU time both spend (children's rusage) is reported beside it.
//! Run by `make bench` (needs root).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
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
    let (ow, pw) = (median(t_ours.iter().map(|t| t.0)), median(t_ip.iter().map(|t| t.0)));
    let (oc, pc) = (median(t_ours.iter().map(|t| t.1)), median(t_ip.iter().map(|t| t.1)));
    println!("## load + unload ({RUNS} interleaved runs, median; skb mode on a veth)\n");
    println!("| command pair | wall ms | wall ratio | CPU ms | CPU ratio |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| xdpctl load --skb-mode + xdpctl unload | {ow:.2} | {:.3} | {oc:.2} | {:.3} |",
        ow / pw,
        oc / pc
    );
    println!(
        "| ip link set xdpgeneric obj ... sec xdp + xdpgeneric off | {pw:.2} | 1.000 | {pc:.2} | 1.000 |"
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

fn sh(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A veth pair of our own (peer in its own netns), removed on drop.
struct Lab {
    ns: String,
    veth: String,
}

impl Lab {
    fn new(name: &str) -> Result<Lab> {
        let lab = Lab { ns: name.to_string(), veth: name.to_string() };
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
    }
}
