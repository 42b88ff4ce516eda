//! Unit tests of the shipped programs through BPF_PROG_TEST_RUN: no interface,
//! crafted frames, verdicts and counters checked against values computed here.
//! Needs root (CAP_BPF).

mod common;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::libbpf_sys::{XDP_ABORTED, XDP_DROP, XDP_PASS};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapHandle, ProgramInput};
use xdpctl::skel::xdp_prog::{XdpProgKernSkel, XdpProgKernSkelBuilder};
use xdpctl::statsmap::StatsMap;

/// Ethernet (14) + IPv6 (40) + ICMPv6 echo request header (8) + `payload` bytes.
fn ping6_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[58, 64]);
    f.extend_from_slice(&[0xfc, 0, 0xde, 0xad, 0xca, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfc, 0, 0xde, 0xad, 0xca, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
    f.extend((0..payload).map(|i| i as u8));
    f
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
fn only_the_selected_program_is_loaded() {
    let mut storage = MaybeUninit::uninit();
    let mut open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
    let name =
        xdpctl::object::select(open.open_object_mut(), "xdp_drop_func", "test").expect("select");
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
    let mut listed: Vec<String> = xdpctl::catalog::PROGRAMS
        .iter()
        .filter(|p| p.object == xdpctl::catalog::ObjectFile::XdpProgKern)
        .map(|p| p.name.to_string())
        .collect();
    listed.sort();
    assert_eq!(in_object, listed);
}

/// `load` creates only the maps the catalog lists for a program; they must be
/// exactly the maps the kernel says the loaded program uses.
#[test]
fn each_program_uses_exactly_the_maps_the_catalog_lists() {
    for shipped in xdpctl::catalog::PROGRAMS {
        let mut storage = MaybeUninit::uninit();
        let mut open = XdpProgKernSkelBuilder::default().open(&mut storage).expect("open");
        xdpctl::object::select(open.open_object_mut(), shipped.name, "test").expect("select");
        xdpctl::object::keep_maps(open.open_object_mut(), shipped.maps).expect("keep_maps");
        let skel =
            open.load().unwrap_or_else(|e| panic!("{} loads with its maps: {e}", shipped.name));
        let obj = skel.object();
        let prog = obj.progs().find(|p| p.name() == shipped.name).expect("the program");
        let mut used = xdpctl::object::maps_used_by(prog.as_fd()).expect("map ids");
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
