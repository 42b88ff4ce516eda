//! xdp_trafficgen through BPF_PROG_TEST_RUN: XDP_TX for every frame, and
//! with a port range each frame's destination port and UDP checksum as a
//! frame built from scratch for that port has them. Needs root.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use libbpf_rs::libbpf_sys::{XDP_ABORTED, XDP_TX};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::ProgramInput;
use xdpctl::net::frame::{self, UdpSpec};
use xdpctl::obj::skel::trafficgen::{TrafficgenSkel, TrafficgenSkelBuilder};

fn spec(src: &str, dst: &str, port: u16, size: usize) -> UdpSpec {
    UdpSpec {
        src_mac: "02:00:00:00:00:01".parse().expect("MAC"),
        dst_mac: "02:00:00:00:00:02".parse().expect("MAC"),
        src_ip: src.parse().expect("IP"),
        dst_ip: dst.parse().expect("IP"),
        src_port: 40000,
        dst_port: port,
        size,
    }
}

/// Runs `test` on xdp_trafficgen set up for UDP at `udp_offset` and the
/// destination ports `first..=last`.
fn with_generator(ip: IpAddr, first: u16, last: u16, test: impl FnOnce(&TrafficgenSkel<'_>)) {
    let mut storage = MaybeUninit::uninit();
    let mut open = TrafficgenSkelBuilder::default().open(&mut storage).expect("open skeleton");
    let config = open.maps.rodata_data.as_deref_mut().expect(".rodata");
    config.udp_offset = frame::udp_offset(ip) as u32;
    config.port_first = first;
    config.port_count = u32::from(last - first) + 1;
    let skel = open.load().expect("load xdp_trafficgen (root needed)");
    test(&skel);
}

/// One run on `frame`: the verdict and the frame as the program left it.
fn run(skel: &TrafficgenSkel<'_>, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 256];
    let input =
        ProgramInput { data_in: Some(frame), data_out: Some(&mut out), ..Default::default() };
    let output = skel.progs.xdp_trafficgen.test_run(input).expect("test_run");
    let len = output.data.expect("data out").len();
    let verdict = output.return_value;
    out.truncate(len);
    (verdict, out)
}

fn frames_sent(skel: &TrafficgenSkel<'_>) -> u64 {
    skel.maps.bss_data.as_deref().expect(".bss").frames_sent
}

#[test]
#[ignore = "needs root"]
fn ports_cycle_and_checksums_stay_right_ipv4_and_ipv6() {
    for (src, dst, size) in [("198.18.0.1", "198.18.0.2", 64), ("2001:2::1", "2001:2::2", 91)] {
        let (first, last) = (65533u16, 65535u16);
        let ip: IpAddr = dst.parse().expect("IP");
        with_generator(ip, first, last, |skel| {
            let template = frame::udp(&spec(src, dst, first, size)).expect("template");
            for i in 0..7u16 {
                let (verdict, out) = run(skel, &template);
                assert_eq!(verdict, XDP_TX, "frame {i}");
                let port = first + i % 3;
                let want = frame::udp(&spec(src, dst, port, size)).expect("reference frame");
                assert_eq!(out, want, "{dst} frame {i}: port {port}");
            }
            assert_eq!(frames_sent(skel), 7);
        });
    }
}

/// `--udp-dst 0-65535`: 65536 ports, the last one included, then port 0 again.
#[test]
#[ignore = "needs root"]
fn the_whole_port_range_reaches_65535_and_wraps() {
    let (src, dst) = ("198.18.0.1", "198.18.0.2");
    let ip: IpAddr = dst.parse().expect("IP");
    with_generator(ip, 0, 65535, |skel| {
        let template = frame::udp(&spec(src, dst, 0, 64)).expect("template");
        // 65535 runs on one buffer (a plain test run repeats in place):
        // ports 0 to 65534, each rewrite on top of the last.
        let mut out = vec![0u8; template.len() + 256];
        let input = ProgramInput {
            data_in: Some(&template),
            data_out: Some(&mut out),
            repeat: 65535,
            ..Default::default()
        };
        let output = skel.progs.xdp_trafficgen.test_run(input).expect("test_run");
        assert_eq!(output.return_value, XDP_TX);
        let len = output.data.expect("data out").len();
        out.truncate(len);
        assert_eq!(out, frame::udp(&spec(src, dst, 65534, 64)).expect("frame"), "port 65534");
        for port in [65535, 0, 1] {
            let want = frame::udp(&spec(src, dst, port, 64)).expect("reference frame");
            assert_eq!(run(skel, &template), (XDP_TX, want), "port {port}");
        }
        assert_eq!(frames_sent(skel), 65535 + 3);
    });
}

#[test]
#[ignore = "needs root"]
fn a_fixed_port_leaves_the_frame_alone() {
    let ip: IpAddr = "198.18.0.2".parse().expect("IP");
    with_generator(ip, 9, 9, |skel| {
        let template = frame::udp(&spec("198.18.0.1", "198.18.0.2", 9, 64)).expect("template");
        for _ in 0..3 {
            assert_eq!(run(skel, &template), (XDP_TX, template.clone()));
        }
        assert_eq!(frames_sent(skel), 3);
    });
}

#[test]
#[ignore = "needs root"]
fn a_zero_udp_checksum_stays_zero() {
    let ip: IpAddr = "198.18.0.2".parse().expect("IP");
    with_generator(ip, 100, 101, |skel| {
        let mut template = frame::udp(&spec("198.18.0.1", "198.18.0.2", 100, 64)).expect("frame");
        template[40..42].copy_from_slice(&[0, 0]); // IPv4 UDP: no checksum
        let (verdict, out) = run(skel, &template);
        assert_eq!(verdict, XDP_TX);
        assert_eq!(out, template, "first port of the range: unchanged");
        let (_, out) = run(skel, &template);
        assert_eq!(&out[36..38], &101u16.to_be_bytes());
        assert_eq!(&out[40..42], &[0, 0], "still no checksum");
    });
}

#[test]
#[ignore = "needs root"]
fn a_frame_too_short_for_the_udp_header_is_aborted() {
    let ip: IpAddr = "2001:2::2".parse().expect("IP");
    with_generator(ip, 1, 2, |skel| {
        let short = vec![0u8; 60]; // the UDP header would start at 54 and end at 62
        let (verdict, _) = run(skel, &short);
        assert_eq!(verdict, XDP_ABORTED);
    });
}
