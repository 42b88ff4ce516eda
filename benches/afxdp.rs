//! AF_XDP packet rates: `xdpctl afxdp` against the C reference
//! (benches/ref/xsk_ref.c: advanced03's user-space side on libxdp's xsk API, echo
//! switched on, loading the same xdp_sock object), in copy mode, with the
//! program native and skb, busy-polling, 64 frames a pass.
//!
//! Traffic is 64-byte ICMPv6 echo requests sent flat out by `xdpctl
//! trafficgen`'s generator out of one veth end into the other. `drop` is the rxdrop rate (frames that reached user space per
//! second, --drop); `echo` the replies sent per second. The sender runs on
//! CPU 0 (and with it the veth's receive path), the tools on CPU 1. Rounds
//! alternate the tools; medians are compared.
//! Run by `make bench` (needs root, libxdp-dev).

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

mod common;

use common::frame::{mac_text, ping6};
use common::lab::{self, LinkGuard, Veth};
use common::{sh, Proc};
use xdpctl::io::trafficgen::{Generator, Plan};

const SECONDS: f64 = 2.0;
const ROUNDS: usize = 7;
const GEN: &str = "gen";
const CAP: &str = "cap";
const GEN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CAP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SENDER_CPU: usize = 0;
const TOOL_CPU: &str = "1";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Xdpctl,
    Reference,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Work {
    Drop,
    Echo,
}

#[derive(Clone, Copy, Debug)]
struct Trial {
    sent_pps: f64,
    rx_pps: f64,
    tx_pps: f64,
}

impl Trial {
    /// The rate a workload is judged by.
    fn rate(&self, work: Work) -> f64 {
        match work {
            Work::Drop => self.rx_pps,
            Work::Echo => self.tx_pps,
        }
    }
}

struct Bench {
    xdpctl: String,
    reference: String,
    xsk_obj: String,
    gen: Generator<'static>,
}

fn main() -> Result<()> {
    let env =
        |k: &str| std::env::var(k).with_context(|| format!("{k} is unset (make bench sets it)"));
    let canonical = |p: String| -> Result<String> {
        Ok(std::fs::canonicalize(&p)
            .with_context(|| format!("{p}: build it first"))?
            .to_string_lossy()
            .into_owned())
    };
    let ref_obj = env("XDPCTL_BENCH_REF")?;
    let xdpctl = canonical(common::xdpctl())?;
    let reference = canonical(env("XDPCTL_BENCH_XSK_REF")?)?;
    let xsk_obj = canonical(env("XDPCTL_BENCH_XSK_OBJ")?)?;
    let (_pair, gen_ifindex) = lab()?;
    common::pin_to_cpu(SENDER_CPU)?;
    let mut progs = common::Programs::load(&ref_obj)?;
    // The replies end in a native XDP drop on the generator end.
    let _drop = progs.take("ref_drop")?.attach_xdp(gen_ifindex as i32).context("drop on gen")?;
    let gen = common::generator(GEN, &echo_request())?;
    let mut bench = Bench { xdpctl, reference, xsk_obj, gen };

    println!(
        "## AF_XDP, copy mode, busy-polling: packets per second through user space \
         (64-byte ICMPv6 echo requests sent flat out into a veth, {SECONDS} s per trial, \
         median of {ROUNDS} alternating rounds)"
    );
    println!();
    println!(
        "| work | program | xdpctl kpps, each round | C reference kpps, each round \
         | xdpctl median | C median | ratio: geometric mean of the rounds' (range) \
         | offered kpps (median) |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|");
    // XDPCTL_BENCH_ONLY=echo-native (say) runs one row, XDPCTL_BENCH_ROUNDS=N
    // changes the rounds: for profiling and for checking a difference.
    let only = std::env::var("XDPCTL_BENCH_ONLY").ok();
    let rounds = match std::env::var("XDPCTL_BENCH_ROUNDS") {
        Ok(n) => n.parse().context("XDPCTL_BENCH_ROUNDS")?,
        Err(_) => ROUNDS,
    };
    let mut rows = Vec::new();
    for work in [Work::Drop, Work::Echo] {
        for mode in ["native", "skb"] {
            let row = format!("{}-{mode}", if work == Work::Drop { "drop" } else { "echo" });
            if only.as_ref().is_some_and(|o| *o != row) {
                continue;
            }
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for round in 0..rounds {
                let order = if round % 2 == 0 {
                    [Tool::Xdpctl, Tool::Reference]
                } else {
                    [Tool::Reference, Tool::Xdpctl]
                };
                for tool in order {
                    let t = bench.trial(tool, mode, work)?;
                    eprintln!("{work:?} {mode} round {round}: {tool:?} {t:?}");
                    match tool {
                        Tool::Xdpctl => ours.push(t),
                        Tool::Reference => theirs.push(t),
                    }
                }
            }
            let each = |v: &[Trial]| {
                v.iter()
                    .map(|t| format!("{:.0}", t.rate(work) / 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let med = |v: &[Trial], f: &dyn Fn(&Trial) -> f64| common::median(v.iter().map(f));
            let (m_ours, m_theirs) =
                (med(&ours, &|t| t.rate(work)), med(&theirs, &|t| t.rate(work)));
            let offered = med(&[ours.clone(), theirs.clone()].concat(), &|t| t.sent_pps);
            // Each round's two trials ran back to back: their ratio shares the
            // VM's conditions, which drift between rounds.
            let ratios: Vec<f64> =
                ours.iter().zip(&theirs).map(|(a, b)| a.rate(work) / b.rate(work)).collect();
            let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
            let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
            println!(
                "| {} | {mode} | {} | {} | {:.0} | {:.0} | {geo:.2} ({lo:.2}–{hi:.2}) | {:.0} |",
                match work {
                    Work::Drop => "rxdrop (--drop), frames received",
                    Work::Echo => "echo, replies sent",
                },
                each(&ours),
                each(&theirs),
                m_ours / 1e3,
                m_theirs / 1e3,
                offered / 1e3
            );
            let case = match work {
                Work::Drop => format!("--drop (rxdrop), frames received, {mode} mode"),
                Work::Echo => format!("echo, replies sent, {mode} mode"),
            };
            rows.push(
                common::Row::new("afxdp_mpps", case, "Mpps")
                    .figures(m_ours / 1e6, "C on libxdp's xsk API", m_theirs / 1e6)
                    .ratio(geo)
                    .goal(common::Goal::AtLeast(1.0), rounds),
            );
        }
    }
    common::record("afxdp", &rows)?;
    println!();
    println!(
        "rxdrop: a veth receives on the sending CPU, so the kernel's copy into the UMEM \
         shares CPU 0 with the sender; both tools take every frame that arrives (received \
         = offered), and the ratio is the sender's run-to-run spread. echo: in copy mode \
         each reply is an skb built and sent inside sendto(2) on the tool's CPU, at most \
         32 a call. The reference (as the tutorial) calls sendto once a pass of 64 \
         requests, so half its replies find the TX ring full and are dropped; xdpctl \
         kicks until the pass's replies are out and answers every request it takes."
    );
    println!();
    Ok(())
}

impl Bench {
    fn trial(&mut self, tool: Tool, mode: &str, work: Work) -> Result<Trial> {
        let mut run = self.start(tool, mode, work)?;
        sleep(Duration::from_millis(100));
        let (sent, secs) = self.send()?;
        sleep(Duration::from_millis(200));
        let (status, out, err) = run.stop()?;
        if !status.success() {
            bail!("{tool:?} failed ({status}): {err}");
        }
        let v: Value = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("{tool:?} printed no counts: {out}"))?;
        let count = |path: &[&str]| {
            path.iter().fold(&v, |v, k| &v[*k]).as_u64().with_context(|| format!("{path:?} in {v}"))
        };
        let (rx, tx) = match tool {
            Tool::Xdpctl => (count(&["rx", "packets"])?, count(&["tx", "packets"])?),
            Tool::Reference => (count(&["rx_packets"])?, count(&["tx_packets"])?),
        };
        Ok(Trial {
            sent_pps: sent as f64 / secs,
            rx_pps: rx as f64 / secs,
            tx_pps: tx as f64 / secs,
        })
    }

    /// Start a tool on CPU 1 and wait until it receives; an AF_XDP queue
    /// can stay busy for a moment after the previous socket closed.
    fn start(&self, tool: Tool, mode: &str, work: Work) -> Result<Proc> {
        let args: Vec<&str> = match tool {
            Tool::Xdpctl => {
                let mut a = vec![self.xdpctl.as_str(), "--json", "afxdp", "--dev", CAP, "--copy"];
                a.extend(["--mode", mode, "--interval", "3600"]);
                if work == Work::Drop {
                    a.push("--drop");
                }
                a
            }
            Tool::Reference => vec![
                self.reference.as_str(),
                CAP,
                self.xsk_obj.as_str(),
                mode,
                if work == Work::Drop { "drop" } else { "echo" },
            ],
        };
        let ready = if tool == Tool::Xdpctl { "Ctrl-C stops" } else { "ready" };
        let mut tries = 0;
        loop {
            match Proc::start(TOOL_CPU, &args, ready) {
                Ok(r) => return Ok(r),
                Err(e) if tries < 50 && busy(&e) => sleep(Duration::from_millis(100)),
                Err(e) => return Err(e.context(format!("{tool:?}: {}", args.join(" ")))),
            }
            tries += 1;
        }
    }

    /// Frames out of the generator end as fast as it goes, for SECONDS.
    fn send(&mut self) -> Result<(u64, f64)> {
        let plan = Plan {
            duration: Some(Duration::from_secs_f64(SECONDS)),
            interval: Duration::from_secs(3600),
            ..Plan::default()
        };
        let start = Instant::now();
        let sent = self.gen.run(&plan, || false, |_| Ok(()))?;
        Ok((sent, start.elapsed().as_secs_f64()))
    }
}

/// Whether a tool failed to start because the queue was still taken.
fn busy(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    text.contains("busy") || text.contains("already has")
}

/// A veth pair in a network namespace of this process's own (gone with the
/// process), and the generator end's ifindex. GRO on the receiving end lets
/// live frames in when its program runs in skb mode.
fn lab() -> Result<(LinkGuard, u32)> {
    lab::private_netns(false)?;
    let (gen_mac, cap_mac) = (mac_text(GEN_MAC), mac_text(CAP_MAC));
    let veth = Veth {
        name: GEN,
        mac: Some(&gen_mac),
        peer: CAP,
        peer_mac: Some(&cap_mac),
        ..Veth::default()
    };
    let pair = veth.add_up()?;
    sh("ethtool", &["-K", CAP, "gro", "on"])?;
    let index = nix::net::if_::if_nametoindex(GEN).with_context(|| format!("ifindex of {GEN}"))?;
    Ok((pair, index))
}

/// A 64-byte ICMPv6 echo request from gen to cap, its checksum valid.
fn echo_request() -> Vec<u8> {
    let addr = |last| {
        let mut a = [0u8; 16];
        (a[0], a[15]) = (0xfd, last);
        a
    };
    ping6(1).src6(addr(1)).dst6(addr(2)).src_mac(GEN_MAC).dst_mac(CAP_MAC).pad_to(64).bytes()
}
