//! xdp_router through BPF_PROG_TEST_RUN: bpf_fib_lookup needs an ingress
//! device with routes and neighbours, so each test builds them in a network
//! namespace of its own thread (gone with the thread), then feeds crafted
//! frames "arriving" on that device. Needs root.

mod common;

use std::mem::MaybeUninit;
use std::process::Command;

use libbpf_rs::libbpf_sys::{XDP_DROP, XDP_PASS, XDP_REDIRECT};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapHandle, ProgramInput};
use nix::net::if_::if_nametoindex;
use xdpctl::obj::skel::xdp_prog::XdpProgKernSkelBuilder;
use xdpctl::obj::statsmap::StatsMap;

use common::frame::{mac_text, ones_sum, udp, Frame};
use common::lab::{self, Veth};

const IN_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const SENDER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 2];
const OUT_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 1];
const NEXT_HOP_MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-ec", cmd]).output().expect("sh");
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Run `test` on a thread in a fresh network namespace: `in0` (the ingress
/// device, forwarding on) and `out0` towards next hop 10.2.0.2 / fd02::2.
fn in_private_netns(test: impl FnOnce(u32) + Send + 'static) {
    std::thread::spawn(move || {
        lab::private_netns(true).expect("a private netns");
        // Children fork from this thread, so `ip` and `sysctl` act in here.
        let (in_mac, sender_mac) = (mac_text(IN_MAC), mac_text(SENDER_MAC));
        let (out_mac, nh) = (mac_text(OUT_MAC), mac_text(NEXT_HOP_MAC));
        let _pairs: Vec<_> =
            [("in0", &in_mac, "in1", &sender_mac), ("out0", &out_mac, "out1", &nh)]
                .map(|(name, mac, peer, peer_mac)| {
                    let veth = Veth {
                        name,
                        mac: Some(mac),
                        peer,
                        peer_mac: Some(peer_mac),
                        ..Veth::default()
                    };
                    veth.add_up().expect("a veth pair")
                })
                .into();
        sh(&format!(
            "ip link set lo up
             ip addr add 10.1.0.1/24 dev in0
             ip addr add fd01::1/64 dev in0 nodad
             ip addr add 10.2.0.1/24 dev out0
             ip addr add fd02::1/64 dev out0 nodad
             ip neigh add 10.2.0.2 lladdr {nh} dev out0 nud permanent
             ip neigh add fd02::2 lladdr {nh} dev out0 nud permanent
             ip route add 10.3.0.0/16 via 10.2.0.2
             ip route add fd03::/64 via fd02::2
             ip route add unreachable 10.9.0.0/16
             ip route add blackhole 10.8.0.0/16
             ip route add prohibit 10.7.0.0/16
             ip route add unreachable fd09::/64
             ip route add blackhole fd08::/64
             ip route add prohibit fd07::/64
             sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1",
        ));
        let ifindex = if_nametoindex("in0").expect("in0");
        test(ifindex);
    })
    .join()
    .expect("the test thread panicked");
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = IN_MAC.to_vec();
    f.extend_from_slice(&SENDER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Ethernet + IPv4 (UDP without checksum, not the router's business,
/// `payload` bytes after an 8-byte UDP header), DF set.
fn ipv4(dst: [u8; 4], ttl: u8, payload: usize) -> Vec<u8> {
    Frame::v4(udp(12345, 53))
        .without_udp_checksum()
        .frag(0x4000)
        .src4([10, 1, 0, 2])
        .dst4(dst)
        .ttl(ttl)
        .payload((0..payload).map(|i| i as u8).collect())
        .src_mac(SENDER_MAC)
        .dst_mac(IN_MAC)
        .bytes()
}

/// Ethernet + IPv6 (UDP, `payload` bytes after the UDP header).
fn ipv6(dst: [u8; 16], hop_limit: u8, payload: usize) -> Vec<u8> {
    Frame::v6(udp(12345, 53))
        .src6(v6(1, 2))
        .dst6(dst)
        .ttl(hop_limit)
        .payload((0..payload).map(|i| i as u8).collect())
        .src_mac(SENDER_MAC)
        .dst_mac(IN_MAC)
        .bytes()
}

fn v6(prefix: u8, last: u8) -> [u8; 16] {
    [0xfd, prefix, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
}

/// Run xdp_router on `frame` as if it arrived on `ifindex`.
fn route(ifindex: u32, frame: &[u8]) -> (u32, Vec<u8>) {
    let (ret, out, _) = route_counted(ifindex, frame);
    (ret, out)
}

/// `route`, and the (packets, bytes) xdp_stats_map counted under its verdict.
fn route_counted(ifindex: u32, frame: &[u8]) -> (u32, Vec<u8>, (u64, u64)) {
    let mut storage = MaybeUninit::uninit();
    let skel = XdpProgKernSkelBuilder::default()
        .open(&mut storage)
        .expect("open")
        .load()
        .expect("load (root needed)");
    let mut ctx = xdpctl::xdp::attach::test_run_ctx(frame, ifindex);
    let mut out = vec![0u8; frame.len() + 64];
    let input = ProgramInput {
        data_in: Some(frame),
        data_out: Some(&mut out),
        context_in: Some(xdpctl::obj::skel::ctx_bytes(&mut ctx)),
        repeat: 1,
        ..Default::default()
    };
    let result = skel.progs.xdp_router.test_run(input).expect("test_run");
    let (ret, len) = (result.return_value, result.data.map_or(0, |d| d.len()));
    out.truncate(len);
    let handle = MapHandle::try_from(&skel.maps.xdp_stats_map).expect("map handle");
    let mut map = StatsMap::new(handle, "xdp_stats_map").expect("stats layout");
    let counted = map.read().expect("read").get(ret as usize).map(|r| (r.rx_packets, r.rx_bytes));
    (ret, out, counted.expect("a slot for the verdict"))
}

/// What a router does to `frame`: next hop's MAC, our MAC, TTL or hop limit
/// minus one, and (IPv4) a header checksum recomputed from scratch.
fn forwarded(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&NEXT_HOP_MAC);
    f[6..12].copy_from_slice(&OUT_MAC);
    if f[12..14] == [0x08, 0x00] {
        f[22] -= 1;
        f[24..26].copy_from_slice(&[0, 0]);
        let check = !ones_sum(&f[14..34]);
        f[24..26].copy_from_slice(&check.to_be_bytes());
    } else {
        f[21] -= 1;
    }
    f
}

#[test]
#[ignore = "needs root"]
fn forwards_along_a_route_with_ttl_and_macs_rewritten() {
    in_private_netns(|ifindex| {
        for (what, frame) in [
            ("IPv4", ipv4([10, 3, 0, 7], 64, 32)),
            ("IPv4, TTL 2", ipv4([10, 3, 0, 7], 2, 0)),
            ("IPv4 to the next hop itself", ipv4([10, 2, 0, 2], 255, 100)),
            ("IPv6", ipv6(v6(3, 7), 64, 32)),
            ("IPv6 to the next hop itself", ipv6(v6(2, 2), 2, 0)),
        ] {
            let (ret, out) = route(ifindex, &frame);
            assert_eq!(ret, XDP_REDIRECT, "{what}");
            assert_eq!(out, forwarded(&frame), "{what}");
            if frame[12..14] == [0x08, 0x00] {
                // The header still sums to 0xffff: a receiver accepts it.
                assert_eq!(ones_sum(&out[14..34]), 0xffff, "{what}");
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn drops_what_the_routes_refuse() {
    in_private_netns(|ifindex| {
        for (what, frame) in [
            ("IPv4 unreachable", ipv4([10, 9, 1, 1], 64, 0)),
            ("IPv4 blackhole", ipv4([10, 8, 1, 1], 64, 0)),
            ("IPv4 prohibit", ipv4([10, 7, 1, 1], 64, 0)),
            ("IPv6 unreachable", ipv6(v6(9, 1), 64, 0)),
            ("IPv6 blackhole", ipv6(v6(8, 1), 64, 0)),
            ("IPv6 prohibit", ipv6(v6(7, 1), 64, 0)),
        ] {
            let (ret, out) = route(ifindex, &frame);
            assert_eq!(ret, XDP_DROP, "{what}");
            assert_eq!(out, frame, "{what}: untouched");
        }
    });
}

#[test]
#[ignore = "needs root"]
fn passes_what_the_kernel_must_handle() {
    in_private_netns(|ifindex| {
        let big = 1400 - 14 - 20 - 8;
        sh("ip link set out0 mtu 1280");
        for (what, frame) in [
            ("IPv4 for this host (not forwarded)", ipv4([10, 1, 0, 1], 64, 0)),
            ("IPv6 for this host", ipv6(v6(1, 1), 64, 0)),
            ("IPv4 next hop without a neighbour", ipv4([10, 2, 0, 3], 64, 0)),
            ("IPv6 next hop without a neighbour", ipv6(v6(2, 3), 64, 0)),
            ("IPv4 TTL 1", ipv4([10, 3, 0, 7], 1, 0)),
            ("IPv4 TTL 0", ipv4([10, 3, 0, 7], 0, 0)),
            ("IPv6 hop limit 1", ipv6(v6(2, 2), 1, 0)),
            ("IPv4 above the egress MTU", ipv4([10, 3, 0, 7], 64, big)),
            ("IPv6 above the egress MTU", ipv6(v6(2, 2), 64, 1400 - 14 - 40 - 8)),
            ("ARP", {
                let mut f = eth(0x0806);
                f.extend([0u8; 28]);
                f
            }),
            ("VLAN-tagged IPv4", {
                let plain = ipv4([10, 3, 0, 7], 64, 0);
                let mut f = eth(0x8100);
                f.extend_from_slice(&[0, 5]);
                f.extend_from_slice(&plain[12..]);
                f
            }),
            ("IPv4 cut inside its header", ipv4([10, 3, 0, 7], 64, 0)[..30].to_vec()),
            ("IPv6 cut inside its header", ipv6(v6(2, 2), 64, 0)[..50].to_vec()),
        ] {
            let (ret, out) = route(ifindex, &frame);
            assert_eq!(ret, XDP_PASS, "{what}");
            assert_eq!(out, frame, "{what}: untouched");
        }
        // The kernel's forwarding switch off for the ingress device: its call.
        sh("sysctl -qw net.ipv4.conf.in0.forwarding=0 net.ipv6.conf.in0.forwarding=0");
        for frame in [ipv4([10, 3, 0, 7], 64, 0), ipv6(v6(2, 2), 64, 0)] {
            assert_eq!(route(ifindex, &frame).0, XDP_PASS, "forwarding off");
        }
    });
}

#[test]
#[ignore = "needs root"]
fn aborts_a_frame_cut_inside_its_ethernet_header() {
    in_private_netns(|ifindex| {
        // test_run refuses frames under 14 bytes; a VLAN type with its tag
        // cut off is the shortest malformed frame it takes.
        let mut frame = eth(0x8100);
        frame.extend_from_slice(&[0, 1]);
        assert_eq!(route(ifindex, &frame).0, libbpf_rs::libbpf_sys::XDP_ABORTED);
    });
}

#[test]
#[ignore = "needs root"]
fn forwards_jumbo_frames_where_the_egress_mtu_allows() {
    in_private_netns(|ifindex| {
        // IP packets of 9000 bytes: the test run hands them over in fragments.
        let v4 = ipv4([10, 3, 0, 7], 64, 9000 - 20 - 8);
        let v6 = ipv6(v6(3, 7), 64, 9000 - 40 - 8);
        assert_eq!((v4.len(), v6.len()), (9014, 9014));
        sh("ip link set out0 mtu 9000");
        for (what, frame) in [("IPv4", &v4), ("IPv6", &v6)] {
            let (ret, out, counted) = route_counted(ifindex, frame);
            assert_eq!(ret, XDP_REDIRECT, "{what}, egress MTU 9000");
            assert_eq!(out, forwarded(frame), "{what}, egress MTU 9000");
            assert_eq!(counted, (1, 9014), "{what}: counted whole");
        }
        // Too big for the egress: the kernel's to fragment or refuse.
        sh("ip link set out0 mtu 8999");
        for (what, frame) in [("IPv4", &v4), ("IPv6", &v6)] {
            let (ret, out, counted) = route_counted(ifindex, frame);
            assert_eq!(ret, XDP_PASS, "{what}, egress MTU 8999");
            assert_eq!(&out, frame, "{what}, egress MTU 8999: untouched");
            assert_eq!(counted, (1, 9014), "{what}: counted whole");
        }
    });
}
