//! Unit tests of the shipped programs through BPF_PROG_TEST_RUN: no interface,
//! crafted frames, verdicts and counters checked against values computed here.
//! Needs root (CAP_BPF).

mod common;

use common::frame::{ping6, udp, Frame};

use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::libbpf_sys::{XDP_ABORTED, XDP_DROP, XDP_PASS};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{
    MapCore, MapFlags, MapHandle, Object, ObjectBuilder, ProgramInput, RingBufferBuilder,
};
use xdpctl::io::perfbuf::PerfReader;
use xdpctl::obj::skel::af_xdp::AfXdpKernSkelBuilder;
use xdpctl::obj::skel::sample_prog::XdpSamplePktsKernSkelBuilder;
use xdpctl::obj::skel::trafficgen::TrafficgenSkelBuilder;
use xdpctl::obj::skel::xdp_prog::{XdpProgKernSkel, XdpProgKernSkelBuilder};
use xdpctl::obj::skel::{SampleCounts, SampleCtl, SampleHdr, VerdictHdr};
use xdpctl::obj::statsmap::StatsMap;

/// A frame at MTU 9000: its IP packet of 9000 bytes and the Ethernet header.
const JUMBO: usize = 9000 + 14;

/// Ethernet (14) + IPv6 (40) + ICMPv6 echo request header (8) + `payload` bytes.
fn ping6_frame(payload: usize) -> Vec<u8> {
    ping6(1).payload((0..payload).map(|i| i as u8).collect()).bytes()
}

/// Per-action (packets, bytes), summed over CPUs by the reader `stats` uses.
fn counters(skel: &XdpProgKernSkel<'_>) -> Vec<(u64, u64)> {
    let handle = MapHandle::try_from(&skel.maps.xdp_stats_map).expect("map handle");
    let mut map = StatsMap::new(handle, "xdp_stats_map").expect("stats layout");
    map.read().expect("read").iter().map(|r| (r.rx_packets, r.rx_bytes)).collect()
}

fn run(skel: &XdpProgKernSkel<'_>, name: &str, frame: &[u8], repeat: u32) -> (u32, Vec<u8>) {
    let prog = match name {
        "xdp_pass" => &skel.progs.xdp_pass,
        "xdp_drop" => &skel.progs.xdp_drop,
        "xdp_abort" => &skel.progs.xdp_abort,
        "xdp_printk" => &skel.progs.xdp_printk,
        other => panic!("no program {other}"),
    };
    let mut out = vec![0u8; frame.len() + 256];
    let input = ProgramInput {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..Default::default()
    };
    let result = prog.test_run(input).expect("test_run");
    let ret = result.return_value;
    let len = result.data.map_or(0, |d| d.len());
    out.truncate(len);
    (ret, out)
}

#[test]
#[ignore = "needs root"]
fn each_program_returns_its_verdict_and_counts_exactly_what_ran() {
    for (name, action) in
        [("xdp_pass", XDP_PASS), ("xdp_drop", XDP_DROP), ("xdp_abort", XDP_ABORTED)]
    {
        common::with_skeleton(|skel| {
            let small = ping6_frame(0); // 62 bytes
            let big = ping6_frame(1514 - 62);
            assert_eq!((small.len(), big.len()), (62, 1514));

            let (ret, out) = run(skel, name, &small, 7);
            assert_eq!(ret, action, "{name} verdict");
            assert_eq!(out, small, "{name} leaves the frame alone");
            let (ret, _) = run(skel, name, &big, 3);
            assert_eq!(ret, action, "{name} verdict");

            let got = counters(skel);
            for (key, (packets, bytes)) in got.iter().enumerate() {
                if key as u32 == action {
                    assert_eq!(*packets, 7 + 3, "{name} packets");
                    assert_eq!(*bytes, 7 * 62 + 3 * 1514, "{name} bytes");
                } else {
                    assert_eq!(
                        (*packets, *bytes),
                        (0, 0),
                        "{name} touches only its own slot {key}"
                    );
                }
            }
        });
    }
}

#[test]
#[ignore = "needs root"]
fn only_the_selected_program_is_loaded() {
    let mut storage = MaybeUninit::uninit();
    let mut open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
    let name = xdpctl::obj::object::select(open.open_object_mut(), "xdp_drop_func", "test")
        .expect("select");
    assert_eq!(name, "xdp_drop");
    let skel = open.load().expect("load");
    assert!(skel.progs.xdp_drop.as_fd().as_raw_fd() >= 0);
    assert!(skel.progs.xdp_pass.as_fd().as_raw_fd() < 0, "xdp_pass was not loaded");
    assert!(skel.progs.xdp_abort.as_fd().as_raw_fd() < 0, "xdp_abort was not loaded");
}

#[test]
fn the_catalog_and_the_shipped_object_agree() {
    let mut storage = MaybeUninit::uninit();
    let open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
    let mut in_object: Vec<String> =
        open.open_object().progs().map(|p| p.name().to_string_lossy().into_owned()).collect();
    in_object.sort();
    let mut listed: Vec<String> = xdpctl::obj::catalog::PROGRAMS
        .iter()
        .filter(|p| p.object == xdpctl::obj::catalog::ObjectFile::XdpProgKern)
        .map(|p| p.name.to_string())
        .collect();
    listed.sort();
    assert_eq!(in_object, listed);
}

/// `load` creates only the maps the catalog lists for a program; they must be
/// exactly the maps the kernel says the loaded program uses.
#[test]
#[ignore = "needs root"]
fn each_program_uses_exactly_the_maps_the_catalog_lists() {
    for shipped in xdpctl::obj::catalog::PROGRAMS {
        let mut storage = MaybeUninit::uninit();
        let mut open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
        xdpctl::obj::object::select(open.open_object_mut(), shipped.name, "test").expect("select");
        xdpctl::obj::object::keep_maps(open.open_object_mut(), shipped.maps).expect("keep_maps");
        let skel =
            open.load().unwrap_or_else(|e| panic!("{} loads with its maps: {e}", shipped.name));
        let obj = skel.object();
        let prog = obj.progs().find(|p| p.name() == shipped.name).expect("the program");
        let mut used = xdpctl::obj::object::maps_used_by(prog.as_fd()).expect("map ids");
        used.sort();
        let mut created: Vec<u32> = obj
            .maps()
            .filter(|m| m.autocreate())
            .map(|m| m.info().expect("map info").info.id)
            .collect();
        created.sort();
        assert_eq!(used, created, "{}: maps used vs created", shipped.name);
        assert_eq!(created.len(), shipped.maps.len(), "{}", shipped.name);
    }
}

/// Each program of `obj` by name, and whether its section is `xdp.frags`,
/// which libbpf loads with BPF_F_XDP_HAS_FRAGS (the flag itself is added at
/// load time and shows nowhere to read).
fn frags_sections(obj: &Object) -> Vec<(String, bool)> {
    obj.progs()
        .map(|p| (p.name().to_string_lossy().into_owned(), p.section() == "xdp.frags"))
        .collect()
}

/// Each program of `obj` by name, and whether the kernel attaches it in
/// native mode to `ifindex`, a veth whose peer has a jumbo MTU (refused with
/// ERANGE unless frags-aware); detached again at once.
fn attaches_natively(obj: &mut Object, ifindex: i32) -> Vec<(String, bool)> {
    obj.progs_mut()
        .map(|p| {
            let name = p.name().to_string_lossy().into_owned();
            let attached = match p.attach_xdp(ifindex) {
                Ok(_link) => true,
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains("out of range"), "{name}: ERANGE, not {e}");
                    false
                }
            };
            (name, attached)
        })
        .collect()
}

/// Frags-aware programs are the ones the kernel attaches in native mode where
/// the MTU needs multi-buffer frames. Every shipped program is, but xdp_sock
/// (its socket is not bound for multi-buffer frames) and xdp_trafficgen
/// (never attached; live test runs refuse such frames). Tried on a veth at
/// MTU 9000 in a network namespace of this test's thread, gone with it.
#[test]
#[ignore = "needs root"]
fn shipped_programs_are_frags_aware_where_they_can_be() {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let mtu = ["mtu", "9000"];
        let args =
            [&["link", "add", "j0"], &mtu[..], &["type", "veth", "peer", "j1"], &mtu].concat();
        common::run("ip", &args);
        let ifindex = nix::net::if_::if_nametoindex("j0").expect("j0") as i32;
        let check = |obj: &mut Object, want: &[(&str, bool)]| {
            let want: Vec<(String, bool)> = want.iter().map(|(n, f)| (n.to_string(), *f)).collect();
            assert_eq!(frags_sections(obj), want, "xdp.frags sections");
            assert_eq!(attaches_natively(obj, ifindex), want, "attached at MTU 9000");
        };

        let mut storage = MaybeUninit::uninit();
        let open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
        let shipped: Vec<(&str, bool)> =
            xdpctl::obj::catalog::PROGRAMS.iter().map(|p| (p.name, true)).collect();
        check(open.load().expect("load").object_mut(), &shipped);
        let mut storage = MaybeUninit::uninit();
        let open = XdpSamplePktsKernSkelBuilder::default().open(&mut storage).expect("open");
        check(open.load().expect("load").object_mut(), &[("xdp_sample", true)]);
        let mut storage = MaybeUninit::uninit();
        let open = AfXdpKernSkelBuilder::default().open(&mut storage).expect("open");
        check(open.load().expect("load").object_mut(), &[("xdp_sock", false)]);
        let mut storage = MaybeUninit::uninit();
        let open = TrafficgenSkelBuilder::default().open(&mut storage).expect("open");
        check(open.load().expect("load").object_mut(), &[("xdp_trafficgen", false)]);
    })
    .join()
    .expect("the test thread panicked");
}

/// Whether the kernel's test run hands `frame` to an `xdp.frags` program as
/// a multi-buffer frame (its linear part shorter than the whole), asked of a
/// probe program built here: the premise of the jumbo tests below.
fn test_run_splits(frame: &[u8]) -> bool {
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(
        &tmp.0,
        "probe",
        "#include <linux/bpf.h>\n\
         #include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp.frags\") int probe(struct xdp_md *ctx)\n\
         { return ctx->data_end - ctx->data < bpf_xdp_get_buff_len(ctx) ? XDP_PASS : XDP_DROP; }\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let obj = ObjectBuilder::default().open_file(&obj).expect("open probe").load().expect("load");
    let prog = obj.progs_mut().next().expect("the probe");
    let input = ProgramInput { data_in: Some(frame), repeat: 1, ..Default::default() };
    prog.test_run(input).expect("test_run of the probe").return_value == XDP_PASS
}

#[test]
#[ignore = "needs root"]
fn jumbo_frames_keep_their_verdict_and_are_counted_whole() {
    let jumbo = ping6_frame(JUMBO - 62);
    assert_eq!(jumbo.len(), JUMBO);
    assert!(test_run_splits(&jumbo), "test_run gives {JUMBO} bytes as fragments");
    for (name, action) in [
        ("xdp_pass", XDP_PASS),
        ("xdp_drop", XDP_DROP),
        ("xdp_abort", XDP_ABORTED),
        ("xdp_printk", XDP_PASS),
    ] {
        common::with_skeleton(|skel| {
            let (ret, out) = run(skel, name, &jumbo, 5);
            assert_eq!(ret, action, "{name} verdict on {JUMBO} bytes");
            assert_eq!(out, jumbo, "{name} leaves the frame alone, fragments included");
            let small = ping6_frame(0);
            assert_eq!(run(skel, name, &small, 2).0, action, "{name} verdict on 62 bytes");

            for (key, (packets, bytes)) in counters(skel).iter().enumerate() {
                if key as u32 == action {
                    assert_eq!(*packets, 5 + 2, "{name} packets");
                    assert_eq!(*bytes, 5 * 9014 + 2 * 62, "{name} bytes: whole frames");
                } else {
                    assert_eq!((*packets, *bytes), (0, 0), "{name} touches only slot {key}");
                }
            }
        });
    }
}

/// The sampler's records for one test run of `frame` with `snaplen`: (header,
/// bytes that follow it).
fn sampled(frame: &[u8], snaplen: u32) -> Vec<(SampleHdr, Vec<u8>)> {
    let mut storage = MaybeUninit::uninit();
    let mut open = XdpSamplePktsKernSkelBuilder::default().open(&mut storage).expect("open");
    open.maps.rodata_data.as_deref_mut().expect(".rodata").snaplen = snaplen;
    let skel = open.load().expect("load the sampler");
    // A test run hands fragments to any XDP program; a veth at a jumbo MTU
    // runs only a frags-aware one (see the test above).
    assert_eq!(frags_sections(skel.object()), [("xdp_sample".into(), true)], "frags-aware");
    let input = ProgramInput { data_in: Some(frame), repeat: 1, ..Default::default() };
    let ret = skel.progs.xdp_sample.test_run(input).expect("test_run of the sampler");
    assert_eq!(ret.return_value, XDP_PASS, "the sampler passes every frame");

    let records = std::cell::RefCell::new(Vec::new());
    let mut ring = RingBufferBuilder::new();
    ring.add(&skel.maps.samples, |rec: &[u8]| {
        let mut hdr = SampleHdr::default();
        let n = std::mem::size_of::<SampleHdr>();
        plain::copy_from_bytes(&mut hdr, &rec[..n]).expect("a record header");
        records.borrow_mut().push((hdr, rec[n..].to_vec()));
        0
    })
    .expect("ring callback");
    ring.build().expect("ring").consume().expect("drain the ring");
    records.into_inner()
}

#[test]
#[ignore = "needs root"]
fn the_sampler_copies_jumbo_frames_across_fragments() {
    // Every byte position distinct mod 251, so a piece from the wrong place shows.
    let frame: Vec<u8> = ping6_frame(JUMBO - 62)
        .iter()
        .enumerate()
        .map(|(i, b)| if i < 62 { *b } else { (i % 251) as u8 })
        .collect();
    assert!(test_run_splits(&frame), "test_run gives {JUMBO} bytes as fragments");
    let records = sampled(&frame, 9216);
    assert_eq!(records.len(), 1, "one sample per run");
    let (hdr, data) = &records[0];
    assert_eq!((hdr.orig_len, hdr.cap_len), (JUMBO as u32, JUMBO as u32));
    assert!(data[..] == frame[..], "the whole frame, the fragments' bytes in place");

    let records = sampled(&frame, 200);
    let (hdr, data) = &records[0];
    assert_eq!((hdr.orig_len, hdr.cap_len), (JUMBO as u32, 200), "snaplen 200");
    assert!(data[..] == frame[..200]);
}

/// One run of a program of the skeleton on `frame`; its verdict.
fn verdict_of(prog: &libbpf_rs::ProgramMut<'_>, frame: &[u8]) -> u32 {
    let input = ProgramInput { data_in: Some(frame), ..Default::default() };
    prog.test_run(input).expect("test_run").return_value
}

/// The sampling switch of include/sample_common.h, on for `verdicts` (a
/// mask) with `snaplen`, for the next minute.
fn switch_on(verdicts: u32, snaplen: u32) -> SampleCtl {
    let now = xdpctl::io::clock::monotonic_ns().expect("CLOCK_MONOTONIC");
    SampleCtl { expiry_ns: now + 60_000_000_000, enabled: 1, verdicts, snaplen, pad: 0 }
}

/// The stats helper's sampling path, which every shipped program ends in:
/// switched on, each frame comes out of the perf buffers with its verdict, its
/// length and its bytes (compared with the frame crafted here, and for a
/// rewriting program with the rewrite computed here); off, expired, or of a
/// verdict the mask leaves out, nothing does.
#[test]
#[ignore = "needs root"]
fn the_sampling_path_records_frames_with_their_verdicts_only_when_on() {
    common::with_skeleton(|skel| {
        let records = std::cell::RefCell::new(Vec::<(VerdictHdr, Vec<u8>)>::new());
        // A buffer on every CPU (test_run runs on whichever this thread is
        // on), read as `xdpctl sample` reads them.
        let perf = PerfReader::open(skel.maps.xdp_samples.as_fd(), 8, 1, |r: &[u8]| {
            let hdr: VerdictHdr = xdpctl::obj::maps::decode(r, "record").expect("header");
            records.borrow_mut().push((hdr, r[size_of::<VerdictHdr>()..].to_vec()));
        })
        .expect("perf buffers");
        // In the order sampled, whichever CPU's buffer each record is in.
        let take = || {
            perf.consume().expect("consume");
            let mut got = std::mem::take(&mut *records.borrow_mut());
            got.sort_by_key(|(hdr, _)| hdr.sample.tstamp_ns);
            got
        };
        let set = |ctl: SampleCtl| {
            let bytes = xdpctl::obj::maps::encode(&ctl);
            let map = &skel.maps.data_xdpsample;
            map.update(&0u32.to_ne_bytes(), bytes, MapFlags::ANY).expect("ctl")
        };
        let parser = &skel.progs.xdp_parser;
        let (odd, even) = (ping6(1).bytes(), ping6(2).bytes());

        // As loaded: off.
        assert_eq!(verdict_of(parser, &even), XDP_DROP);
        assert!(take().is_empty(), "off: no record");

        // On for every verdict, whole frames.
        set(switch_on(0b11111, 9216));
        assert_eq!(verdict_of(parser, &even), XDP_DROP);
        assert_eq!(verdict_of(parser, &odd), XDP_PASS);
        let got = take();
        assert_eq!(got.len(), 2, "one record per frame");
        for ((hdr, data), (verdict, frame)) in got.iter().zip([(XDP_DROP, &even), (XDP_PASS, &odd)])
        {
            assert_eq!(hdr.verdict, verdict);
            assert_eq!(hdr.sample.orig_len as usize, frame.len());
            assert_eq!(hdr.sample.cap_len as usize, frame.len());
            assert_eq!(&data[..frame.len()], frame.as_slice(), "the frame's bytes");
        }

        // Drops only, 20 bytes of each.
        set(switch_on(1 << XDP_DROP, 20));
        assert_eq!(verdict_of(parser, &odd), XDP_PASS);
        assert_eq!(verdict_of(parser, &even), XDP_DROP);
        let got = take();
        assert_eq!(got.len(), 1, "the pass is not sampled");
        let (hdr, data) = &got[0];
        assert_eq!((hdr.verdict, hdr.sample.orig_len as usize), (XDP_DROP, even.len()));
        assert_eq!(hdr.sample.cap_len, 20);
        assert_eq!(&data[..20], &even[..20]);

        // A rewriting program: the frame as it leaves, port minus one.
        set(switch_on(0b11111, 9216));
        let udp = Frame::v6(udp(40000, 5000));
        assert_eq!(verdict_of(&skel.progs.xdp_port_rewrite, &udp.bytes()), XDP_PASS);
        let got = take();
        let rewritten = udp.with_dport(4999).bytes();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.verdict, XDP_PASS);
        assert_eq!(&got[0].1[..rewritten.len()], rewritten.as_slice(), "after the rewrite");

        // Expired (a killed sampler's switch), then off: nothing.
        set(SampleCtl { expiry_ns: 1, ..switch_on(0b11111, 9216) });
        assert_eq!(verdict_of(parser, &even), XDP_DROP);
        set(SampleCtl::default());
        assert_eq!(verdict_of(parser, &even), XDP_DROP);
        assert!(take().is_empty(), "expired or off: no record");

        // The counts: every sampled frame seen, none lost.
        let counts: SampleCounts =
            xdpctl::obj::maps::sum(&skel.maps.xdp_sample_counts, &0u32.to_ne_bytes(), "counts")
                .expect("counts");
        assert_eq!((counts.seen, counts.lost), (4, 0));
    });
}
