//! xdp_sock through BPF_PROG_TEST_RUN: the verdict for a queue with and
//! without a bound AF_XDP socket in xsks_map, the --every-other alternation,
//! and the per-queue counters, all against counts kept here. Needs root.

mod common;

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

use libbpf_rs::libbpf_sys::{XDP_PASS, XDP_REDIRECT};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput};
use xdpctl::io::xsk::{self, Xsk};
use xdpctl::net::iface;
use xdpctl::obj::maps;
use xdpctl::obj::skel::af_xdp::{AfXdpKernSkel, AfXdpKernSkelBuilder};
use xdpctl::obj::skel::XskQueueCounts;

/// Runs `test` on xdp_sock loaded with `every_other`.
fn with_xdp_sock(every_other: bool, test: impl FnOnce(&AfXdpKernSkel<'_>)) {
    let mut storage = MaybeUninit::uninit();
    let mut open = AfXdpKernSkelBuilder::default().open(&mut storage).expect("open skeleton");
    open.maps.rodata_data.as_deref_mut().expect(".rodata").every_other = u8::from(every_other);
    let skel = open.load().expect("load xdp_sock (root needed)");
    test(&skel);
}

/// A 64-byte IPv6 frame: xdp_sock does not look inside.
fn frame() -> Vec<u8> {
    common::frame::ping6(1).pad_to(64).bytes()
}

fn verdict(skel: &AfXdpKernSkel<'_>) -> u32 {
    let data = frame();
    let input = ProgramInput { data_in: Some(&data), ..Default::default() };
    skel.progs.xdp_sock.test_run(input).expect("test_run").return_value
}

/// (redirected, passed) of `queue`, summed over CPUs.
fn counts(skel: &AfXdpKernSkel<'_>, queue: u32) -> (u64, u64) {
    let c: XskQueueCounts =
        maps::sum(&skel.maps.xsk_counts, &queue.to_ne_bytes(), "xsk_counts").expect("lookup");
    (c.redirected, c.passed)
}

/// An AF_XDP socket bound to queue 0 of a lab's outer end (test_run
/// frames arrive on queue 0).
fn bound_socket(lab: &common::Lab) -> Xsk {
    let dev = iface::resolve(&lab.outer).expect("lab interface");
    let cfg = xsk::Config {
        queue: 0,
        frames: 64,
        ring_size: xsk::ring_size(64),
        batch: 16,
        copy: xsk::Copy::Copy,
    };
    Xsk::open(&dev, &cfg).expect("bind an AF_XDP socket")
}

fn insert(skel: &AfXdpKernSkel<'_>, queue: u32, sock: &Xsk) {
    let fd = sock.fd().as_raw_fd();
    skel.maps
        .xsks_map
        .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
        .expect("socket into xsks_map");
}

#[test]
#[ignore = "needs root"]
fn without_a_socket_frames_go_to_the_kernel() {
    with_xdp_sock(false, |skel| {
        for _ in 0..3 {
            assert_eq!(verdict(skel), XDP_PASS);
        }
        assert_eq!(counts(skel, 0), (0, 3));
        assert_eq!(counts(skel, 1), (0, 0), "only the frame's queue counts");
    });
}

#[test]
#[ignore = "needs root"]
fn with_a_socket_every_frame_is_redirected() {
    let lab = common::Lab::new();
    let sock = bound_socket(&lab);
    with_xdp_sock(false, |skel| {
        insert(skel, 0, &sock);
        for _ in 0..5 {
            assert_eq!(verdict(skel), XDP_REDIRECT);
        }
        assert_eq!(counts(skel, 0), (5, 0));
        // A socket on another queue does not take queue 0's frames.
        skel.maps.xsks_map.delete(&0u32.to_ne_bytes()).expect("delete");
        insert(skel, 1, &sock);
        assert_eq!(verdict(skel), XDP_PASS);
        assert_eq!(counts(skel, 0), (5, 1));
    });
}

#[test]
#[ignore = "needs root"]
fn every_other_alternates_starting_with_the_socket() {
    let lab = common::Lab::new();
    let sock = bound_socket(&lab);
    with_xdp_sock(true, |skel| {
        insert(skel, 0, &sock);
        let got: Vec<u32> = (0..6).map(|_| verdict(skel)).collect();
        let want = [XDP_REDIRECT, XDP_PASS].repeat(3);
        assert_eq!(got, want);
        assert_eq!(counts(skel, 0), (3, 3));
    });
}
