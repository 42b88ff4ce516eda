//! Time of one `xdpctl stats` sample (every action's record, summed over
//! CPUs, from the pinned xdp_stats_map) against a C program doing the same
//! with one batch lookup (benches/ref/stats_ref.c). Both time the same number of
//! back-to-back reads of the same map; rounds alternate who goes first.
//! Run by `make bench` (needs root).

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

mod common;

use anyhow::{bail, Context, Result};
use common::{median, Goal, Row};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use xdpctl::obj::skel::xdp_prog::XdpProgKernSkelBuilder;
use xdpctl::obj::statsmap::StatsMap;

const READS: u32 = 20_000;
const ROUNDS: usize = 9;

/// Removes the pin when dropped.
struct Pin(PathBuf);

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() -> Result<()> {
    let reference = std::env::var("XDPCTL_BENCH_STATS_REF").context(
        "XDPCTL_BENCH_STATS_REF must name the built benches/ref/stats_ref.c (make bench)",
    )?;
    let mut storage = MaybeUninit::uninit();
    let mut open = XdpProgKernSkelBuilder::default().open(&mut storage)?;
    // Only the map is wanted: load no program.
    for mut prog in open.open_object_mut().progs_mut() {
        prog.set_autoload(false);
    }
    let mut skel = open.load().context("creating xdp_stats_map (root needed)")?;
    let pin = Pin(PathBuf::from(format!("/sys/fs/bpf/xdpctl-bench-stats-{}", std::process::id())));
    skel.maps.xdp_stats_map.pin(&pin.0).context("pinning xdp_stats_map")?;
    let path = pin.0.to_str().context("utf-8 pin path")?.to_string();

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            ours.push(xdpctl_read_ns(&pin.0)?);
            theirs.push(c_read_ns(&reference, &path)?);
        } else {
            theirs.push(c_read_ns(&reference, &path)?);
            ours.push(xdpctl_read_ns(&pin.0)?);
        }
    }
    let (o, c) = (median(ours.iter().copied()), median(theirs.iter().copied()));
    let ratio = median(ours.iter().zip(&theirs).map(|(a, b)| a / b));
    println!(
        "## One stats sample: every action's record summed over CPUs ({READS} reads x {ROUNDS} \
         alternating rounds, medians)\n"
    );
    println!("| reader | µs per sample | ratio |");
    println!("|---|---:|---:|");
    println!("| xdpctl (StatsMap::read, one batch lookup) | {:.2} | {ratio:.2} |", o / 1e3);
    println!("| C, bpf_map_lookup_batch (benches/ref/stats_ref.c) | {:.2} | 1.00 |", c / 1e3);
    println!();
    common::record(
        "stats_read",
        &[Row::new("stats_read_us", "one sample, 5 actions x all CPUs", "µs")
            .figures(o / 1e3, "C batch lookup", c / 1e3)
            .ratio(ratio)
            .goal(Goal::AtMost(1.2), ROUNDS)],
    )
}

/// Mean ns of one StatsMap::read, as `xdpctl stats` makes per sample.
fn xdpctl_read_ns(pin: &std::path::Path) -> Result<f64> {
    let mut map = StatsMap::open(pin)?;
    let start = Instant::now();
    let mut sink = 0u64;
    for _ in 0..READS {
        sink = sink.wrapping_add(map.read()?[2].rx_packets);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(READS);
    std::hint::black_box(sink);
    Ok(ns)
}

fn c_read_ns(reference: &str, pin: &str) -> Result<f64> {
    let out = Command::new(reference)
        .args([pin, &READS.to_string()])
        .output()
        .with_context(|| format!("running {reference}"))?;
    if !out.status.success() {
        bail!("{reference}: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().context("the reference's ns per read")
}
