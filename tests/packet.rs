//! The packet programs (packet01-03) on real interfaces: each test builds its
//! own namespaces and veths, sends real traffic between their ends and checks
//! what a user would: replies, deliveries, captures and counters.
//! Needs root.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::lab::Veth;
use common::{run, unique, xdpctl_ok, Lab, RemoveDir, Stats, PING6_REPLY_BYTES, XDPCTL};

/// Ethernet + IPv6 + ICMPv6 echo request with ping's 56 data bytes.
const PING6_REQUEST_BYTES: u64 = PING6_REPLY_BYTES;

/// tcpdump running until it has seen its packets; started only once it
/// says it is listening, so nothing sent afterwards is missed.
struct Capture(Child);

impl Capture {
    fn start(netns: Option<&str>, args: &[&str]) -> Capture {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tcpdump"]);
                c
            }
            None => Command::new("tcpdump"),
        };
        let mut child = cmd
            .args(["-l", "-t", "-nn", "-e"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running tcpdump");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("tcpdump did not start listening");
        Capture(child)
    }

    /// The packets printed, once tcpdump has its count (or after 5 s).
    fn lines(mut self) -> Vec<String> {
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let out = std::mem::replace(&mut self.0, Command::new("true").spawn().expect("true"))
            .wait_with_output()
            .expect("tcpdump output");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xdpctl run inside network namespace `ns` (same mount namespace, so
/// the pins land in the host's bpffs).
fn xdpctl_in(ns: &str, args: &[&str]) -> String {
    let netns = format!("--net=/run/netns/{ns}");
    let mut all = vec![netns.as_str(), XDPCTL];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&run("nsenter", &all).stdout).into_owned()
}

fn stats_in(ns: &str, dev: &str) -> Stats {
    let out =
        xdpctl_in(ns, &["--json", "stats", "--dev", dev, "--count", "1", "--interval", "0.05"]);
    Stats(serde_json::from_str(out.lines().last().expect("a sample")).expect("stats JSON"))
}

#[test]
#[ignore = "needs root"]
fn parser_drops_the_pings_with_even_sequence_numbers() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);

    // Sequence numbers 1..=10 arrive at the outer end: 2, 4, ... 10 dropped.
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 10), 5);

    let stats = lab.stats();
    assert_eq!(stats.packets("XDP_DROP"), 5);
    assert_eq!(stats.bytes("XDP_DROP"), 5 * PING6_REQUEST_BYTES);
    assert_eq!(stats.packets("XDP_PASS"), 5);
}

#[test]
#[ignore = "needs root"]
fn port_rewrite_delivers_a_datagram_for_port_n_plus_1_to_port_n() {
    let lab = Lab::new();
    // Full checksums on the wire and verified on arrival: a wrong checksum
    // after the rewrite would make the kernel drop the datagram.
    lab.exec(&["ethtool", "-K", "veth0", "tx", "off"]);
    run("ethtool", &["-K", &lab.outer, "rx", "off"]);
    let listener = UdpSocket::bind((lab.outer_ip.as_str(), 0)).expect("bind listener");
    listener.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let port = listener.local_addr().expect("addr").port();
    let sent_to = UdpSocket::bind((lab.outer_ip.as_str(), port + 1));
    let sent_to = sent_to.expect("port N+1 is free too (rerun if not)");
    sent_to.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");

    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_port_rewrite"]);
    let send = format!("printf xdpctl > /dev/udp/{}/{}", lab.outer_ip, port + 1);
    lab.exec(&["bash", "-c", &send]);

    let mut buf = [0u8; 64];
    let (len, from) = listener.recv_from(&mut buf).expect("datagram on port N");
    assert_eq!(&buf[..len], b"xdpctl");
    assert_eq!(from.ip().to_string(), lab.inner_ip);
    assert!(sent_to.recv_from(&mut buf).is_err(), "nothing may reach port N+1");
    assert_eq!(lab.stats().packets("XDP_PASS"), 1);
}

#[test]
#[ignore = "needs root"]
fn vlan_swap_tags_untagged_frames_with_vlan_1() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_vlan_swap"]);
    // AF_PACKET taps see the frame after XDP: tagged, as a VLAN device would.
    let capture = Capture::start(None, &["-i", &lab.outer, "-c", "3", "vlan 1 and icmp6"]);
    // Nothing answers tagged frames here (no VLAN device): no replies.
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 3), 0);
    let lines = capture.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        assert!(line.contains("802.1Q") && line.contains("vlan 1,"), "{line}");
        assert!(line.contains("ethertype IPv6"), "{line}");
        assert!(line.contains(&format!("{} > {}", lab.inner_ip, lab.outer_ip)), "{line}");
        assert!(line.contains("echo request"), "{line}");
    }
    assert_eq!(lab.stats().packets("XDP_PASS"), 3);
}

/// The lab's inner end answers pings from XDP while its kernel ignores them.
#[test]
#[ignore = "needs root"]
fn icmp_echo_answers_pings_with_xdp_tx() {
    for mode in ["--native-mode", "--skb-mode"] {
        let lab = Lab::new();
        lab.exec(&["sysctl", "-qw", "net.ipv6.icmp.echo_ignore_all=1"]);
        assert_eq!(count_replies(&lab, 1), 0, "the kernel still answers");
        // XDP_TX out of a native veth reaches the peer only if the peer runs
        // NAPI; here GRO on did not do it (redirects it does), an XDP program does.
        xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_pass"]);
        // Full checksums, as from a real wire: a locally sent frame carries a
        // partial one, which XDP cannot update into a correct one.
        run("ethtool", &["-K", &lab.outer, "tx", "off"]);

        let pins = std::path::Path::new("/sys/fs/bpf").join(unique("xe"));
        let _cleanup = RemoveDir(&pins);
        let pin_dir = pins.to_string_lossy();
        xdpctl_in(
            &lab.ns,
            &["load", "--dev", "veth0", "--progname", "xdp_icmp_echo", mode, "--pin-dir", &pin_dir],
        );
        assert_eq!(count_replies(&lab, 10), 10, "{mode}");

        let stats = stats_in(&lab.ns, "veth0");
        assert_eq!(stats.packets("XDP_TX"), 10, "{mode}");
        assert_eq!(stats.bytes("XDP_TX"), 10 * PING6_REQUEST_BYTES, "{mode}");
    }
}

/// xdp_icmp_echo on a veth whose peer has no XDP program answers no one,
/// and load says so, naming the fix; with a program on the peer it works,
/// and load says nothing.
#[test]
#[ignore = "needs root"]
fn icmp_echo_on_a_veth_warns_while_the_peer_would_drop_its_answers() {
    let lab = Lab::new();
    lab.exec(&["sysctl", "-qw", "net.ipv6.icmp.echo_ignore_all=1"]);
    run("ethtool", &["-K", &lab.outer, "tx", "off"]);
    let load_echo = || {
        let netns = format!("--net=/run/netns/{}", lab.ns);
        let load = ["load", "--dev", "veth0", "--progname", "xdp_icmp_echo", "--force"];
        run("nsenter", &[&[netns.as_str(), XDPCTL], &load[..]].concat())
    };
    let out = load_echo();
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = format!(
        "xdpctl: warning: xdp_icmp_echo answers with XDP_TX, but veth0's veth peer {} has no \
         XDP program, so it drops every answer (ping gets no reply); load one on it: ",
        lab.outer
    );
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.starts_with(&warning), "{err}");
    // Run where the peer is (here): through nsenter where /proc/1 lets us.
    assert!(err.contains(&format!("xdpctl load --dev {}`", lab.outer)), "{err}");
    assert_eq!(count_replies(&lab, 3), 0, "the warning is true");

    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_pass"]);
    let out = load_echo();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "nothing to warn of");
    assert_eq!(count_replies(&lab, 3), 3, "the hint works");
}

/// redirect's note on a veth target comes only while its peer would drop
/// the frames, with the fix run where the peer lives; with GRO on there, none.
#[test]
#[ignore = "needs root"]
fn redirect_notes_a_veth_peer_only_while_it_would_drop() {
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", "xdp_redirect_map"]);
    let redirect =
        || xdpctl_ok(&["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer]);
    let out = redirect();
    let gro = format!("`nsenter --net=/run/netns/{} ethtool -K veth0 gro on`", right.ns);
    assert!(out.contains("and it has neither") && out.contains(&gro), "{out}");
    right.exec(&["ethtool", "-K", "veth0", "gro", "on"]);
    let out = redirect();
    assert!(!out.contains("note:"), "GRO is on: {out}");
}

fn count_replies(lab: &Lab, count: u32) -> u32 {
    let out = Command::new("ping")
        .args(["-6", "-n", "-q", "-c", &count.to_string(), "-i", "0.05", "-W", "1"])
        .arg(&lab.inner_ip)
        .output()
        .expect("running ping");
    common::received(&String::from_utf8_lossy(&out.stdout))
}

#[test]
#[ignore = "needs root"]
fn redirect_map_sends_the_left_labs_frames_to_the_right_lab() {
    redirect_between_labs("xdp_redirect_map");
}

#[test]
#[ignore = "needs root"]
fn redirect_sends_every_frame_to_the_right_lab() {
    redirect_between_labs("xdp_redirect");
}

fn redirect_between_labs(program: &str) {
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", program]);
    // Its full name, though the kernel keeps only 15 characters of it.
    assert_eq!(left.attached()[0]["name"], program);
    // Not configured yet: everything passes.
    assert_eq!(left.ping_from_inside(&left.outer_ip, 2), 2);

    // MACs from the veth peers: the left lab's inside to the right lab's inside.
    let out = xdpctl_ok(&["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer]);
    let from = if program == "xdp_redirect" { "*" } else { left.inner_mac.as_str() };
    assert!(out.contains(&format!("forward: {from} -> {}", right.inner_mac)), "{out}");
    right.exec(&["ethtool", "-K", "veth0", "gro", "on"]);

    let filter = format!("icmp6 and src {} and ether dst {}", left.inner_ip, right.inner_mac);
    let capture = Capture::start(Some(&right.ns), &["-i", "veth0", "-c", "5", &filter]);
    // The right lab gets the pings, which are not its own: no replies.
    assert_eq!(left.ping_from_inside(&left.outer_ip, 5), 0);
    let lines = capture.lines();
    assert_eq!(lines.len(), 5, "{program}: {lines:#?}");
    for line in &lines {
        assert!(line.starts_with(&left.inner_mac), "{line}");
        assert!(line.contains("echo request"), "{line}");
    }
    let stats = left.stats();
    assert_eq!(stats.packets("XDP_REDIRECT"), 5, "{program}");
    assert_eq!(stats.bytes("XDP_REDIRECT"), 5 * PING6_REQUEST_BYTES, "{program}");
    assert_eq!(stats.packets("XDP_PASS"), 2, "{program}");
}

/// Three namespaces: host1 - router - host2, forwarding on in the router,
/// xdp_router on both of its interfaces.
struct Routed {
    h1: String,
    rt: String,
    h2: String,
    pins: Vec<std::path::PathBuf>,
}

impl Routed {
    fn new() -> Routed {
        let t = Routed { h1: unique("xh"), rt: unique("xr"), h2: unique("xh"), pins: Vec::new() };
        for ns in [&t.h1, &t.rt, &t.h2] {
            run("ip", &["netns", "add", ns]);
        }
        for (i, host) in [(1, &t.h1), (2, &t.h2)] {
            let (r_if, r_mac, h_mac) =
                (format!("r{i}"), format!("02:00:00:00:0{i}:01"), format!("02:00:00:00:0{i}:02"));
            let veth = Veth {
                ns: Some(&t.rt),
                name: &r_if,
                mac: Some(&r_mac),
                peer: "eth0",
                peer_mac: Some(&h_mac),
                peer_ns: Some(host),
            };
            veth.add().expect("a veth pair");
            let ip = |ns: &str, args: &[&str]| {
                let mut all = vec!["-n", ns];
                all.extend_from_slice(args);
                run("ip", &all);
            };
            let (r6, h6) = (format!("fd79::{i}:1"), format!("fd79::{i}:2"));
            let (r4, h4) = (format!("10.201.{i}.1"), format!("10.201.{i}.2"));
            ip(&t.rt, &["addr", "add", &format!("{r6}/112"), "dev", &r_if, "nodad"]);
            ip(&t.rt, &["addr", "add", &format!("{r4}/24"), "dev", &r_if]);
            ip(host, &["addr", "add", &format!("{h6}/112"), "dev", "eth0", "nodad"]);
            ip(host, &["addr", "add", &format!("{h4}/24"), "dev", "eth0"]);
            // Static neighbours: the router never has to pass a frame for
            // the kernel to resolve one, so the counts are exact.
            for (ns, dev, addr, mac) in [
                (t.rt.as_str(), r_if.as_str(), &h6, &h_mac),
                (t.rt.as_str(), r_if.as_str(), &h4, &h_mac),
                (host.as_str(), "eth0", &r6, &r_mac),
                (host.as_str(), "eth0", &r4, &r_mac),
            ] {
                ip(ns, &["neigh", "add", addr, "lladdr", mac, "dev", dev, "nud", "permanent"]);
            }
            ip(&t.rt, &["link", "set", &r_if, "up"]);
            ip(host, &["link", "set", "eth0", "up"]);
            ip(host, &["route", "add", "default", "via", &r4]);
            ip(host, &["-6", "route", "add", "default", "via", &r6]);
            // Redirected frames reach a veth's peer only if it runs NAPI.
            run("ip", &["netns", "exec", host, "ethtool", "-K", "eth0", "gro", "on"]);
        }
        run(
            "ip",
            &[
                "netns",
                "exec",
                &t.rt,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        );
        t
    }

    fn load(&mut self, dev: &str) {
        let pins = std::path::Path::new("/sys/fs/bpf").join(unique("xp"));
        self.pins.push(pins.clone());
        let pin_dir = pins.to_string_lossy().into_owned();
        xdpctl_in(
            &self.rt,
            &["load", "--dev", dev, "--progname", "xdp_router", "--pin-dir", &pin_dir],
        );
    }

    fn ping(&self, target: &str, count: u32) -> u32 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.h1, "ping", "-n", "-q", "-c", &count.to_string()])
            .args(["-i", "0.05", "-W", "1", target])
            .output()
            .expect("running ping");
        common::received(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        // Unload takes the records along; deleting the namespaces deletes
        // their veths and whatever else is attached.
        for dev in ["r1", "r2"] {
            let _ = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.rt))
                .args([XDPCTL, "-q", "unload", "--force", "--dev", dev])
                .output();
        }
        for ns in [&self.h1, &self.rt, &self.h2] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for pins in &self.pins {
            let _ = std::fs::remove_dir_all(pins);
        }
    }
}

#[test]
#[ignore = "needs root"]
fn router_forwards_ipv4_and_ipv6_and_drops_unreachable() {
    let mut t = Routed::new();
    t.load("r1");
    t.load("r2");

    for target in ["fd79::2:2", "10.201.2.2"] {
        assert_eq!(t.ping(target, 5), 5, "ping {target} through the router");
    }
    // Requests redirected at r1, replies at r2; nothing left to the kernel.
    for dev in ["r1", "r2"] {
        let stats = stats_in(&t.rt, dev);
        assert_eq!(stats.packets("XDP_REDIRECT"), 10, "{dev}");
    }

    run("ip", &["-n", &t.rt, "route", "add", "unreachable", "fd79::99:0/112"]);
    run("ip", &["-n", &t.rt, "route", "add", "blackhole", "10.201.99.0/24"]);
    assert_eq!(t.ping("fd79::99:1", 3), 0);
    assert_eq!(t.ping("10.201.99.1", 3), 0);
    assert_eq!(stats_in(&t.rt, "r1").packets("XDP_DROP"), 6);
}
