//! Frames per second a veth drops in XDP: xdp_drop loaded by `xdpctl load`
//! against the plain C drop program of benches/ref/xdp_ref.bpf.c attached with
//! `ip link`, native and skb mode, same veth, same traffic. The traffic is
//! `xdpctl trafficgen`'s generator, flat out, on CPU 0; a veth receives on
//! the sending CPU, so the drop program's cost shows as a lower rate.
//! Rounds alternate who goes first; medians and the geometric mean of each
//! round's ratio are reported. Run by `make bench` (needs root).

use std::mem::MaybeUninit;
use std::time::Duration;

mod common;

use anyhow::{Context, Result};
use common::lab::{self, LinkGuard, Veth};
use common::{ip, median, sh, Goal, Row};
use nix::net::if_::if_nametoindex;
use xdpctl::io::trafficgen::{Generator, Plan, Setup};
use xdpctl::net::frame::{self, UdpSpec};
use xdpctl::net::iface::Iface;

const ROUNDS: usize = 7;
const SECONDS: f64 = 1.0;

fn main() -> Result<()> {
    let reference = std::env::var("XDPCTL_BENCH_REF").context(
        "XDPCTL_BENCH_REF must name the compiled benches/ref/xdp_ref.bpf.c (make bench)",
    )?;
    let xdpctl = common::xdpctl();
    let xdpctl = std::fs::canonicalize(&xdpctl)
        .with_context(|| format!("{xdpctl}: build it first"))?
        .to_string_lossy()
        .into_owned();
    // Pins go under /sys/fs/bpf/xdpctl-netns-<cookie>/<interface> (this namespace is
    // not the initial one), and unload removes them.
    let (gen_name, cap) =
        (format!("vdg{}", std::process::id()), format!("vdc{}", std::process::id()));
    let _tool_dirs = common::ToolDirs::snapshot();
    let _pair = lab(&gen_name, &cap)?;
    let gen_dev = Iface { index: if_nametoindex(gen_name.as_str())?, name: gen_name.clone() };
    let spec = UdpSpec {
        src_mac: "02:00:00:00:00:01".parse()?,
        dst_mac: "02:00:00:00:00:02".parse()?,
        src_ip: "198.18.0.1".parse()?,
        dst_ip: "198.18.0.2".parse()?,
        src_port: 9,
        dst_port: 9,
        size: 64,
    };
    let frame = frame::udp(&spec)?;
    let setup = Setup {
        dev: &gen_dev,
        frame: &frame,
        udp_offset: frame::udp_offset(spec.dst_ip),
        dst_ports: (9, 9),
    };
    common::pin_to_cpu(0)?;
    let mut storage = MaybeUninit::uninit();
    let mut gen = Generator::new(&setup, &mut storage)?;
    let plan = Plan {
        duration: Some(Duration::from_secs_f64(SECONDS)),
        interval: Duration::from_secs(3600),
        ..Plan::default()
    };

    println!(
        "## XDP drop on a veth: frames per second (64-byte UDP frames from trafficgen, flat out, \
         {SECONDS} s per trial, {ROUNDS} alternating rounds)\n"
    );
    println!("| mode | xdpctl load xdp_drop, Mpps each round | ip link + C drop, Mpps each round | xdpctl median | C median | ratio: geometric mean (range) |");
    println!("|---|---|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for mode in ["native", "skb"] {
        // skb mode: the veth hands XDP frames on only with GRO on (or a native program).
        sh("ethtool", &["-K", &cap, "gro", if mode == "skb" { "on" } else { "off" }])?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for first in [round % 2 == 0, round % 2 != 0] {
                if first {
                    let skb = if mode == "skb" { "--skb-mode" } else { "--native-mode" };
                    sh(&xdpctl, &["-q", "load", "--dev", &cap, "--progsec", "xdp_drop", skb])?;
                    let r = rate(&mut gen, &plan);
                    sh(&xdpctl, &["-q", "unload", "--dev", &cap])?;
                    ours.push(r?);
                } else {
                    let how = if mode == "skb" { "xdpgeneric" } else { "xdpdrv" };
                    ip(&[
                        "link", "set", "dev", &cap, how, "obj", &reference, "program", "ref_drop",
                    ])?;
                    let r = rate(&mut gen, &plan);
                    ip(&["link", "set", "dev", &cap, how, "off"])?;
                    theirs.push(r?);
                }
            }
        }
        let each = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        let (mo, mt) = (median(ours.iter().copied()), median(theirs.iter().copied()));
        println!(
            "| {mode} | {} | {} | {mo:.2} | {mt:.2} | {geo:.2} ({lo:.2}–{hi:.2}) |",
            each(&ours),
            each(&theirs)
        );
        rows.push(
            Row::new("veth_drop_mpps", format!("xdp_drop, {mode} mode"), "Mpps")
                .figures(mo, "C drop via ip link", mt)
                .ratio(geo)
                .goal(Goal::AtLeast(0.95), ROUNDS),
        );
    }
    println!();
    common::record("veth_drop", &rows)
}

/// Mpps sent (and, with a drop program on the peer, dropped) in one trial.
fn rate(gen: &mut Generator<'_>, plan: &Plan) -> Result<f64> {
    let start = std::time::Instant::now();
    let sent = gen.run(plan, || false, |_| Ok(()))?;
    Ok(sent as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// A veth pair in a network namespace of this process's own (it goes when
/// the process does), IPv6 off so nothing but the bench's frames flow.
fn lab(gen: &str, cap: &str) -> Result<LinkGuard> {
    lab::private_netns(false)?;
    let (mac, peer_mac) = (Some("02:00:00:00:00:01"), Some("02:00:00:00:00:02"));
    Veth { name: gen, mac, peer: cap, peer_mac, ..Veth::default() }.add_up()
}
