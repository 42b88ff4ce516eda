//! ns per packet of each shipped program under BPF_PROG_TEST_RUN, against the
//! same work written as plain C (benches/ref/xdp_ref.bpf.c) and a no-op program.
//! Run by `make bench` (needs root); prints a markdown table.
//!
//! The figure is the kernel's own (it stops its clock while the test task is
//! preempted; wall time here moves in 4 ms scheduler ticks). It comes in whole
//! ns, a 3% step at this size, so each pair is measured back to back in many
//! rounds (who goes first alternating) and the per-round ratios averaged:
//! drift between rounds cancels, and round-to-round noise dithers the whole-ns
//! steps into a finer mean.
//!
//! Each frame is built to take the path that does the program's real work:
//! a full parse for xdp_parser, a rewritten port for xdp_port_rewrite, and a
//! successful FIB lookup for xdp_router. The router needs a device with
//! routes and a neighbour: the bench moves itself into a network namespace of
//! its own and builds one there, so nothing outside changes and nothing is
//! left behind. Before any timing, each program's verdict is checked, and
//! ours and the plain C must leave the same bytes.
//!
//! The cost of the stats helper's sampling path while it is off (issue 20):
//! a few programs of bpf/xdp_prog_kern.bpf.c as built, against the same
//! source built with -DXDP_STATS_NO_SAMPLING, both compiled alike by
//! benches/run.sh (XDPCTL_BENCH_SAMPLING_OBJ, XDPCTL_BENCH_NOSAMPLING_OBJ).
//! Two loads of one object differ by several percent (where the kernel puts
//! each program, in memory and in the XDP dispatcher), more than that cost:
//! so each side is loaded COPIES times, the rounds take the copies in turn,
//! and a control row sets two copies of the same build against each other.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

mod common;

use anyhow::{anyhow, bail, ensure, Context, Result};
use common::frame::{tcp, udp, Frame, L4};
use common::lab::{self, Veth};
use common::{ip, median, Goal, Mean, Row};
use libbpf_rs::btf::types::{DataSec, Var};
use libbpf_rs::btf::Btf;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    AsRawLibbpf, MapCore, MapFlags, Object, ObjectBuilder, ProgramInput, ProgramMut,
    RingBufferBuilder,
};
use xdpctl::io::xsk;
use xdpctl::net::iface;
use xdpctl::obj::skel::af_xdp::AfXdpKernSkelBuilder;
use xdpctl::obj::skel::sample_prog::XdpSamplePktsKernSkelBuilder;
use xdpctl::obj::skel::trafficgen::TrafficgenSkelBuilder;
use xdpctl::obj::skel::xdp_prog::XdpProgKernSkelBuilder;
use xdpctl::obj::skel::RedirectTarget;
use xdpctl::obj::skel::{ctx_bytes, XdpMd};
use xdpctl::xdp::attach::test_run_ctx as xdp_md;

const REPEAT: u32 = 200_000;
const ROUNDS: usize = 60;
/// Loads of each build in the sampling-off rows, taken in turn by rounds.
const COPIES: usize = 4;
/// The kernel runs every repetition on the same buffer, so the router's TTL
/// (hop limit) goes down by one per run: from 255 it forwards 254 times.
const ROUTER_REPEAT: u32 = 254;
/// Calls per round for the router: as many packets per round as the others.
const ROUTER_CALLS: usize = (REPEAT / ROUTER_REPEAT) as usize;
/// xdp_icmp_echo turns the request into a reply, which it then leaves
/// alone: one run per call, and many calls.
const ECHO_CALLS: usize = 2000;
/// The sampler puts about 90 bytes a run into its ring, and once 1 MiB is
/// waiting it wakes the reader on every sample (xdpctl sample's reader keeps
/// the ring nearly empty). So the rings are drained between calls (outside
/// the timed runs) of this many runs, under 1 MiB.
const SAMPLE_REPEAT: u32 = 10_000;
const SAMPLE_CALLS: usize = (REPEAT / SAMPLE_REPEAT) as usize;
/// The trafficgen programs' port range, as `--udp-dst 5000-5009` sets it.
const GEN_PORTS: (u16, u32) = (5000, 10);
const FRAME_LEN: usize = 64;

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
const ICMP_ECHO: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// The router's private lab: `IN` receives, the gateway sits behind `OUT`.
const IN: &str = "rt-in";
const OUT: &str = "rt-out";
const HOLD: &str = "hold";
const GW4: &str = "10.0.1.2";
const GW6: &str = "2001:db8:1::2";
const GW_MAC: &str = "02:00:00:00:01:02";
/// The MACs of every frame (see ipv4).
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Where the UDP header of an IPv4 frame without options starts.
const GEN_UDP_OFFSET: u32 = 14 + 20;
const SRC4: [u8; 4] = [10, 0, 0, 2];
const DST4: [u8; 4] = [198, 51, 100, 7];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// One row: a shipped program, its plain C counterpart and what they run on.
struct Case<'a> {
    /// Run after every call (outside the timing), to empty the sampler rings.
    after: Option<&'a dyn Fn() -> Result<()>>,
    name: &'static str,
    /// What `plain` is, in the table.
    peer: &'static str,
    frame_desc: &'static str,
    ours: &'a ProgramMut<'a>,
    plain: ProgramMut<'a>,
    frame: Vec<u8>,
    /// `struct xdp_md` passed as ctx_in, for programs that need a real device.
    ctx: Option<XdpMd>,
    repeat: u32,
    calls: usize,
    verdict: u32,
}

fn main() -> Result<()> {
    let ref_path = std::env::var("XDPCTL_BENCH_REF").context(
        "XDPCTL_BENCH_REF must name the compiled benches/ref/xdp_ref.bpf.c (make bench does this)",
    )?;
    let lab = router_lab()?;
    let mut storage = MaybeUninit::uninit();
    let skel = XdpProgKernSkelBuilder::default().open(&mut storage)?.load()?;
    let mut storage = MaybeUninit::uninit();
    let sock = AfXdpKernSkelBuilder::default().open(&mut storage)?.load()?;
    let mut storage = MaybeUninit::uninit();
    let sampler = XdpSamplePktsKernSkelBuilder::default().open(&mut storage)?.load()?;
    let mut storage = MaybeUninit::uninit();
    let mut open = TrafficgenSkelBuilder::default().open(&mut storage)?;
    let config = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("no .rodata"))?;
    config.udp_offset = GEN_UDP_OFFSET;
    (config.port_first, config.port_count) = GEN_PORTS;
    let gen = open.load()?;

    let mut open = ObjectBuilder::default().open_file(&ref_path)?;
    set_rodata(&mut open, "gen_udp_offset", &GEN_UDP_OFFSET.to_ne_bytes())?;
    set_rodata(&mut open, "gen_port_first", &GEN_PORTS.0.to_ne_bytes())?;
    set_rodata(&mut open, "gen_port_count", &GEN_PORTS.1.to_ne_bytes())?;
    let reference: Object = open.load()?;
    // The sampling path, off as loaded, and the same source without it.
    let load_obj = |var: &str| -> Result<Object> {
        let path = std::env::var(var).with_context(|| {
            format!("{var} must name a build of bpf/xdp_prog_kern.bpf.c (make bench does this)")
        })?;
        Ok(ObjectBuilder::default().open_file(&path)?.load()?)
    };
    let sampling: Vec<Object> =
        (0..COPIES).map(|_| load_obj("XDPCTL_BENCH_SAMPLING_OBJ")).collect::<Result<_>>()?;
    let nosampling: Vec<Object> =
        (0..COPIES).map(|_| load_obj("XDPCTL_BENCH_NOSAMPLING_OBJ")).collect::<Result<_>>()?;

    let find = |name: &str| -> Result<ProgramMut<'_>> {
        reference
            .progs_mut()
            .find(|p| p.name() == name)
            .with_context(|| format!("{name} in {ref_path}"))
    };
    let ref_map = |name: &str| {
        reference
            .maps()
            .find(|m| m.name() == name)
            .with_context(|| format!("map {name} in {ref_path}"))
    };

    // The redirect programs send to the lab's gateway, the same in both.
    let zero = 0u32.to_ne_bytes();
    let out = lab.egress.to_ne_bytes();
    let gw = GW_MAC.parse::<xdpctl::net::mac::Mac>()?.0;
    let target = RedirectTarget { ifindex: lab.egress, dest_mac: gw, pad: [0; 2] };
    // SAFETY: RedirectTarget is Plain, its fields fill it with no padding.
    let target = unsafe { plain::as_bytes(&target) };
    skel.maps.redirect_target.update(&zero, target, MapFlags::ANY)?;
    ref_map("ref_target")?.update(&zero, target, MapFlags::ANY)?;
    skel.maps.tx_port.update(&zero, &out, MapFlags::ANY)?;
    ref_map("ref_tx_port")?.update(&zero, &out, MapFlags::ANY)?;
    skel.maps.redirect_params.update(&SRC_MAC, &gw, MapFlags::ANY)?;
    ref_map("ref_macs")?.update(&SRC_MAC, &gw, MapFlags::ANY)?;

    // One AF_XDP socket on the queue test runs arrive on, in both maps.
    let socket = xsk::Xsk::open(
        &iface::resolve(IN)?,
        &xsk::Config {
            queue: 0,
            frames: 64,
            ring_size: xsk::ring_size(64),
            batch: 16,
            copy: xsk::Copy::Copy,
        },
    )
    .context("binding an AF_XDP socket in the lab")?;
    let fd = socket.fd().as_raw_fd().to_ne_bytes();
    sock.maps.xsks_map.update(&zero, &fd, MapFlags::ANY)?;
    ref_map("ref_xsks")?.update(&zero, &fd, MapFlags::ANY)?;

    // Both sampler rings, emptied after each call; counted to check that
    // every run wrote its sample.
    let samples = Cell::new(0u64);
    let mut rings = RingBufferBuilder::new();
    let count = |_: &[u8]| {
        samples.set(samples.get() + 1);
        0
    };
    let ref_ring = ref_map("ref_ring")?;
    rings.add(&sampler.maps.samples, count)?.add(&ref_ring, count)?;
    let rings = rings.build()?;
    let drain = || -> Result<()> {
        rings.consume().context("draining the sample rings")?;
        Ok(())
    };

    // Ethernet + IPv4, 64 bytes: the smallest frame on a wire.
    let mut frame = vec![0u8; FRAME_LEN];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    let plain_ipv4 = "IPv4, zero header";
    let udp4 = ipv4(udp(40000, 5000), 64);
    let udp4_copy = udp4.clone();
    let ipv4_echo = ipv4(L4::Icmp { kind: ICMP_ECHO, seq: 1 }, 64);

    let p = &skel.progs;
    let work = |name, frame_desc, ours, plain, frame, verdict| Case {
        after: None,
        name,
        peer: "the same in plain C",
        frame_desc,
        ours,
        plain,
        frame,
        ctx: None,
        repeat: REPEAT,
        calls: 1,
        verdict,
    };
    let routed = |frame_desc, plain, frame: Vec<u8>| Case {
        name: "xdp_router",
        ctx: Some(xdp_md(&frame, lab.ingress)),
        repeat: ROUTER_REPEAT,
        calls: ROUTER_CALLS,
        ..work("", frame_desc, &p.xdp_router, plain, frame, XDP_REDIRECT)
    };
    let echo = |frame_desc, plain, frame| Case {
        repeat: 1,
        calls: ECHO_CALLS,
        ..work("xdp_icmp_echo", frame_desc, &p.xdp_icmp_echo, plain, frame, XDP_TX)
    };
    let cases = [
        work("xdp_pass", plain_ipv4, &p.xdp_pass, find("ref_pass")?, frame.clone(), XDP_PASS),
        work("xdp_drop", plain_ipv4, &p.xdp_drop, find("ref_drop")?, frame.clone(), XDP_DROP),
        work("xdp_abort", plain_ipv4, &p.xdp_abort, find("ref_abort")?, frame.clone(), XDP_ABORTED),
        work(
            "xdp_parser",
            "ICMP echo request, odd seq",
            &p.xdp_parser,
            find("ref_parser")?,
            ipv4(L4::Icmp { kind: ICMP_ECHO, seq: 1 }, 64),
            XDP_PASS,
        ),
        work(
            "xdp_parser",
            "ICMPv6 echo request, odd seq",
            &p.xdp_parser,
            find("ref_parser")?,
            ipv6(L4::Icmp { kind: ICMPV6_ECHO_REQUEST, seq: 1 }, 64),
            XDP_PASS,
        ),
        work(
            "xdp_port_rewrite",
            "UDP/IPv4",
            &p.xdp_port_rewrite,
            find("ref_port_rewrite")?,
            udp4.clone(),
            XDP_PASS,
        ),
        work(
            "xdp_port_rewrite",
            "TCP/IPv4",
            &p.xdp_port_rewrite,
            find("ref_port_rewrite")?,
            ipv4(tcp(40000, 5000), 64),
            XDP_PASS,
        ),
        // Even runs: the tag goes on and comes off again, a push and a pop
        // every two runs.
        work(
            "xdp_vlan_swap",
            "UDP/IPv4, push and pop",
            &p.xdp_vlan_swap,
            find("ref_vlan_swap")?,
            udp4.clone(),
            XDP_PASS,
        ),
        echo(
            "ICMP echo request",
            find("ref_icmp_echo")?,
            ipv4(L4::Icmp { kind: ICMP_ECHO, seq: 1 }, 64),
        ),
        echo(
            "ICMPv6 echo request",
            find("ref_icmp_echo")?,
            ipv6(L4::Icmp { kind: ICMPV6_ECHO_REQUEST, seq: 1 }, 64),
        ),
        work(
            "xdp_redirect",
            "UDP/IPv4",
            &p.xdp_redirect,
            find("ref_redirect")?,
            udp4.clone(),
            XDP_REDIRECT,
        ),
        work(
            "xdp_redirect_map",
            "UDP/IPv4, known source MAC",
            &p.xdp_redirect_map,
            find("ref_redirect_map")?,
            udp4.clone(),
            XDP_REDIRECT,
        ),
        routed("IPv4 forwarded, TTL 255", find("ref_router")?, ipv4(udp(40000, 53), 255)),
        routed("IPv6 forwarded, hop limit 255", find("ref_router")?, ipv6(udp(40000, 53), 255)),
        work(
            "xdp_sock",
            "socket bound to the queue",
            &sock.progs.xdp_sock,
            find("ref_sock")?,
            udp4.clone(),
            XDP_REDIRECT,
        ),
        work(
            "xdp_trafficgen",
            "UDP/IPv4, 10 ports",
            &gen.progs.xdp_trafficgen,
            find("ref_trafficgen")?,
            udp4.clone(),
            XDP_TX,
        ),
        Case {
            after: Some(&drain),
            repeat: SAMPLE_REPEAT,
            calls: SAMPLE_CALLS,
            ..work(
                "xdp_sample",
                "UDP/IPv4, whole frame",
                &sampler.progs.xdp_sample,
                find("ref_sample")?,
                udp4,
                XDP_PASS,
            )
        },
    ];
    // The sampling-off programs of each copy, kept alive for the cases that
    // borrow them: with the path, and (for the control) without it.
    const OFF: [&str; 4] = ["xdp_pass", "xdp_drop", "xdp_parser", "xdp_port_rewrite"];
    let with = programs(&sampling, &OFF)?;
    let without = programs(&nosampling, &OFF)?;
    let off_frames = [
        ("sampling off", frame.clone(), XDP_PASS),
        ("sampling off", frame.clone(), XDP_DROP),
        ("ICMP echo request, odd seq, sampling off", ipv4_echo.clone(), XDP_PASS),
        ("UDP/IPv4, sampling off", udp4_copy.clone(), XDP_PASS),
    ];
    // Per program, a case per copy: copy k with the path against copy k
    // without it; the control, copy k without against copy k+1 without.
    let off_cases = |control: bool| -> Result<Vec<Vec<Case<'_>>>> {
        let (peer, what) = if control {
            ("another load, also without", "control: both built without sampling")
        } else {
            ("built without sampling", "")
        };
        OFF.iter()
            .zip(&off_frames)
            .enumerate()
            .map(|(i, (name, (desc, frame, verdict)))| {
                let frame_desc = if control { what } else { desc };
                (0..COPIES)
                    .map(|k| {
                        let ours = if control { &without[k][i] } else { &with[k][i] };
                        let plain =
                            prog_of(&nosampling[(k + usize::from(control)) % COPIES], name)?;
                        Ok(Case {
                            peer,
                            ..work(name, frame_desc, ours, plain, frame.clone(), *verdict)
                        })
                    })
                    .collect()
            })
            .collect()
    };
    let (off_groups, control_groups) = (off_cases(false)?, off_cases(true)?);
    // A row measures its cases in turn, one per round.
    let groups: Vec<Vec<&Case<'_>>> = cases
        .iter()
        .map(|c| vec![c])
        .chain(off_groups.iter().chain(&control_groups).map(|g| g.iter().collect()))
        .collect();
    let noop = find("noop")?;

    for case in groups.iter().flatten() {
        check(case)?;
    }
    let expected = 2 * u64::from(SAMPLE_REPEAT);
    ensure!(
        samples.get() == expected,
        "the samplers wrote {} samples in {} runs: the timing would measure a full ring",
        samples.get(),
        expected
    );

    // Per row: (ours, plain C, no-op) ns of each round.
    let mut samples = vec![Vec::new(); groups.len()];
    for round in 0..ROUNDS {
        for (i, group) in groups.iter().enumerate() {
            let case = group[round % group.len()];
            // Who goes first alternates, so an order effect hits both alike.
            let (o, p) = if round % 2 == 0 {
                let o = ns_per_packet(case.ours, case, lab.hold)?;
                (o, ns_per_packet(&case.plain, case, lab.hold)?)
            } else {
                let p = ns_per_packet(&case.plain, case, lab.hold)?;
                (ns_per_packet(case.ours, case, lab.hold)?, p)
            };
            let n = ns_per_packet(&noop, case, lab.hold)?;
            samples[i].push((o, p, n));
        }
    }

    println!(
        "## BPF_PROG_TEST_RUN, ns per packet ({FRAME_LEN}-byte frames, {REPEAT} runs x {ROUNDS} \
         rounds; xdp_router: {ROUTER_CALLS} calls of {ROUTER_REPEAT} runs, xdp_icmp_echo: \
         {ECHO_CALLS} calls of 1 run, xdp_sample: {SAMPLE_CALLS} calls of {SAMPLE_REPEAT} runs, \
         x {ROUNDS} rounds)\n"
    );
    println!(
        "| program | frame | verdict | xdpctl ns | plain C (or built without sampling) ns | no-op \
         ns | xdpctl / plain C | xdpctl / no-op |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (group, s) in groups.iter().zip(&samples) {
        let case = group[0];
        let (o, p, n) = (
            median(s.iter().map(|t| t.0)),
            median(s.iter().map(|t| t.1)),
            median(s.iter().map(|t| t.2)),
        );
        let vs_plain = Mean::of(s.iter().map(|t| t.0 / t.1));
        let vs_noop = Mean::of(s.iter().map(|t| t.0 / t.2));
        println!(
            "| {} | {} | {} | {o:.0} | {p:.0} | {n:.0} | {vs_plain} | {vs_noop} |",
            case.name,
            case.frame_desc,
            verdict_name(case.verdict)
        );
        let what = format!("{}, {}", case.name, case.frame_desc);
        rows.push(
            Row::new("prog_run_ns", &what, "ns")
                .figures(o, case.peer, p)
                .ratio(vs_plain.mean)
                .goal(
                    if case.peer.starts_with("another") { Goal::None } else { Goal::AtMost(1.05) },
                    ROUNDS,
                ),
        );
        rows.push(
            Row::new("prog_run_ns", what, "ns")
                .figures(o, "no-op program", n)
                .ratio(vs_noop.mean)
                .goal(Goal::None, ROUNDS),
        );
    }
    println!();
    common::record("test_run", &rows)
}

/// Mean ns per packet over the case's calls. A test run of more than one
/// repetition puts the program into the kernel's XDP dispatcher and takes it
/// out again, each time waiting for an RCU grace period (about 13 ms here):
/// one call pays that twice, many short calls in a row would spend minutes
/// asleep, and after each wait the caches are cold. So for many calls the
/// program is kept in the dispatcher meanwhile, attached to a spare device
/// (`hold`), the only one of the bench's there, as during a single call.
fn ns_per_packet(prog: &ProgramMut<'_>, case: &Case<'_>, hold: i32) -> Result<f64> {
    let _held = match case.calls {
        1 => None,
        _ => Some(prog.attach_xdp(hold).context("attaching to the spare device")?),
    };
    let mut sum = 0.0;
    for _ in 0..case.calls {
        sum += ns_per_run(prog, case)?;
        if let Some(after) = case.after {
            after()?;
        }
    }
    Ok(sum / case.calls as f64)
}

/// Runs `prog` on the case's frame `case.repeat` times; the kernel's mean ns.
fn ns_per_run(prog: &ProgramMut<'_>, case: &Case<'_>) -> Result<f64> {
    let mut ctx = case.ctx;
    let input = ProgramInput {
        data_in: Some(&case.frame),
        context_in: ctx.as_mut().map(ctx_bytes),
        repeat: case.repeat,
        ..Default::default()
    };
    let out = prog.test_run(input).context("BPF_PROG_TEST_RUN (root needed)")?;
    Ok(out.duration.as_nanos() as f64)
}

/// Before timing: both programs return the expected verdict after all
/// `repeat` runs (so every run took the path being measured) and leave the
/// same bytes behind.
fn check(case: &Case<'_>) -> Result<()> {
    let mut outs = Vec::new();
    for prog in [case.ours, &case.plain] {
        let mut ctx = case.ctx;
        let mut out = vec![0u8; case.frame.len()];
        let input = ProgramInput {
            data_in: Some(&case.frame),
            data_out: Some(&mut out),
            context_in: ctx.as_mut().map(ctx_bytes),
            repeat: case.repeat,
            ..Default::default()
        };
        let res = prog.test_run(input).context("BPF_PROG_TEST_RUN (root needed)")?;
        if let Some(after) = case.after {
            after()?;
        }
        if res.return_value != case.verdict {
            bail!(
                "{} on {}: verdict {} after {} runs, expected {} ({}); the timing would \
                 measure another path{}",
                prog.name().to_string_lossy(),
                case.frame_desc,
                res.return_value,
                case.repeat,
                case.verdict,
                verdict_name(case.verdict),
                if case.ctx.is_some() { " (the FIB lookup in the bench's lab failed)" } else { "" }
            );
        }
        outs.push(out);
    }
    ensure!(
        outs[0] == outs[1],
        "{} and {} leave different bytes on {}:\n{:02x?}\n{:02x?}",
        case.ours.name().to_string_lossy(),
        case.plain.name().to_string_lossy(),
        case.frame_desc,
        outs[0],
        outs[1]
    );
    Ok(())
}

/// Program `name` of a loaded build.
/// The programs `names` of each object, in order.
fn programs<'o>(objs: &'o [Object], names: &[&str]) -> Result<Vec<Vec<ProgramMut<'o>>>> {
    objs.iter().map(|o| names.iter().map(|n| prog_of(o, n)).collect()).collect()
}

fn prog_of<'o>(obj: &'o Object, name: &str) -> Result<ProgramMut<'o>> {
    obj.progs_mut().find(|p| p.name() == name).with_context(|| format!("{name} in a build"))
}

fn verdict_name(v: u32) -> &'static str {
    ["ABORTED", "DROP", "PASS", "TX", "REDIRECT"].get(v as usize).copied().unwrap_or("?")
}

/// The router's lab, in a network namespace that dies with this process.
struct Lab {
    /// The device the router's frames arrive on.
    ingress: u32,
    /// The device behind which the gateway sits.
    egress: u32,
    /// A spare device to keep a program attached to (see ns_per_packet).
    hold: i32,
}

/// Moves this process into a new network namespace and builds the router's
/// lab in it: a veth pair, forwarding on, IPv4 and IPv6 routes to the
/// destinations through a gateway with a permanent neighbour entry; and a
/// spare veth pair.
fn router_lab() -> Result<Lab> {
    // Only this thread (libbpf starts none) moves; the `ip` processes spawned
    // below inherit the namespace.
    lab::private_netns(true)?;
    let pair = Veth { name: IN, peer: OUT, ..Veth::default() };
    pair.add()?;
    ip(&["addr", "add", "10.0.0.1/24", "dev", IN])?;
    ip(&["addr", "add", "10.0.1.1/24", "dev", OUT])?;
    ip(&["-6", "addr", "add", "2001:db8::1/64", "dev", IN, "nodad"])?;
    ip(&["-6", "addr", "add", "2001:db8:1::1/64", "dev", OUT, "nodad"])?;
    ip(&["link", "set", IN, "up"])?;
    ip(&["link", "set", OUT, "up"])?;
    ip(&["neigh", "add", GW4, "lladdr", GW_MAC, "dev", OUT, "nud", "permanent"])?;
    ip(&["-6", "neigh", "add", GW6, "lladdr", GW_MAC, "dev", OUT, "nud", "permanent"])?;
    ip(&["route", "add", "198.51.100.0/24", "via", GW4])?;
    ip(&["-6", "route", "add", "2001:db8:ff::/64", "via", GW6])?;
    // /proc/sys/net is the opener's namespace: this one now.
    for knob in ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"] {
        std::fs::write(knob, "1").with_context(|| format!("writing 1 to {knob}"))?;
    }
    Veth { name: HOLD, peer: "hold-peer", ..Veth::default() }.add()?;
    let index =
        |dev| nix::net::if_::if_nametoindex(dev).with_context(|| format!("ifindex of {dev}"));
    Ok(Lab { ingress: index(IN)?, egress: index(OUT)?, hold: index(HOLD)? as i32 })
}

/// `l4` over IPv4 from SRC_MAC to a made-up router MAC, padded to FRAME_LEN.
fn ipv4(l4: L4, ttl: u8) -> Vec<u8> {
    let frame = Frame::v4(l4).src4(SRC4).dst4(DST4).ttl(ttl);
    frame.src_mac(SRC_MAC).dst_mac(ROUTER_MAC).pad_to(FRAME_LEN).bytes()
}

/// `l4` over IPv6, likewise.
fn ipv6(l4: L4, hop_limit: u8) -> Vec<u8> {
    let frame = Frame::v6(l4).src6(SRC6).dst6(DST6).ttl(hop_limit);
    frame.src_mac(SRC_MAC).dst_mac(ROUTER_MAC).pad_to(FRAME_LEN).bytes()
}

/// Sets the .rodata variable `name` of a reference object before loading,
/// found by its BTF like a skeleton finds it: the section's layout is the
/// compiler's to choose.
fn set_rodata(open: &mut libbpf_rs::OpenObject, name: &str, value: &[u8]) -> Result<()> {
    let offset = {
        // SAFETY: the pointer is the open object's own, valid while `open`
        // is borrowed here, and the Btf made from it does not outlive the block.
        let obj = unsafe { open.as_libbpf_object().as_ref() };
        let btf = Btf::from_bpf_object(obj)?.context("the reference object has no BTF")?;
        let sec: DataSec<'_> = btf.type_by_name(".rodata").context("no .rodata in its BTF")?;
        let var = sec.iter().find(|v| {
            btf.type_by_id::<Var<'_>>(v.ty).and_then(|t| t.name()).is_some_and(|n| n == name)
        });
        let var = var.with_context(|| format!("no {name} in .rodata"))?;
        ensure!(var.size == value.len(), "{name} is {} bytes, not {}", var.size, value.len());
        var.offset as usize
    };
    let mut map = open
        .maps_mut()
        .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
        .context("no .rodata map")?;
    let data = map.initial_value_mut().context(".rodata has no initial value")?;
    data[offset..offset + value.len()].copy_from_slice(value);
    Ok(())
}

impl std::fmt::Display for Mean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} ± {:.3}", self.mean, self.stderr)
    }
}
