//! Unit tests of the packet programs (packet01-03) through BPF_PROG_TEST_RUN:
//! frames built here, verdicts, output bytes and counters compared with values
//! computed here from the frame's description, never taken from a run.
//! xdp_router is tested elsewhere. Needs root (CAP_BPF).

mod common;

use libbpf_rs::libbpf_sys::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX};
use libbpf_rs::{ErrorKind, MapCore, MapFlags, MapHandle, ProgramInput, ProgramMut};
use xdpctl::obj::skel::xdp_prog::XdpProgKernSkel;
use xdpctl::obj::skel::{ctx_bytes, RedirectTarget, XdpMd};
use xdpctl::obj::statsmap::{action_name, StatsMap};

use common::frame::*;

/// xdp_vlan_swap's pop, on bytes: the 4 tag bytes after the MACs go, and the
/// tag's encapsulated protocol (bytes 16..18) becomes the ethertype.
fn popped(frame: &[u8]) -> Vec<u8> {
    [&frame[..12], &frame[16..]].concat()
}

/// xdp_vlan_swap's push, on bytes: TPID 0x8100 and TCI 1 after the MACs, the
/// old ethertype now the tag's encapsulated protocol.
fn pushed(frame: &[u8]) -> Vec<u8> {
    [&frame[..12], &[0x81, 0x00, 0x00, 0x01], &frame[12..]].concat()
}

fn with_dest(frame: &[u8], mac: Mac) -> Vec<u8> {
    [&mac, &frame[6..]].concat()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Running.

#[derive(Clone, Copy, Debug)]
enum Prog {
    Parser,
    PortRewrite,
    VlanSwap,
    IcmpEcho,
    Redirect,
    RedirectMap,
}

const ALL: [Prog; 6] = [
    Prog::Parser,
    Prog::PortRewrite,
    Prog::VlanSwap,
    Prog::IcmpEcho,
    Prog::Redirect,
    Prog::RedirectMap,
];

/// One loaded skeleton, and the counters its runs should have left.
struct Runner<'a, 'obj> {
    skel: &'a XdpProgKernSkel<'obj>,
    /// (packets, bytes) per action, ABORTED..REDIRECT.
    want: [(u64, u64); 5],
}

/// Loads a skeleton of its own for `test`, then checks xdp_stats_map counted
/// exactly the runs `test` expected.
fn with_loaded(test: impl FnOnce(&mut Runner<'_, '_>)) {
    common::with_skeleton(|skel| {
        let mut runner = Runner { skel, want: [(0, 0); 5] };
        test(&mut runner);
        runner.check_counters();
    });
}

impl<'obj> Runner<'_, 'obj> {
    fn program(&self, prog: Prog) -> &ProgramMut<'obj> {
        let p = &self.skel.progs;
        match prog {
            Prog::Parser => &p.xdp_parser,
            Prog::PortRewrite => &p.xdp_port_rewrite,
            Prog::VlanSwap => &p.xdp_vlan_swap,
            Prog::IcmpEcho => &p.xdp_icmp_echo,
            Prog::Redirect => &p.xdp_redirect,
            Prog::RedirectMap => &p.xdp_redirect_map,
        }
    }

    /// One run (repeat 1: repeats would rewrite the same buffer again).
    fn try_run(&self, prog: Prog, frame: &[u8]) -> libbpf_rs::Result<(u32, Vec<u8>)> {
        self.try_run_split(prog, frame, None)
    }

    /// One run with the frame's linear part `linear` bytes long, the rest in
    /// fragments (the kernel takes the length from ctx_in's data_end); None:
    /// as much as fits the linear part.
    fn try_run_split(
        &self,
        prog: Prog,
        frame: &[u8],
        linear: Option<u32>,
    ) -> libbpf_rs::Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut ctx = XdpMd { data_end: linear.unwrap_or(0), ..XdpMd::default() };
        let input = ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            context_in: linear.map(|_| ctx_bytes(&mut ctx)),
            ..Default::default()
        };
        let result = self.program(prog).test_run(input)?;
        let ret = result.return_value;
        let len = result.data.map_or(0, |d| d.len());
        out.truncate(len);
        Ok((ret, out))
    }

    /// Runs `frame`, expecting `verdict` and `want` out; returns what came out.
    fn run(&mut self, prog: Prog, frame: &[u8], verdict: u32, want: &[u8], what: &str) -> Vec<u8> {
        self.run_split(prog, frame, None, verdict, want, what)
    }

    /// `run` with the linear part `linear` bytes long (see try_run_split).
    fn run_split(
        &mut self,
        prog: Prog,
        frame: &[u8],
        linear: Option<u32>,
        verdict: u32,
        want: &[u8],
        what: &str,
    ) -> Vec<u8> {
        let (got, out) = self
            .try_run_split(prog, frame, linear)
            .unwrap_or_else(|e| panic!("{prog:?}, {what}: test_run: {e}"));
        assert_eq!(action_name(got), action_name(verdict), "{prog:?}, {what}: verdict");
        assert_eq!(hex(&out), hex(want), "{prog:?}, {what}: frame out");
        // The program counts the frame as it leaves it.
        let slot = &mut self.want[verdict as usize];
        slot.0 += 1;
        slot.1 += want.len() as u64;
        out
    }

    fn unchanged(&mut self, prog: Prog, frame: &[u8], verdict: u32, what: &str) {
        self.run(prog, frame, verdict, frame, what);
    }

    /// Runs every prefix of `frame` from 14 bytes on (test_run's minimum, see
    /// frames_shorter_than_ethernet_are_refused_by_test_run): ABORTED and
    /// untouched while cut inside Ethernet header or VLAN tags (`eth_len`),
    /// PASS and untouched while cut inside a header the program reads further
    /// in (before `needed`), and what `whole` says for the prefix from then on.
    fn sweep(
        &mut self,
        prog: Prog,
        frame: &[u8],
        (eth_len, needed): (usize, usize),
        what: &str,
        whole: impl Fn(&[u8]) -> (u32, Vec<u8>),
    ) {
        assert!(eth_len <= needed && needed <= frame.len());
        for len in 14..=frame.len() {
            let cut = &frame[..len];
            let what = format!("{what}, first {len} of {} bytes", frame.len());
            if len < eth_len {
                self.unchanged(prog, cut, XDP_ABORTED, &what);
            } else if len < needed {
                self.unchanged(prog, cut, XDP_PASS, &what);
            } else {
                let (verdict, out) = whole(cut);
                self.run(prog, cut, verdict, &out, &what);
            }
        }
    }

    fn check_counters(&self) {
        let handle = MapHandle::try_from(&self.skel.maps.xdp_stats_map).expect("map handle");
        let mut map = StatsMap::new(handle, "xdp_stats_map").expect("stats layout");
        let got: Vec<(u64, u64)> =
            map.read().expect("read").iter().map(|r| (r.rx_packets, r.rx_bytes)).collect();
        assert_eq!(got, self.want, "xdp_stats_map (packets, bytes) per action ABORTED..REDIRECT");
    }
}

// ---------------------------------------------------------------------------
// All programs.

/// The kernel refuses XDP test runs on less than an Ethernet header (EINVAL),
/// so the "shorter than 14 bytes" half of the ABORTED rule cannot be run here;
/// the cut-frame tests check ABORTED on frames cut inside their VLAN tags.
#[test]
#[ignore = "needs root"]
fn frames_shorter_than_ethernet_are_refused_by_test_run() {
    with_loaded(|r| {
        let frame = ping4(2).bytes();
        for prog in ALL {
            for len in 0..14 {
                let err = r.try_run(prog, &frame[..len]).expect_err("test_run under 14 bytes");
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{prog:?}, {len} bytes: {err}");
            }
            // 14 bytes run: an IPv4 ethertype with no IP header after it.
            let what = "Ethernet header only";
            match prog {
                Prog::VlanSwap => {
                    _ = r.run(prog, &frame[..14], XDP_PASS, &pushed(&frame[..14]), what)
                }
                _ => r.unchanged(prog, &frame[..14], XDP_PASS, what),
            }
        }
    });
}

// ---------------------------------------------------------------------------
// xdp_parser (packet01).

#[test]
#[ignore = "needs root"]
fn parser_drops_even_echo_requests_and_passes_everything_else() {
    let cases: Vec<(&str, Frame, u32)> = vec![
        ("IPv4 echo request seq 0", ping4(0), XDP_DROP),
        ("IPv4 echo request seq 2", ping4(2), XDP_DROP),
        ("IPv4 echo request seq 0xfffe", ping4(0xfffe), XDP_DROP),
        ("IPv4 echo request seq 1", ping4(1), XDP_PASS),
        ("IPv4 echo request seq 0xffff", ping4(0xffff), XDP_PASS),
        ("IPv4 echo request seq 0x0100 (odd read little endian)", ping4(0x0100), XDP_DROP),
        ("IPv4 echo request seq 0x0001 (even read little endian)", ping4(0x0001), XDP_PASS),
        ("IPv6 echo request seq 4", ping6(4), XDP_DROP),
        ("IPv6 echo request seq 5", ping6(5), XDP_PASS),
        ("IPv6 echo request seq 0x0200", ping6(0x0200), XDP_DROP),
        ("IPv4 echo request, IP options", ping4(2).ip_options(&IP_OPTIONS), XDP_DROP),
        ("IPv4 echo request, DF set", ping4(2).frag(0x4000), XDP_DROP),
        // The first fragment carries the ICMP header; only later ones do not.
        ("IPv4 echo request, first fragment", ping4(2).frag(0x2000), XDP_DROP),
        ("IPv4 echo request, later fragment", ping4(2).frag(0x0002), XDP_PASS),
        ("IPv4 echo request, middle fragment", ping4(2).frag(0x2002), XDP_PASS),
        ("IPv4 echo request, ihl 4", ping4(2).ihl(4), XDP_PASS),
        ("IPv4 echo request, ihl 0", ping4(2).ihl(0), XDP_PASS),
        ("IPv4 echo reply seq 2", ping4(2).kind(0), XDP_PASS),
        ("IPv6 echo reply seq 2", ping6(2).kind(129), XDP_PASS),
        ("IPv4 ICMP type 128", ping4(2).kind(128), XDP_PASS),
        ("IPv6 ICMPv6 type 8", ping6(2).kind(8), XDP_PASS),
        ("IPv4 destination unreachable", ping4(2).kind(3), XDP_PASS),
        ("IPv4 UDP", Frame::v4(udp(1000, 2000)), XDP_PASS),
        ("IPv4 TCP", Frame::v4(tcp(1000, 2000)), XDP_PASS),
        ("IPv6 UDP", Frame::v6(udp(1000, 2000)), XDP_PASS),
        ("IPv6 TCP", Frame::v6(tcp(1000, 2000)), XDP_PASS),
        // An echo request behind a hop-by-hop header: extensions are not skipped.
        (
            "IPv6 hop-by-hop, then echo request",
            Frame::v6(L4::Raw(0)).payload(vec![58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0, 0, 1, 0, 2]),
            XDP_PASS,
        ),
        ("ARP", arp(), XDP_PASS),
    ];
    with_loaded(|r| {
        for (what, frame, verdict) in &cases {
            for tags in TAG_SETS {
                let frame = frame.clone().tags(tags);
                let what = format!("{what}, tags {tags:04x?}");
                assert_checksums(&frame.bytes(), &what);
                r.unchanged(Prog::Parser, &frame.bytes(), *verdict, &what);
            }
        }
        // Two 802.1Q tags are as good as QinQ; a third tag is beyond the parser.
        let qq = ping4(2).tags(&[(ETH_P_8021Q, 1), (ETH_P_8021Q, 2)]);
        r.unchanged(Prog::Parser, &qq.bytes(), XDP_DROP, "two 802.1Q tags");
        let three = ping4(2).tags(&[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)]);
        r.unchanged(Prog::Parser, &three.bytes(), XDP_PASS, "three tags");
    });
}

#[test]
#[ignore = "needs root"]
fn parser_on_cut_frames_aborts_in_the_tags_and_passes_further_in() {
    let frames = [
        ("IPv4 echo request seq 2, QinQ", ping4(2).tags(TAG_SETS[3])),
        (
            "IPv4 echo request seq 2, IP options, 802.1Q",
            ping4(2).ip_options(&IP_OPTIONS).tags(TAG_SETS[1]),
        ),
        ("IPv6 echo request seq 2, 802.1ad", ping6(2).tags(TAG_SETS[2])),
        ("IPv6 echo request seq 2, QinQ", ping6(2).tags(TAG_SETS[3])),
        ("IPv4 echo request seq 4", ping4(4)),
    ];
    with_loaded(|r| {
        for (what, f) in &frames {
            let bounds = (f.eth_len(), f.headers_len());
            r.sweep(Prog::Parser, &f.bytes(), bounds, what, |cut| (XDP_DROP, cut.to_vec()));
        }
    });
}

// ---------------------------------------------------------------------------
// xdp_port_rewrite (packet02).

type Build = fn(L4) -> Frame;

const NETS: [(&str, Build); 3] = [
    ("IPv4", Frame::v4),
    ("IPv4 with options", |l4| Frame::v4(l4).ip_options(&IP_OPTIONS)),
    ("IPv6", Frame::v6),
];

/// Runs `frame` through xdp_port_rewrite expecting PASS and the same frame
/// built with destination port `dport`; checks the checksums of what came out.
fn expect_rewrite(r: &mut Runner<'_, '_>, frame: &Frame, dport: u16, what: &str) -> Vec<u8> {
    assert_checksums(&frame.bytes(), &format!("{what} (input)"));
    let want = frame.clone().with_dport(dport).bytes();
    let out = r.run(Prog::PortRewrite, &frame.bytes(), XDP_PASS, &want, what);
    assert_checksums(&out, what);
    out
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_decrements_udp_and_tcp_destination_ports() {
    let l4s = [
        ("UDP", udp(40000, 53)),
        ("TCP", tcp(40001, 443)),
        ("TCP with options", tcp_with_options(40002, 8080)),
    ];
    with_loaded(|r| {
        for (net, build) in NETS {
            for (proto, l4) in &l4s {
                for tags in TAG_SETS {
                    let frame = build(l4.clone()).tags(tags);
                    let what = format!("{proto} over {net}, tags {tags:04x?}");
                    expect_rewrite(r, &frame, frame.dport() - 1, &what);
                }
            }
        }
        // Empty, odd and even payloads; a first fragment and DF (they have the header).
        for payload in [vec![], vec![7; 1], vec![0x5a; 64]] {
            let len = payload.len();
            for f in [Frame::v4(udp(1, 1000)), Frame::v6(tcp(1, 1000))] {
                let f = f.payload(payload.clone());
                expect_rewrite(r, &f, 999, &format!("{len}-byte payload"));
            }
        }
        let first = Frame::v4(udp(1, 1000)).frag(0x2000);
        expect_rewrite(r, &first, 999, "UDP, first fragment");
        let df = Frame::v4(tcp(1, 1000)).frag(0x4000);
        expect_rewrite(r, &df, 999, "TCP, DF set");
    });
}

/// `frame` with the last two payload bytes chosen so that its one's complement
/// sum is 0xffff when its destination port is `dport`, i.e. its computed
/// checksum then is 0 (and UDP must send 0xffff).
fn zero_checksum_with(frame: Frame, dport: u16) -> Frame {
    let mut payload = frame.payload.clone();
    assert_eq!(payload.len() % 2, 0, "the chosen word must be aligned");
    payload.extend([0, 0]);
    let probe = frame.clone().with_dport(dport).payload(payload.clone());
    let word = 0xffff - probe.l4_sum();
    let n = payload.len();
    payload[n - 2..].copy_from_slice(&word.to_be_bytes());
    let done = frame.payload(payload);
    assert_eq!(done.clone().with_dport(dport).l4_sum(), 0xffff);
    done
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_checksum_edge_cases_and_port_wrap() {
    with_loaded(|r| {
        for tags in [TAG_SETS[0], TAG_SETS[3]] {
            // UDP over IPv4 without checksum: stays without one.
            let f = Frame::v4(udp(5000, 53)).without_udp_checksum().tags(tags);
            let what = format!("UDP over IPv4, checksum 0, tags {tags:04x?}");
            let out = expect_rewrite(r, &f, 52, &what);
            assert_eq!(be16(&out, f.l4_offset() + 6), 0, "no checksum stays none");

            for (net, build) in NETS {
                let net = format!("{net}, tags {tags:04x?}");
                let even = build(udp(5000, 53)).payload(vec![0x33; 20]).tags(tags);
                // The rewritten datagram's checksum computes to 0: sent as 0xffff.
                let f = zero_checksum_with(even.clone(), 52);
                let what = format!("UDP over {net}, checksum computes to 0 after rewrite");
                let out = expect_rewrite(r, &f, 52, &what);
                assert_eq!(be16(&out, f.l4_offset() + 6), 0xffff, "{what}");

                // The received checksum is 0xffff (computed 0): a checksum, not "none".
                let f = zero_checksum_with(even, 53);
                assert_eq!(be16(&f.bytes(), f.l4_offset() + 6), 0xffff);
                let what = format!("UDP over {net}, checksum 0xffff before rewrite");
                let out = expect_rewrite(r, &f, 52, &what);
                assert_ne!(be16(&out, f.l4_offset() + 6), 0xffff, "{what}");

                // TCP sends a computed 0 as 0.
                let even = build(tcp(5000, 53)).payload(vec![0x33; 20]).tags(tags);
                let f = zero_checksum_with(even, 52);
                let what = format!("TCP over {net}, checksum computes to 0 after rewrite");
                let out = expect_rewrite(r, &f, 52, &what);
                assert_eq!(be16(&out, f.l4_offset() + 16), 0, "{what}");

                for (from, to) in [(0, 0xffff), (1, 0), (0xffff, 0xfffe), (0x0100, 0x00ff)] {
                    for l4 in [udp(7, from), tcp(7, from)] {
                        let f = build(l4).tags(tags);
                        expect_rewrite(r, &f, to, &format!("{net}, port {from} -> {to}"));
                    }
                }
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_leaves_other_traffic_untouched() {
    let cases: Vec<(&str, Frame)> = vec![
        ("UDP, later fragment", Frame::v4(udp(1, 1000)).frag(0x0001)),
        ("UDP, middle fragment", Frame::v4(udp(1, 1000)).frag(0x2010)),
        ("TCP, last fragment with DF", Frame::v4(tcp(1, 1000)).frag(0x5fff)),
        ("UDP, ihl 4", Frame::v4(udp(1, 1000)).ihl(4)),
        ("TCP, doff 4", Frame::v4(tcp(1, 1000)).tcp_doff(4)),
        ("IPv6 TCP, doff 0", Frame::v6(tcp(1, 1000)).tcp_doff(0)),
        ("ICMP echo request", ping4(2)),
        ("ICMPv6 echo request", ping6(2)),
        (
            "IPv6 hop-by-hop, then UDP",
            Frame::v6(L4::Raw(0)).payload(vec![17, 0, 1, 4, 0, 0, 0, 0, 0, 1, 3, 0xe8, 0, 8, 0, 0]),
        ),
        ("IPv4 GRE", Frame::v4(L4::Raw(47)).payload(vec![0, 0, 0x08, 0x00, 0, 1, 3, 0xe8])),
        ("ARP", arp()),
        (
            "UDP, three tags",
            Frame::v4(udp(1, 1000)).tags(&[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)]),
        ),
    ];
    with_loaded(|r| {
        for (what, frame) in &cases {
            for tags in TAG_SETS {
                // The three-tag case keeps its own tags.
                let frame =
                    if frame.tags.is_empty() { frame.clone().tags(tags) } else { frame.clone() };
                let what = format!("{what}, tags {tags:04x?}");
                r.unchanged(Prog::PortRewrite, &frame.bytes(), XDP_PASS, &what);
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_on_cut_frames_aborts_in_the_tags_and_passes_further_in() {
    let frames = [
        ("UDP over IPv4, QinQ", Frame::v4(udp(9, 1000)).tags(TAG_SETS[3])),
        (
            "TCP with options over IPv4 with options, 802.1Q",
            Frame::v4(tcp_with_options(9, 1000)).ip_options(&IP_OPTIONS).tags(TAG_SETS[1]),
        ),
        ("UDP over IPv6, 802.1ad", Frame::v6(udp(9, 1000)).tags(TAG_SETS[2])),
        (
            "TCP with options over IPv6, QinQ",
            Frame::v6(tcp_with_options(9, 1000)).tags(TAG_SETS[3]),
        ),
        ("UDP over IPv4", Frame::v4(udp(9, 0))),
    ];
    with_loaded(|r| {
        for (what, f) in &frames {
            // Only header bytes change, so a prefix's rewrite is the whole
            // frame's rewrite cut to the same length.
            let whole = f.clone().with_dport(f.dport().wrapping_sub(1)).bytes();
            let bounds = (f.eth_len(), f.headers_len());
            r.sweep(Prog::PortRewrite, &f.bytes(), bounds, what, |cut| {
                (XDP_PASS, whole[..cut.len()].to_vec())
            });
        }
    });
}

// ---------------------------------------------------------------------------
// xdp_vlan_swap (packet02).

#[test]
#[ignore = "needs root"]
fn vlan_swap_pops_the_outer_tag() {
    let cases: Vec<(&str, Frame, Tags)> = vec![
        ("UDP over IPv4, 802.1Q", Frame::v4(udp(1, 2)), &[(ETH_P_8021Q, 5)]),
        ("IPv6 echo request, 802.1ad", ping6(1), &[(ETH_P_8021AD, 7)]),
        ("ARP, 802.1Q with PCP and DEI", arp(), &[(ETH_P_8021Q, 0xf00a)]),
        ("TCP over IPv6, QinQ", Frame::v6(tcp(1, 2)), TAG_SETS[3]),
        (
            "IPv4 echo request, three tags",
            ping4(1),
            &[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)],
        ),
        ("tag and nothing else", Frame::other(0x88b5, vec![]), &[(ETH_P_8021Q, 9)]),
    ];
    with_loaded(|r| {
        for (what, frame, tags) in &cases {
            let input = frame.clone().tags(tags).bytes();
            let want = frame.clone().tags(&tags[1..]).bytes();
            // Built two ways: the frame without its outer tag, and the bytes cut.
            assert_eq!(hex(&popped(&input)), hex(&want), "{what}: test's expectations agree");
            assert_eq!(want.len(), input.len() - 4);
            r.run(Prog::VlanSwap, &input, XDP_PASS, &want, what);
        }
    });
}

#[test]
#[ignore = "needs root"]
fn vlan_swap_pushes_vlan_1_onto_untagged_frames() {
    let cases: Vec<(&str, Frame)> = vec![
        ("UDP over IPv4", Frame::v4(udp(1, 2))),
        ("IPv6 echo request", ping6(1)),
        ("ARP", arp()),
        ("Ethernet header only", Frame::other(0x88b5, vec![])),
        ("full-size frame", Frame::v4(udp(1, 2)).payload(vec![0xee; 1472])),
    ];
    with_loaded(|r| {
        for (what, frame) in &cases {
            let input = frame.bytes();
            let want = frame.clone().tags(&[(ETH_P_8021Q, 1)]).bytes();
            assert_eq!(hex(&pushed(&input)), hex(&want), "{what}: test's expectations agree");
            assert_eq!(want.len(), input.len() + 4);
            let out = r.run(Prog::VlanSwap, &input, XDP_PASS, &want, what);
            // And back: the tag just pushed is the outer one, and goes.
            r.run(Prog::VlanSwap, &out, XDP_PASS, &input, &format!("{what}, pushed then popped"));
        }
    });
}

#[test]
#[ignore = "needs root"]
fn vlan_swap_on_cut_frames_aborts_in_the_tags() {
    let frames = [
        ("802.1Q", Frame::v4(udp(1, 2)).tags(TAG_SETS[1])),
        ("QinQ", ping6(1).tags(TAG_SETS[3])),
        ("two 802.1ad", arp().tags(&[(ETH_P_8021AD, 1), (ETH_P_8021AD, 2)])),
    ];
    with_loaded(|r| {
        for (what, f) in &frames {
            // Nothing past the tags is read: a whole Ethernet part is enough.
            let bounds = (f.eth_len(), f.eth_len());
            r.sweep(Prog::VlanSwap, &f.bytes(), bounds, what, |cut| (XDP_PASS, popped(cut)));
        }
        let untagged = Frame::v4(udp(1, 2)).bytes();
        r.sweep(Prog::VlanSwap, &untagged, (14, 14), "untagged", |cut| (XDP_PASS, pushed(cut)));
    });
}

// ---------------------------------------------------------------------------
// xdp_icmp_echo (packet03).

/// Runs an echo request expecting XDP_TX and the reply built here.
fn expect_reply(r: &mut Runner<'_, '_>, request: &Frame, what: &str) {
    assert_checksums(&request.bytes(), &format!("{what} (input)"));
    let want = request.echo_reply().bytes();
    let out = r.run(Prog::IcmpEcho, &request.bytes(), XDP_TX, &want, what);
    assert_checksums(&out, what);
}

#[test]
#[ignore = "needs root"]
fn icmp_echo_answers_unicast_echo_requests() {
    let link_local = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let cases: Vec<(&str, Frame)> = vec![
        ("IPv4", ping4(1)),
        ("IPv4, even seq", ping4(2)),
        ("IPv4 with options", ping4(3).ip_options(&IP_OPTIONS)),
        ("IPv4, DF set", ping4(4).frag(0x4000)),
        ("IPv4, no payload", ping4(5).payload(vec![])),
        ("IPv4, 56-byte payload", ping4(6).payload((0..56).collect())),
        ("IPv4 to 223.255.255.254", ping4(7).dst4([223, 255, 255, 254])),
        ("IPv6", ping6(1)),
        ("IPv6, no payload", ping6(2).payload(vec![])),
        ("IPv6, 56-byte payload", ping6(3).payload((0..56).collect())),
        ("IPv6 to fe80::1", ping6(4).dst6(link_local)),
    ];
    with_loaded(|r| {
        for (what, frame) in &cases {
            for tags in TAG_SETS {
                expect_reply(r, &frame.clone().tags(tags), &format!("{what}, tags {tags:04x?}"));
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn icmp_echo_leaves_other_packets_to_the_kernel() {
    let all_nodes = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let site_routers = [0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let cases: Vec<(&str, Frame)> = vec![
        ("IPv4 echo reply", ping4(1).kind(0)),
        ("IPv6 echo reply", ping6(1).kind(129)),
        ("IPv4 type 128", ping4(1).kind(128)),
        ("IPv6 type 8", ping6(1).kind(8)),
        ("IPv4 timestamp request", ping4(1).kind(13)),
        ("IPv4 to 224.0.0.1", ping4(1).dst4([224, 0, 0, 1])),
        ("IPv4 to 239.255.255.255", ping4(1).dst4([239, 255, 255, 255])),
        ("IPv4 to 255.255.255.255", ping4(1).dst4([255, 255, 255, 255])),
        ("IPv6 to ff02::1", ping6(1).dst6(all_nodes)),
        ("IPv6 to ff05::2", ping6(1).dst6(site_routers)),
        ("IPv4 first fragment", ping4(1).frag(0x2000)),
        ("IPv4 middle fragment", ping4(1).frag(0x2004)),
        ("IPv4 last fragment", ping4(1).frag(0x0004)),
        ("IPv4 ihl 4", ping4(1).ihl(4)),
        (
            "IPv6 hop-by-hop, then echo request",
            Frame::v6(L4::Raw(0)).payload(vec![58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0, 0, 1, 0, 1]),
        ),
        ("UDP over IPv4", Frame::v4(udp(1, 7))),
        ("TCP over IPv6", Frame::v6(tcp(1, 7))),
        ("ARP", arp()),
    ];
    with_loaded(|r| {
        for (what, frame) in &cases {
            for tags in TAG_SETS {
                let what = format!("{what}, tags {tags:04x?}");
                r.unchanged(Prog::IcmpEcho, &frame.clone().tags(tags).bytes(), XDP_PASS, &what);
            }
        }
        let three = ping4(1).tags(&[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)]);
        r.unchanged(Prog::IcmpEcho, &three.bytes(), XDP_PASS, "three tags");
    });
}

/// Group MACs (the I/G bit, 0x01 of the first octet, set): a reply would
/// carry one as its source.
const GROUP_MACS: [(&str, Mac); 5] = [
    ("broadcast", [0xff; 6]),
    ("IPv4 multicast 01:00:5e:00:00:01", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
    ("IPv6 multicast 33:33:00:00:00:01", [0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
    ("IPv6 multicast 33:33:ff:00:00:02", [0x33, 0x33, 0xff, 0x00, 0x00, 0x02]),
    ("locally administered group 03:..", [0x03, 0x00, 0x00, 0x00, 0x00, 0x0b]),
];

#[test]
#[ignore = "needs root"]
fn icmp_echo_leaves_requests_to_group_macs_to_the_kernel() {
    // `ping -b` to a subnet's broadcast address: an IPv4 destination that
    // looks unicast, sent to the broadcast MAC.
    let subnet_broadcast = [198, 51, 100, 255];
    let requests: Vec<(&str, Frame)> = vec![
        ("IPv4", ping4(1)),
        ("IPv4 to 198.51.100.255", ping4(2).dst4(subnet_broadcast)),
        ("IPv6", ping6(1)),
        ("IPv6, 56-byte payload", ping6(2).payload((0..56).collect())),
    ];
    with_loaded(|r| {
        for (mac_what, mac) in GROUP_MACS {
            for (what, frame) in &requests {
                for tags in TAG_SETS {
                    let f = frame.clone().dst_mac(mac).tags(tags).bytes();
                    let what = format!("{what} to {mac_what}, tags {tags:04x?}");
                    r.unchanged(Prog::IcmpEcho, &f, XDP_PASS, &what);
                }
            }
            // Cut short: still ABORTED inside the tags, PASS from then on.
            let f = ping6(3).dst_mac(mac).tags(TAG_SETS[3]);
            let bounds = (f.eth_len(), f.eth_len());
            let what = format!("IPv6, QinQ, to {mac_what}");
            r.sweep(Prog::IcmpEcho, &f.bytes(), bounds, &what, |cut| (XDP_PASS, cut.to_vec()));
        }
    });
}

#[test]
#[ignore = "needs root"]
fn icmp_echo_on_cut_frames_aborts_in_the_tags_and_passes_further_in() {
    let frames = [
        ("IPv4, QinQ", ping4(1).tags(TAG_SETS[3])),
        ("IPv4 with options, 802.1Q", ping4(2).ip_options(&IP_OPTIONS).tags(TAG_SETS[1])),
        ("IPv6, 802.1ad", ping6(3).tags(TAG_SETS[2])),
        ("IPv6", ping6(4)),
    ];
    with_loaded(|r| {
        for (what, f) in &frames {
            // The checksum is updated for the changed word only, so a prefix's
            // reply is the whole reply cut to the same length.
            let reply = f.echo_reply().bytes();
            let bounds = (f.eth_len(), f.headers_len());
            r.sweep(Prog::IcmpEcho, &f.bytes(), bounds, what, |cut| {
                (XDP_TX, reply[..cut.len()].to_vec())
            });
        }
    });
}

// ---------------------------------------------------------------------------
// xdp_redirect and xdp_redirect_map (packet03).

const NEW_DST: Mac = [0x02, 0xcc, 0x00, 0x00, 0x00, 0x03];
const LO: u32 = 1;

fn set_target(r: &Runner<'_, '_>, ifindex: u32, dest_mac: Mac) {
    let target = RedirectTarget { ifindex, dest_mac, pad: [0; 2] };
    // SAFETY: RedirectTarget is Plain (src/skel.rs): no padding, no pointers.
    let value = unsafe { plain::as_bytes(&target) };
    r.skel
        .maps
        .redirect_target
        .update(&0u32.to_ne_bytes(), value, MapFlags::ANY)
        .expect("set target");
}

fn redirect_frames() -> Vec<(String, Vec<u8>)> {
    let mut frames = Vec::new();
    for tags in TAG_SETS {
        frames.push((format!("IPv4 echo request, tags {tags:04x?}"), ping4(1).tags(tags).bytes()));
        frames.push((
            format!("UDP over IPv6, tags {tags:04x?}"),
            Frame::v6(udp(1, 2)).tags(tags).bytes(),
        ));
    }
    frames.push(("ARP".into(), arp().bytes()));
    frames.push(("Ethernet header only".into(), Frame::other(0x88b5, vec![]).bytes()));
    frames
}

#[test]
#[ignore = "needs root"]
fn redirect_sends_everything_to_the_configured_target_only() {
    let cut = ping6(1).tags(TAG_SETS[3]);
    with_loaded(|r| {
        // A fresh map reads as ifindex 0: not configured.
        for (what, frame) in redirect_frames() {
            r.unchanged(Prog::Redirect, &frame, XDP_PASS, &format!("unconfigured, {what}"));
        }

        set_target(r, LO, NEW_DST);
        for (what, frame) in redirect_frames() {
            let what = format!("to lo, {what}");
            r.run(Prog::Redirect, &frame, XDP_REDIRECT, &with_dest(&frame, NEW_DST), &what);
        }
        let what = "to lo, IPv6 QinQ";
        r.sweep(Prog::Redirect, &cut.bytes(), (cut.eth_len(), cut.eth_len()), what, |c| {
            (XDP_REDIRECT, with_dest(c, NEW_DST))
        });

        // test_run does not carry the redirect out: any ifindex will do.
        set_target(r, 0x7fff_0000, SRC_MAC);
        let frame = ping4(1).bytes();
        r.run(
            Prog::Redirect,
            &frame,
            XDP_REDIRECT,
            &with_dest(&frame, SRC_MAC),
            "to ifindex 0x7fff0000",
        );

        // Back to ifindex 0: the MAC set with it is not written.
        set_target(r, 0, NEW_DST);
        for (what, frame) in redirect_frames() {
            r.unchanged(Prog::Redirect, &frame, XDP_PASS, &format!("reset, {what}"));
        }
        r.sweep(Prog::Redirect, &cut.bytes(), (cut.eth_len(), cut.eth_len()), "reset", |c| {
            (XDP_PASS, c.to_vec())
        });
    });
}

#[test]
#[ignore = "needs root"]
fn redirect_map_redirects_known_sources_while_tx_port_is_set() {
    let other_src: Mac = [0x02, 0xdd, 0x00, 0x00, 0x00, 0x04];
    let cut = Frame::v4(udp(1, 2)).tags(TAG_SETS[3]);
    with_loaded(|r| {
        let skel = r.skel;
        let maps = &skel.maps;
        let key = 0u32.to_ne_bytes();
        let from_other = |frame: &[u8]| [&frame[..6], &other_src, &frame[12..]].concat();

        for (what, frame) in redirect_frames() {
            r.unchanged(Prog::RedirectMap, &frame, XDP_PASS, &format!("empty maps, {what}"));
        }

        maps.redirect_params.update(&SRC_MAC, &NEW_DST, MapFlags::ANY).expect("set params");
        for (what, frame) in redirect_frames() {
            let what = format!("known source, tx_port empty, {what}");
            r.unchanged(Prog::RedirectMap, &frame, XDP_PASS, &what);
        }

        // lo has no ndo_xdp_xmit, but the devmap only needs a device to hold.
        maps.tx_port.update(&key, &LO.to_ne_bytes(), MapFlags::ANY).expect("tx_port = lo");
        for (what, frame) in redirect_frames() {
            let want = with_dest(&frame, NEW_DST);
            r.run(Prog::RedirectMap, &frame, XDP_REDIRECT, &want, &format!("known source, {what}"));
            let frame = from_other(&frame);
            r.unchanged(Prog::RedirectMap, &frame, XDP_PASS, &format!("unknown source, {what}"));
        }
        let what = "known source, UDP QinQ";
        r.sweep(Prog::RedirectMap, &cut.bytes(), (cut.eth_len(), cut.eth_len()), what, |c| {
            (XDP_REDIRECT, with_dest(c, NEW_DST))
        });

        // The destination follows the map.
        maps.redirect_params.update(&other_src, &SRC_MAC, MapFlags::ANY).expect("set params");
        let frame = from_other(&ping6(1).bytes());
        let want = with_dest(&frame, SRC_MAC);
        r.run(Prog::RedirectMap, &frame, XDP_REDIRECT, &want, "second source");

        // tx_port emptied: known sources pass again, untouched.
        maps.tx_port.delete(&key).expect("clear tx_port");
        for (what, frame) in redirect_frames() {
            r.unchanged(Prog::RedirectMap, &frame, XDP_PASS, &format!("tx_port cleared, {what}"));
        }
        r.sweep(Prog::RedirectMap, &cut.bytes(), (cut.eth_len(), cut.eth_len()), "cleared", |c| {
            (XDP_PASS, c.to_vec())
        });
    });
}

// ---------------------------------------------------------------------------
// Jumbo frames. The programs are frags-aware, and the kernel's test run hands
// such a program a frame longer than a page's linear part (about 3.5 KB) in
// fragments: the headers lie in the linear part, the rest of the payload in
// the fragments, which must come out as they went in, with checksums over the
// whole frame still right.

/// A frame at MTU 9000: an IP packet of 9000 bytes and the Ethernet header.
const JUMBO: usize = 9000 + 14;

/// `frame` with its payload grown to make it `JUMBO` bytes long, each byte
/// its position mod 251, so that a piece out of place shows.
fn jumbo(frame: Frame) -> Frame {
    let headers = frame.bytes().len() - frame.payload.len();
    frame.payload((0..JUMBO - headers).map(|i| (i % 251) as u8).collect())
}

#[test]
#[ignore = "needs root"]
fn parser_judges_jumbo_frames_by_their_headers() {
    let cases: Vec<(&str, Frame, u32)> = vec![
        ("IPv4 echo request seq 2", ping4(2), XDP_DROP),
        ("IPv4 echo request seq 1", ping4(1), XDP_PASS),
        ("IPv6 echo request seq 4", ping6(4), XDP_DROP),
        ("IPv6 echo request seq 5", ping6(5), XDP_PASS),
        ("UDP over IPv4", Frame::v4(udp(1000, 2000)), XDP_PASS),
        ("TCP over IPv6", Frame::v6(tcp(1000, 2000)), XDP_PASS),
    ];
    with_loaded(|r| {
        for (what, frame, verdict) in &cases {
            for tags in TAG_SETS {
                let f = jumbo(frame.clone().tags(tags)).bytes();
                assert_eq!(f.len(), JUMBO);
                let what = format!("{what}, {JUMBO} bytes, tags {tags:04x?}");
                assert_checksums(&f, &what);
                r.unchanged(Prog::Parser, &f, *verdict, &what);
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_on_jumbo_frames_keeps_the_checksum_over_the_whole_frame() {
    let cases: Vec<(&str, Frame)> = vec![
        ("UDP over IPv4", Frame::v4(udp(9, 1000))),
        ("UDP over IPv6", Frame::v6(udp(9, 1000))),
        ("TCP with options over IPv4", Frame::v4(tcp_with_options(9, 1000))),
        ("TCP over IPv6", Frame::v6(tcp(9, 53))),
    ];
    with_loaded(|r| {
        for (what, frame) in &cases {
            for tags in TAG_SETS {
                let f = jumbo(frame.clone().tags(tags));
                // Built from scratch: the checksum summed over every byte.
                let want = f.clone().with_dport(f.dport() - 1).bytes();
                let what = format!("{what}, {JUMBO} bytes, tags {tags:04x?}");
                let out = r.run(Prog::PortRewrite, &f.bytes(), XDP_PASS, &want, &what);
                assert_checksums(&out, &what);
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn vlan_swap_pushes_and_pops_tags_on_jumbo_frames() {
    with_loaded(|r| {
        for (what, frame) in [("UDP over IPv4", Frame::v4(udp(1, 2))), ("IPv6 echo", ping6(1))] {
            let f = jumbo(frame.clone());
            let tagged = f.clone().tags(&[(ETH_P_8021Q, 1)]).bytes();
            assert_eq!(tagged.len(), JUMBO + 4);
            let out =
                r.run(Prog::VlanSwap, &f.bytes(), XDP_PASS, &tagged, &format!("{what}, push"));
            r.run(Prog::VlanSwap, &out, XDP_PASS, &f.bytes(), &format!("{what}, pop"));

            let qinq = jumbo(frame.tags(TAG_SETS[3]));
            let inner = qinq.clone().tags(&TAG_SETS[3][1..]).bytes();
            r.run(Prog::VlanSwap, &qinq.bytes(), XDP_PASS, &inner, &format!("{what}, QinQ pop"));
        }
    });
}

#[test]
#[ignore = "needs root"]
fn icmp_echo_answers_jumbo_echo_requests() {
    with_loaded(|r| {
        for (what, frame) in [("IPv4", ping4(1)), ("IPv6", ping6(2))] {
            for tags in TAG_SETS {
                let request = jumbo(frame.clone().tags(tags));
                expect_reply(r, &request, &format!("{what}, {JUMBO} bytes, tags {tags:04x?}"));
            }
        }
    });
}

#[test]
#[ignore = "needs root"]
fn redirects_send_jumbo_frames_whole() {
    with_loaded(|r| {
        let frame = jumbo(Frame::v6(udp(1, 2))).bytes();
        r.unchanged(Prog::Redirect, &frame, XDP_PASS, "unconfigured");
        r.unchanged(Prog::RedirectMap, &frame, XDP_PASS, "empty maps");

        set_target(r, LO, NEW_DST);
        let maps = &r.skel.maps;
        maps.redirect_params.update(&SRC_MAC, &NEW_DST, MapFlags::ANY).expect("set params");
        maps.tx_port.update(&0u32.to_ne_bytes(), &LO.to_ne_bytes(), MapFlags::ANY).expect("lo");
        let want = with_dest(&frame, NEW_DST);
        r.run(Prog::Redirect, &frame, XDP_REDIRECT, &want, "to lo");
        r.run(Prog::RedirectMap, &frame, XDP_REDIRECT, &want, "known source, to lo");
    });
}

/// Where a driver ends the linear part is its choice: a header that reaches
/// past it into a fragment counts as cut short (ABORTED inside the Ethernet
/// header and tags, PASS and untouched further in), as the cut-frame tests
/// have it for a frame that ends there.
#[test]
#[ignore = "needs root"]
fn headers_reaching_past_the_linear_part_count_as_cut_short() {
    let cases: Vec<(Prog, &str, Frame)> = vec![
        (Prog::Parser, "IPv4 echo request seq 2, QinQ", ping4(2).tags(TAG_SETS[3])),
        (Prog::Parser, "IPv6 echo request seq 4", ping6(4)),
        (
            Prog::PortRewrite,
            "TCP with options over IPv4 with options, 802.1Q",
            Frame::v4(tcp_with_options(9, 1000)).ip_options(&IP_OPTIONS).tags(TAG_SETS[1]),
        ),
        (Prog::PortRewrite, "UDP over IPv6", Frame::v6(udp(9, 1000))),
        (Prog::IcmpEcho, "IPv6 echo request, 802.1ad", ping6(3).tags(TAG_SETS[2])),
        (Prog::IcmpEcho, "IPv4 echo request", ping4(3)),
    ];
    with_loaded(|r| {
        for (prog, what, frame) in &cases {
            let f = jumbo(frame.clone());
            let (whole_verdict, whole) = match prog {
                Prog::Parser => (XDP_DROP, f.bytes()),
                Prog::PortRewrite => (XDP_PASS, f.clone().with_dport(f.dport() - 1).bytes()),
                Prog::IcmpEcho => (XDP_TX, f.echo_reply().bytes()),
                other => panic!("no expectation for {other:?}"),
            };
            let (eth_len, needed, bytes) = (f.eth_len(), f.headers_len(), f.bytes());
            for linear in 14..=needed + 1 {
                let what = format!("{what}, linear part {linear} of {JUMBO} bytes");
                let (verdict, want) = if linear < eth_len {
                    (XDP_ABORTED, &bytes)
                } else if linear < needed {
                    (XDP_PASS, &bytes)
                } else {
                    (whole_verdict, &whole)
                };
                r.run_split(*prog, &bytes, Some(linear as u32), verdict, want, &what);
            }
        }
    });
}
