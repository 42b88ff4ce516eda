//! ns per packet of each shipped program under BPF_PROG_TEST_RUN, against the
//! same work written as plain C (bench/xdp_ref.bpf.c) and a no-op program.
//! Run by `make bench` (needs root); prints a markdown table.
//!
//! The figure is the kernel's own (it stops its clock while the test task is
//! preempted; wall time here moves in 4 ms scheduler ticks). It comes in whole
//! ns, a 3% step at this size, so each pair is measured back to back in many
//! rounds and the per-round ratios averaged: drift between rounds cancels, and
//! round-to-round noise dithers the whole-ns steps into a finer mean.

use std::mem::MaybeUninit;

mod common;

use anyhow::{Context, Result};
use common::Mean;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Object, ObjectBuilder, ProgramInput, ProgramMut};
use xdpctl::skel::xdp_prog::XdpProgKernSkelBuilder;

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 60;

fn main() -> Result<()> {
    let ref_path = std::env::var("XDPCTL_BENCH_REF").context(
        "XDPCTL_BENCH_REF must name the compiled bench/xdp_ref.bpf.c (make bench does this)",
    )?;
    let mut storage = MaybeUninit::uninit();
    let skel = XdpProgKernSkelBuilder::default().open(&mut storage)?.load()?;
    let reference: Object = ObjectBuilder::default().open_file(&ref_path)?.load()?;
    let find = |name: &str| -> Result<ProgramMut<'_>> {
        reference
            .progs_mut()
            .find(|p| p.name() == name)
            .with_context(|| format!("{name} in {ref_path}"))
    };

    // Ethernet + IPv4, 64 bytes: the smallest frame on a wire.
    let mut frame = vec![0u8; 64];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;

    let pairs = [
        ("xdp_pass", &skel.progs.xdp_pass, find("ref_pass")?),
        ("xdp_drop", &skel.progs.xdp_drop, find("ref_drop")?),
        ("xdp_abort", &skel.progs.xdp_abort, find("ref_abort")?),
    ];
    let noop = find("noop")?;

    // Per pair: (ours, plain C, no-op) ns of each round.
    let mut samples = vec![Vec::new(); pairs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, ours, plain)) in pairs.iter().enumerate() {
            let o = ns_per_run(ours, &frame)?;
            let p = ns_per_run(plain, &frame)?;
            let n = ns_per_run(&noop, &frame)?;
            samples[i].push((o, p, n));
        }
    }

    println!(
        "## BPF_PROG_TEST_RUN, ns per packet (64-byte frame, {REPEAT} runs x {ROUNDS} rounds)\n"
    );
    println!("| program | xdpctl ns | plain C ns | no-op ns | xdpctl / plain C | xdpctl / no-op |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, _, _)) in pairs.iter().enumerate() {
        let s = &samples[i];
        let (o, p, n) = (
            median(s.iter().map(|t| t.0)),
            median(s.iter().map(|t| t.1)),
            median(s.iter().map(|t| t.2)),
        );
        let vs_plain = Mean::of(s.iter().map(|t| t.0 / t.1));
        let vs_noop = Mean::of(s.iter().map(|t| t.0 / t.2));
        println!("| {name} | {o:.0} | {p:.0} | {n:.0} | {vs_plain} | {vs_noop} |");
    }
    println!();
    Ok(())
}

fn ns_per_run(prog: &ProgramMut<'_>, frame: &[u8]) -> Result<f64> {
    let input = ProgramInput { data_in: Some(frame), repeat: REPEAT, ..Default::default() };
    let out = prog.test_run(input).context("BPF_PROG_TEST_RUN (root needed)")?;
    Ok(out.duration.as_nanos() as f64)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl std::fmt::Display for Mean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} ± {:.3}", self.mean, self.stderr)
    }
}
