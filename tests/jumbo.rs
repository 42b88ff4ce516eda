//! Jumbo frames on a real veth (issue 17, item 4): at MTU 9000 the kernel
//! attaches only frags-aware XDP programs in native mode. The shipped ones
//! are, so they load there and judge, count and sample `ping -s 8000` whole.
//! The pings go from inside the lab to the outer end, whose XDP program sees
//! the requests. Needs root.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{received, run, stderr, unique, xdpctl_ok, Lab, RemoveDir, Stats, TempDir, XDPCTL};

const MTU: u32 = 9000;
/// ping's data bytes: more than a page's linear part, less than the MTU.
const DATA: usize = 8000;
/// An echo request of `DATA` bytes on the wire: Ethernet, IPv6, ICMPv6 echo.
const FRAME: u64 = 14 + 40 + 8 + DATA as u64;
/// ping's pad pattern (`-p`): data byte k is PATTERN[k % 3], but for the
/// first 16, its timestamp.
const PATTERN: [u8; 3] = [0xc0, 0xff, 0xee];

/// `ping -s 8000` from inside to the outer end, `count` times; the replies.
fn big_ping(lab: &Lab, count: u32) -> u32 {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "ping", "-n", "-q", "-s", &DATA.to_string()])
        .args(["-p", "c0ffee", "-c", &count.to_string(), "-i", "0.05", "-W", "1"])
        .arg(&lab.outer_ip)
        .output()
        .expect("running ping");
    received(&String::from_utf8_lossy(&out.stdout))
}

/// xdpctl run in network namespace `ns` (nsenter: the host's bpffs stays).
fn xdpctl_in(ns: &str, args: &[&str]) -> String {
    let netns = format!("--net=/run/netns/{ns}");
    let out = run("nsenter", &[&[netns.as_str(), XDPCTL], args].concat());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads shipped program `prog` on the outer end in native mode.
fn load_native(lab: &Lab, prog: &str) {
    xdpctl_ok(&["load", "--dev", &lab.outer, "--mode", "native", "--progname", prog]);
    let attached = lab.attached();
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0]["mode"], "native", "{attached:?}");
}

#[test]
#[ignore = "needs root"]
fn every_shipped_program_attaches_in_native_mode_at_mtu_9000() {
    let lab = Lab::with_mtu(MTU);
    for prog in xdpctl::obj::catalog::PROGRAMS {
        load_native(&lab, prog.name);
        assert_eq!(lab.attached()[0]["name"], prog.name);
        xdpctl_ok(&["unload", "--dev", &lab.outer]);
    }
}

#[test]
#[ignore = "needs root"]
fn xdp_pass_passes_jumbo_pings_and_counts_them_whole() {
    let lab = Lab::with_mtu(MTU);
    load_native(&lab, "xdp_pass");
    assert_eq!(big_ping(&lab, 5), 5, "every request passed, every reply back");
    let stats = lab.stats();
    assert_eq!(stats.packets("XDP_PASS"), 5);
    assert_eq!(stats.bytes("XDP_PASS"), 5 * FRAME);
}

#[test]
#[ignore = "needs root"]
fn xdp_drop_drops_jumbo_pings_and_counts_them_whole() {
    let lab = Lab::with_mtu(MTU);
    load_native(&lab, "xdp_drop");
    assert_eq!(big_ping(&lab, 4), 0, "no request reached the stack");
    let stats = lab.stats();
    assert_eq!(stats.packets("XDP_DROP"), 4);
    assert_eq!(stats.bytes("XDP_DROP"), 4 * FRAME);
    assert_eq!(stats.packets("XDP_PASS"), 0);
}

#[test]
#[ignore = "needs root"]
fn xdp_parser_drops_the_jumbo_pings_with_even_sequence_numbers() {
    let lab = Lab::with_mtu(MTU);
    load_native(&lab, "xdp_parser");
    // Sequence numbers 1..=6: 2, 4 and 6 dropped.
    assert_eq!(big_ping(&lab, 6), 3);
    let stats = lab.stats();
    assert_eq!((stats.packets("XDP_DROP"), stats.bytes("XDP_DROP")), (3, 3 * FRAME));
    assert_eq!((stats.packets("XDP_PASS"), stats.bytes("XDP_PASS")), (3, 3 * FRAME));
}

/// XDP_TX of a multi-buffer frame: the inner end answers `ping -s 8000`
/// from XDP, and the replies reach the outer end (which runs NAPI, as a
/// veth's peer must for XDP_TX to arrive, by running xdp_pass).
#[test]
#[ignore = "needs root"]
fn xdp_icmp_echo_answers_jumbo_pings_with_xdp_tx() {
    let lab = Lab::with_mtu(MTU);
    lab.exec(&["sysctl", "-qw", "net.ipv6.icmp.echo_ignore_all=1"]);
    load_native(&lab, "xdp_pass");
    // Full checksums, as from a wire: XDP cannot complete a partial one.
    run("ethtool", &["-K", &lab.outer, "tx", "off"]);
    let pins = Path::new("/sys/fs/bpf").join(unique("xj"));
    let _cleanup = RemoveDir(&pins);
    let pin_dir = pins.to_string_lossy();
    let load = ["load", "--dev", "veth0", "--progname", "xdp_icmp_echo", "--mode", "native"];
    xdpctl_in(&lab.ns, &[&load[..], &["--pin-dir", &pin_dir]].concat());

    let out = Command::new("ping")
        .args(["-6", "-n", "-q", "-s", &DATA.to_string(), "-c", "4", "-i", "0.05", "-W", "1"])
        .arg(&lab.inner_ip)
        .output()
        .expect("running ping");
    assert_eq!(received(&String::from_utf8_lossy(&out.stdout)), 4, "replies from XDP");
    let sample = ["--json", "stats", "--dev", "veth0", "--count", "1", "--interval", "0.05"];
    let stats = xdpctl_in(&lab.ns, &sample);
    let stats = Stats(serde_json::from_str(stats.lines().last().expect("a sample")).unwrap());
    assert_eq!((stats.packets("XDP_TX"), stats.bytes("XDP_TX")), (4, 4 * FRAME));
}

/// Redirects of multi-buffer frames from one lab's outer end to another's:
/// the other lab's inner end samples them (natively, which also gives it the
/// NAPI a veth needs to take redirected frames) whole.
#[test]
#[ignore = "needs root"]
fn redirects_carry_jumbo_frames_to_another_veth() {
    for program in ["xdp_redirect", "xdp_redirect_map"] {
        let (left, right) = (Lab::with_mtu(MTU), Lab::with_mtu(MTU));
        load_native(&left, program);
        xdpctl_ok(&["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer]);

        let dir = TempDir::new();
        let file = dir.0.join("redirected.pcap");
        let netns = format!("--net=/run/netns/{}", right.ns);
        let child = Command::new("nsenter")
            .args([netns.as_str(), XDPCTL, "sample", "--dev", "veth0", "--mode", "native"])
            .args(["-c", "3", "-w", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning xdpctl sample");
        let sampler = Sampler(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while xdpctl_in(&right.ns, &["--json", "status", "--dev", "veth0"]).trim() == "[]" {
            assert!(Instant::now() < deadline, "the sampler never attached");
            sleep(Duration::from_millis(20));
        }
        // The right lab gets the requests, which are not its own: no replies.
        assert_eq!(big_ping(&left, 3), 0, "{program}");
        sampler.finish();
        let records = pcap_records(&file);
        assert_eq!(records.len(), 3, "{program}");
        for (orig, bytes) in records {
            assert_eq!((u64::from(orig), bytes.len() as u64), (FRAME, FRAME), "{program}");
            assert_eq!(bytes[..6], mac_bytes(&right.inner_mac), "{program}: the new destination");
        }
        let stats = left.stats();
        assert_eq!(stats.packets("XDP_REDIRECT"), 3, "{program}");
        assert_eq!(stats.bytes("XDP_REDIRECT"), 3 * FRAME, "{program}");
    }
}

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':').map(|o| u8::from_str_radix(o, 16).expect("a hex octet")).collect()
}

/// `xdpctl sample` in native mode, killed if the test fails first.
struct Sampler(Child);

impl Sampler {
    fn spawn(lab: &Lab, args: &[&str]) -> Sampler {
        let child = Command::new(XDPCTL)
            .args(["sample", "--dev", &lab.outer, "--mode", "native"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning xdpctl sample");
        let sampler = Sampler(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lab.attached().is_empty() {
            assert!(Instant::now() < deadline, "the sampler never attached");
            sleep(Duration::from_millis(20));
        }
        assert_eq!(lab.attached()[0]["mode"], "native");
        sampler
    }

    /// Waits (10 s at most) for the exit --count brings; its stdout.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().expect("polling xdpctl").is_none() {
            assert!(Instant::now() < deadline, "the sampler did not stop at --count");
            sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().expect("true"));
        let out = child.wait_with_output().expect("xdpctl's output");
        assert!(out.status.success(), "xdpctl sample: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The records of a pcap file, read here from the format's definition:
/// (original length, captured bytes).
fn pcap_records(file: &Path) -> Vec<(u32, Vec<u8>)> {
    let data = std::fs::read(file).expect("reading the capture");
    let magic = u32::from_le_bytes(data[..4].try_into().unwrap());
    let le = magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d;
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let (mut at, mut records) = (24, Vec::new());
    while at + 16 <= data.len() {
        let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12));
        records.push((orig, data[at + 16..at + 16 + incl].to_vec()));
        at += 16 + incl;
    }
    records
}

#[test]
#[ignore = "needs root"]
fn sample_captures_jumbo_frames_whole_in_native_mode() {
    let lab = Lab::with_mtu(MTU);
    let dir = TempDir::new();
    let file = dir.0.join("jumbo.pcap");
    let sampler = Sampler::spawn(&lab, &["-w", file.to_str().unwrap(), "-c", "3"]);
    assert_eq!(big_ping(&lab, 3), 3, "the sampler passes every frame");
    let out = sampler.finish();
    assert!(out.contains("3 samples written"), "{out}");
    assert!(lab.attached().is_empty(), "detached on exit");

    let text = Command::new("tcpdump")
        .args(["-r", file.to_str().unwrap(), "-n", "-e"])
        .output()
        .expect("running tcpdump");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert_eq!(text.lines().count(), 3, "{text}");
    for line in text.lines() {
        assert!(line.contains(&format!("length {FRAME}:")), "{line}");
        assert!(line.contains(&format!("{} > {}: ICMP6, echo request", lab.inner_ip, lab.outer_ip)));
    }
    // The data past ping's timestamp is its pattern, to the frame's last
    // byte: the fragments were copied, and in their place.
    let data_at = 14 + 40 + 8;
    let want: Vec<u8> = (16..DATA).map(|k| PATTERN[k % 3]).collect();
    for (orig, bytes) in pcap_records(&file) {
        assert_eq!((u64::from(orig), bytes.len() as u64), (FRAME, FRAME));
        assert!(bytes[data_at + 16..] == want[..], "ping's pattern, {} bytes of it", want.len());
    }
}

#[test]
#[ignore = "needs root"]
fn sample_with_a_small_snaplen_keeps_the_jumbo_frames_length() {
    let lab = Lab::with_mtu(MTU);
    let dir = TempDir::new();
    let file = dir.0.join("jumbo.pcapng");
    let sampler = Sampler::spawn(&lab, &["-w", file.to_str().unwrap(), "-s", "200", "-c", "2"]);
    assert_eq!(big_ping(&lab, 2), 2);
    sampler.finish();
    let out = Command::new("tshark")
        .args(["-r", file.to_str().unwrap(), "-T", "fields"])
        .args(["-e", "frame.cap_len", "-e", "frame.len", "-e", "ipv6.plen"])
        .output()
        .expect("running tshark");
    assert!(out.status.success(), "tshark: {}", stderr(&out));
    let want = format!("200\t{FRAME}\t{}", 8 + DATA);
    let lines: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines, vec![want.clone(), want], "cap_len, len, IPv6 payload length");
}
