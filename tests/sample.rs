//! `xdpctl sample` on real traffic: the capture it writes is read back by
//! tcpdump and tshark, which must list exactly the echo requests sent, with
//! the lab's addresses and the frames' lengths; nothing stays attached after
//! it exits, however it exits. Needs root.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{run, stderr, Lab, TempDir, PING6_REPLY_BYTES, XDPCTL};

/// An echo request from inside the lab is as long as a reply: 118 bytes.
const REQUEST_BYTES: u64 = PING6_REPLY_BYTES;

/// A running `xdpctl sample`, killed if the test fails first.
struct Sampler(Option<Child>);

impl Sampler {
    fn spawn(lab: &Lab, args: &[&str]) -> Sampler {
        let child = Command::new(XDPCTL)
            .args(["sample", "--dev", &lab.outer])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning xdpctl sample");
        let sampler = Sampler(Some(child));
        // Attached means sampling: the bpf_link is in place before the banner.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lab.attached().is_empty() {
            assert!(Instant::now() < deadline, "the sampler never attached");
            sleep(Duration::from_millis(20));
        }
        sampler
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running sampler")
    }

    fn signal(&mut self, sig: &str) {
        let pid = self.child().id().to_string();
        run("kill", &[sig, &pid]);
    }

    /// Wait for exit (within 10 s); its status, stdout and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child().try_wait().expect("polling xdpctl").is_none() {
            assert!(Instant::now() < deadline, "the sampler did not exit");
            sleep(Duration::from_millis(20));
        }
        let child = self.0.take().expect("a running sampler");
        let out = child.wait_with_output().expect("collecting xdpctl's output");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status, text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// tcpdump's reading of `file`, one line per frame, link-level headers shown.
fn tcpdump(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-r", file.to_str().expect("utf-8 path"), "-n", "-e", "-tt"])
        .output()
        .expect("running tcpdump");
    assert!(out.status.success(), "tcpdump -r: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// tshark's fields of each frame of `file`, tab-separated.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r", file.to_str().expect("utf-8 path"), "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("running tshark");
    assert!(out.status.success(), "tshark -r: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Checks one tcpdump line is an echo request from inside the lab to its
/// outer end, `REQUEST_BYTES` long on the wire.
fn is_lab_echo_request(line: &str, lab: &Lab) -> bool {
    line.contains(&format!("{} > {}", lab.inner_mac, lab.outer_mac))
        && line.contains(&format!("length {REQUEST_BYTES}:"))
        && line.contains(&format!("{} > {}: ICMP6, echo request", lab.inner_ip, lab.outer_ip))
}

/// The isb_ifrecv and isb_ifdrop of a pcapng file's statistics block, read
/// here from the format's definition, independently of the writer.
fn pcapng_statistics(file: &Path) -> (u64, u64) {
    let data = std::fs::read(file).expect("reading the capture");
    // The section header's byte-order magic says how to read every number.
    let big = data[8..12] == [0x1a, 0x2b, 0x3c, 0x4d];
    let u16_at = |at: usize| {
        let b = [data[at], data[at + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let u64_at = |at: usize| {
        let b: [u8; 8] = data[at..at + 8].try_into().unwrap();
        if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    };
    let (mut at, mut found) = (0, None);
    while at + 12 <= data.len() {
        let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
        if kind == 5 {
            // Interface id and timestamp (12 bytes), then the options.
            let (mut opt, end) = (at + 8 + 12, at + len - 4);
            let (mut recv, mut drop) = (None, None);
            while opt + 4 <= end && u16_at(opt) != 0 {
                let (code, olen) = (u16_at(opt), u16_at(opt + 2) as usize);
                match code {
                    4 => recv = Some(u64_at(opt + 4)),
                    5 => drop = Some(u64_at(opt + 4)),
                    _ => {}
                }
                opt += 4 + olen.div_ceil(4) * 4;
            }
            found = Some((recv.expect("isb_ifrecv"), drop.expect("isb_ifdrop")));
        }
        at += len;
    }
    found.expect("an interface statistics block")
}

#[test]
#[ignore = "needs root"]
fn pcap_lists_every_echo_request_and_detaches_on_sigterm() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("echo.pcap");
    let before = now();
    let mut sampler = Sampler::spawn(&lab, &["-w", file.to_str().unwrap()]);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 10), 10, "the sampler passes traffic");
    sleep(Duration::from_millis(200));
    sampler.signal("-TERM");
    let after = now();
    let (status, out, err) = sampler.finish();
    assert!(status.success(), "SIGTERM is a clean exit: {status} {err}");
    assert!(lab.attached().is_empty(), "detached on exit");
    assert!(
        out.contains("10 samples written") && out.contains("10 packets seen, 0 lost"),
        "summary: {out}"
    );

    let lines = tcpdump(&file);
    assert_eq!(lines.len(), 10, "one frame per request: {lines:#?}");
    for line in &lines {
        assert!(is_lab_echo_request(line, &lab), "{line}");
        // Wall-clock time (-tt: seconds since the epoch), not time since boot.
        let ts: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(ts >= before - 1.0 && ts <= after + 1.0, "{ts} not in [{before}, {after}]");
    }
}

#[test]
#[ignore = "needs root"]
fn pcapng_honours_snaplen_and_records_no_loss() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("echo.pcapng");
    let sampler = Sampler::spawn(&lab, &["-w", file.to_str().unwrap(), "-s", "64", "-c", "5"]);
    // More requests than --count: the sampler stops by itself after five.
    lab.ping_from_inside(&lab.outer_ip, 8);
    let (status, out, err) = sampler.finish();
    assert!(status.success(), "--count reached: {status} {err}");
    assert!(lab.attached().is_empty(), "detached on exit");
    assert!(out.contains("5 samples written"), "{out}");

    let frames = tshark(
        &file,
        &[
            "frame.cap_len",
            "frame.len",
            "eth.src",
            "ipv6.src",
            "ipv6.dst",
            "icmpv6.type",
            "frame.interface_name",
        ],
    );
    assert_eq!(frames.len(), 5, "{frames:?}");
    let want = [
        "64".to_string(),
        REQUEST_BYTES.to_string(),
        lab.inner_mac.clone(),
        lab.inner_ip.clone(),
        lab.outer_ip.clone(),
        "128".to_string(),
        lab.outer.clone(),
    ];
    for frame in &frames {
        assert_eq!(frame, &want);
    }
    let (seen, lost) = pcapng_statistics(&file);
    assert_eq!(lost, 0, "lost samples at a low rate");
    assert!(seen >= 5, "seen {seen}");
}

#[test]
#[ignore = "needs root"]
fn stdout_feeds_tcpdump_through_a_pipe() {
    let lab = Lab::new();
    let pipeline = format!("{XDPCTL} sample --dev {} -w - -c 4 | tcpdump -r - -n -e", lab.outer);
    let mut child = Command::new("sh")
        .args(["-c", &pipeline])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the pipeline");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.attached().is_empty() {
        assert!(Instant::now() < deadline, "the sampler never attached");
        sleep(Duration::from_millis(20));
    }
    lab.ping_from_inside(&lab.outer_ip, 6);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("polling the pipeline").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the pipeline did not end after --count");
        }
        sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("pipeline output");
    let lines: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}\n{}", stderr(&out));
    assert!(lines.iter().all(|l| is_lab_echo_request(l, &lab)), "{lines:#?}");
    assert!(stderr(&out).contains("4 samples written to stdout"), "{}", stderr(&out));
    assert!(lab.attached().is_empty(), "detached on exit");
}

#[test]
#[ignore = "needs root"]
fn a_killed_sampler_leaves_nothing_attached() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("killed.pcap");
    let mut sampler = Sampler::spawn(&lab, &["-w", file.to_str().unwrap()]);
    sampler.signal("-KILL");
    let (status, _, _) = sampler.finish();
    assert!(!status.success());
    // The bpf_link closes with the process: no handler needed.
    assert!(lab.attached().is_empty(), "SIGKILL leaves nothing attached");
}
