//! The echo responders answer unicast only.

use super::*;

/// An AF_PACKET socket on `veth0` inside a lab's namespace, as tcpdump opens
/// one: it sends whole frames and sees every frame veth0 sends or receives
/// (but its own).
struct Tap(std::os::fd::OwnedFd);

impl Tap {
    fn open(ns: &str) -> Tap {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
        use std::os::fd::AsRawFd;
        let netns = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // setns moves only the calling thread; the socket stays in the
        // namespace it was made in.
        let fd = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let fd = socket(
                    AddressFamily::Packet,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    SockProtocol::EthAll,
                )
                .unwrap();
                let ifindex = nix::net::if_::if_nametoindex("veth0").unwrap();
                // SAFETY: an all-zero sockaddr_ll is valid; the fields set are plain integers.
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
                addr.sll_ifindex = ifindex as i32;
                // SAFETY: `addr` is a live sockaddr_ll and the length is its size.
                let rc = unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(rc, 0, "binding to veth0: {}", std::io::Error::last_os_error());
                fd
            })
            .join()
            .unwrap()
        });
        let timeout = nix::sys::time::TimeVal::new(0, 300_000);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .unwrap();
        let tap = Tap(fd);
        tap.frames(); // whatever came before the case
        tap
    }

    fn send(&self, frame: &[u8]) {
        use nix::sys::socket::{send, MsgFlags};
        use std::os::fd::AsRawFd;
        let sent = send(self.0.as_raw_fd(), frame, MsgFlags::empty()).unwrap();
        assert_eq!(sent, frame.len());
    }

    /// The frames seen since the last call, until none came for 300 ms.
    fn frames(&self) -> Vec<Vec<u8>> {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => frames.push(buf[..n].to_vec()),
                Err(nix::errno::Errno::EAGAIN) => return frames,
                Err(e) => panic!("reading the tap: {e}"),
            }
        }
    }
}

fn mac_of(text: &str) -> [u8; 6] {
    text.parse::<xdpctl::net::mac::Mac>().unwrap().0
}

/// The I/G bit: multicast and broadcast MACs have it.
fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 0x01 != 0
}

/// An ICMPv6 echo request from `src` to `dst` (seq `seq`, 16 data bytes),
/// checksum computed by the frame builder; `macs` is (destination, source).
fn echo6(macs: ([u8; 6], [u8; 6]), src: &str, dst: &str, seq: u16) -> Vec<u8> {
    let addr = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    ping6(seq)
        .src6(addr(src))
        .dst6(addr(dst))
        .payload(vec![0x5a; 16])
        .dst_mac(macs.0)
        .src_mac(macs.1)
        .bytes()
}

/// An ICMP echo request from `src` to `dst`, checksums computed by the
/// frame builder; `macs` is (destination, source).
fn echo4(macs: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    ping4(seq).src4(src).dst4(dst).payload(vec![0x5a; 16]).dst_mac(macs.0).src_mac(macs.1).bytes()
}

/// Echo requests from inside the lab to a group MAC: IPv6 to the outer
/// end's address and to ff02::1, and IPv4 as `ping -b` sends them, to a
/// subnet's broadcast address, or to 224.0.0.1. Each with a destination MAC
/// whose I/G bit is set.
fn group_requests(lab: &Lab) -> Vec<(String, Vec<u8>)> {
    let inner = mac_of(&lab.inner_mac);
    let (bcast, all_nodes, all_hosts) =
        ([0xff; 6], [0x33, 0x33, 0, 0, 0, 1], [0x01, 0x00, 0x5e, 0, 0, 1]);
    let (src4, subnet_bcast) = ([192, 0, 2, 2], [192, 0, 2, 255]);
    let mut out = Vec::new();
    for (i, (what, mac)) in
        [("broadcast", bcast), ("33:33:00:00:00:01", all_nodes), ("01:00:5e:00:00:01", all_hosts)]
            .into_iter()
            .enumerate()
    {
        let seq = 10 * i as u16;
        let v6 = |dst: &str, n| echo6((mac, inner), &lab.inner_ip, dst, seq + n);
        out.push((format!("IPv6 to {} at {what}", lab.outer_ip), v6(&lab.outer_ip, 1)));
        out.push((format!("IPv6 to ff02::1 at {what}"), v6("ff02::1", 2)));
        let v4 = |dst, n| echo4((mac, inner), src4, dst, seq + n);
        out.push((format!("IPv4 to 192.0.2.255 at {what}"), v4(subnet_bcast, 3)));
        out.push((format!("IPv4 to 224.0.0.1 at {what}"), v4([224, 0, 0, 1], 4)));
    }
    out
}

/// No frame on the wire carries a group source MAC.
fn assert_no_group_source(frames: &[Vec<u8>], what: &str) {
    for f in frames {
        let src = xdpctl::net::mac::Mac(f[6..12].try_into().unwrap());
        assert!(!is_group(src.0), "{what}: a frame from {src}: {f:02x?}");
    }
}

/// Frames from `from` to `to` carrying an ICMPv6 echo reply.
fn echo6_replies(frames: &[Vec<u8>], from: [u8; 6], to: [u8; 6]) -> usize {
    let reply =
        |f: &Vec<u8>| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 129;
    frames.iter().filter(|f| f[..6] == to && f[6..12] == from && reply(f)).count()
}

// Case s10.
#[test]
#[ignore = "needs root"]
fn xdp_icmp_echo_answers_only_unicast() {
    let _s = serial();
    let pins = Path::new("/sys/fs/bpf").join(unique("xs10"));
    let _rm = common::RemoveDir(&pins); // after the lab's own cleanup
    let lab = Lab::new();
    // XDP_TX out of a veth reaches its peer only while the peer runs NAPI,
    // which an XDP program there gives it.
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let pin_dir = pins.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "-q", "load", "--dev", "veth0", "--pin-dir", pin_dir],
    );
    let (outer, inner) = (mac_of(&lab.outer_mac), mac_of(&lab.inner_mac));
    let tap = Tap::open(&lab.ns);
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_icmp_echo"]);

    let requests = group_requests(&lab);
    for (_, frame) in &requests {
        tap.send(frame);
    }
    // And ping's own way to the all-nodes group.
    let ping = lab.exec(&["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", "ff02::1%veth0"]);
    let frames = tap.frames();
    let what: Vec<&str> = requests.iter().map(|(w, _)| w.as_str()).collect();
    assert_no_group_source(&frames, &format!("{what:#?}"));
    let stats = lab.stats();
    assert_eq!(stats.packets("XDP_TX"), 0, "requests to a group MAC answered in XDP");
    assert!(stats.packets("XDP_PASS") >= requests.len() as u64 + 2, "{:?}", stats.0);
    // The kernel decided; its replies (ping's among them) come from the
    // outer end's own MAC.
    assert!(common::received(&String::from_utf8_lossy(&ping.stdout)) > 0, "{ping:?}");
    assert!(echo6_replies(&frames, outer, inner) > 0, "no reply from the kernel");

    // A unicast request is still answered in XDP, and the tap sees it.
    tap.send(&echo6((outer, inner), &lab.inner_ip, &lab.outer_ip, 99));
    let frames = tap.frames();
    assert_eq!(echo6_replies(&frames, outer, inner), 1, "{frames:02x?}");
    assert_eq!(lab.stats().packets("XDP_TX"), 1);

    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    before.assert_unchanged("xdp_icmp_echo under group-addressed pings");
}

// Case s10.
#[test]
#[ignore = "needs root"]
fn afxdp_echo_answers_only_unicast() {
    let _s = serial();
    let lab = Lab::new();
    let (outer, inner) = (mac_of(&lab.outer_mac), mac_of(&lab.inner_mac));
    let tap = Tap::open(&lab.ns);
    let before = System::settled();
    let x = lab.spawn_xdpctl(&["--json", "afxdp", "--dev", &lab.outer, "-i", "0.2", "--poll"]);
    x.wait_for("a first report", |l| l.contains("\"rx\""));

    let requests = group_requests(&lab);
    for (_, frame) in &requests {
        tap.send(frame);
    }
    let frames = tap.frames();
    let what: Vec<&str> = requests.iter().map(|(w, _)| w.as_str()).collect();
    assert_no_group_source(&frames, &format!("{what:#?}"));
    assert_eq!(echo6_replies(&frames, outer, inner), 0, "{frames:02x?}");

    // A unicast request is still answered from user space.
    tap.send(&echo6((outer, inner), &lab.inner_ip, &lab.outer_ip, 99));
    let frames = tap.frames();
    assert_eq!(echo6_replies(&frames, outer, inner), 1, "{frames:02x?}");

    let f = x.signal("INT");
    assert!(f.status.success(), "{}", f.stderr);
    let line = f.rest.iter().rev().find(|l| l.contains("\"final\":true")).expect("final report");
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    // Received and recycled, as every frame it does not answer.
    assert_eq!(report["tx"]["packets"], 1, "{report}");
    assert!(report["rx"]["packets"].as_u64().unwrap() > requests.len() as u64, "{report}");
    before.assert_unchanged("xdpctl afxdp under group-addressed pings");
}
