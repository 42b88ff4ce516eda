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
    /// `xdpctl sample --dev` the lab's outer end with `args`, just started.
    fn start(lab: &Lab, args: &[&str]) -> Sampler {
        let child = Command::new(XDPCTL)
            .args(["sample", "--dev", &lab.outer])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning xdpctl sample");
        Sampler(Some(child))
    }

    fn spawn(lab: &Lab, args: &[&str]) -> Sampler {
        let sampler = Sampler::start(lab, args);
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

/// The id of the program on the lab's outer end.
fn prog_id(lab: &Lab) -> u64 {
    lab.attached()[0]["prog_id"].as_u64().expect("prog_id")
}

/// Whether the sampling switch pinned for the lab's program is on and its
/// lease runs (the map `.data.xdpsample`, its one value struct
/// xdp_sample_ctl: a u64 deadline, then the u32 flag). A killed sampler
/// leaves the flag set with its deadline passed: not a sampler running.
fn switched_on(lab: &Lab) -> bool {
    let pin = lab.pin_dir().join("_data_xdpsample");
    let map = libbpf_rs::MapHandle::from_pinned_path(&pin).expect("the pinned switch");
    let value = libbpf_rs::MapCore::lookup(&map, &0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
        .expect("reading the switch")
        .expect("its one entry");
    let expiry = u64::from_ne_bytes(value[..8].try_into().expect("a u64 deadline"));
    let now = xdpctl::io::clock::monotonic_ns().expect("CLOCK_MONOTONIC");
    value[8..12] != [0; 4] && expiry > now
}

/// Frames the program's sampling path took so far, over all CPUs (the
/// first count of each CPU's value of xdp_sample_counts).
fn sampled(lab: &Lab) -> u64 {
    let pin = lab.pin_dir().join("xdp_sample_counts");
    let map = libbpf_rs::MapHandle::from_pinned_path(&pin).expect("the pinned counts");
    libbpf_rs::MapCore::lookup_percpu(&map, &0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
        .expect("reading the counts")
        .expect("its one entry")
        .iter()
        .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
        .sum()
}

/// `xdpctl sample` through the program on the lab, once it has switched
/// the program's sampling path on.
fn spawn_through(lab: &Lab, args: &[&str]) -> Sampler {
    let mut sampler = Sampler::start(lab, args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !switched_on(lab) {
        if let Some(status) = sampler.child().try_wait().expect("polling xdpctl") {
            let (_, _, err) = sampler.finish();
            panic!("the sampler exited ({status}) before switching on: {err}");
        }
        assert!(Instant::now() < deadline, "the sampler never switched sampling on");
        sleep(Duration::from_millis(20));
    }
    sampler
}

/// 10 pings through xdp_parser (even sequence numbers dropped), captured
/// with `args`; the sampler's stdout, and the program's id before and after.
fn capture_parser(lab: &Lab, file: &Path, args: &[&str]) -> (String, u64, u64) {
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);
    let id = prog_id(lab);
    let mut all = vec!["-w", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut sampler = spawn_through(lab, &all);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 10), 5, "xdp_parser drops even requests");
    sleep(Duration::from_millis(200));
    sampler.signal("-TERM");
    let (status, out, err) = sampler.finish();
    assert!(status.success(), "SIGTERM is a clean exit: {status} {err}");
    assert!(!switched_on(lab), "switched off on exit");
    (out, id, prog_id(lab))
}

#[test]
#[ignore = "needs root"]
fn a_capture_through_xdp_parser_marks_each_request_with_its_verdict() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("verdicts.pcapng");
    let (out, before, after) = capture_parser(&lab, &file, &[]);
    assert_eq!(before, after, "the program stayed: sampled through, not replaced");
    assert!(out.contains("10 samples written"), "summary: {out}");
    assert!(out.contains("drop 5") && out.contains("pass 5"), "per verdict: {out}");

    let lines = tcpdump(&file);
    assert_eq!(lines.len(), 10, "every request, dropped or not: {lines:#?}");
    assert!(lines.iter().all(|l| is_lab_echo_request(l, &lab)), "{lines:#?}");
    let frames = tshark(&file, &["icmpv6.echo.sequence_number", "frame.comment"]);
    assert_eq!(frames.len(), 10, "{frames:?}");
    for frame in &frames {
        let seq: u32 = frame[0].parse().expect("a sequence number");
        let verdict = if seq % 2 == 0 { "drop" } else { "pass" };
        let want = format!("verdict={verdict} prog=xdp_parser id={before}");
        assert_eq!(frame[1], want, "request {seq}");
    }
}

#[test]
#[ignore = "needs root"]
fn verdict_drop_captures_only_the_drops() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("drops.pcapng");
    let (out, before, after) = capture_parser(&lab, &file, &["--verdict", "drop"]);
    assert_eq!(before, after, "the program stayed");
    assert!(out.contains("5 samples written"), "summary: {out}");
    let frames = tshark(&file, &["icmpv6.echo.sequence_number", "frame.comment"]);
    let seqs: Vec<&str> = frames.iter().map(|f| f[0].as_str()).collect();
    assert_eq!(seqs, ["2", "4", "6", "8", "10"], "{frames:?}");
    assert!(frames.iter().all(|f| f[1].starts_with("verdict=drop ")), "{frames:?}");
}

#[test]
#[ignore = "needs root"]
fn a_killed_capture_through_a_program_stops_sampling_by_itself() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("killed.pcapng");
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);
    let id = prog_id(&lab);
    let mut sampler = spawn_through(&lab, &["-w", file.to_str().unwrap()]);
    // A second sampler on the interface is refused while the first runs.
    let second = dir.0.join("second.pcapng");
    let out = common::xdpctl(&["sample", "--dev", &lab.outer, "-w", second.to_str().unwrap()]);
    assert!(!out.status.success(), "two samplers at once");
    assert!(stderr(&out).contains("another xdpctl sample"), "{}", stderr(&out));
    assert!(!second.exists(), "the refused one wrote nothing");

    sampler.signal("-KILL");
    let (status, _, _) = sampler.finish();
    assert!(!status.success());
    // Its lease (3 s) runs out: pings after that are not sampled.
    sleep(Duration::from_millis(3500));
    let before = sampled(&lab);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 4), 2);
    assert_eq!(sampled(&lab), before, "sampling went off by itself");
    assert_eq!(prog_id(&lab), id, "the program stays");
    // And the next sampler may start.
    let sampler = spawn_through(&lab, &["-w", file.to_str().unwrap(), "-c", "1"]);
    lab.ping_from_inside(&lab.outer_ip, 1);
    let (status, out, err) = sampler.finish();
    assert!(status.success(), "{err}");
    assert!(out.contains("1 sample written"), "{out}");
    assert!(!switched_on(&lab), "switched off when --count is reached");
}

#[test]
#[ignore = "needs root"]
fn programs_without_the_sampling_path_are_refused_and_left_alone() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let obj = common::build_bpf(
        &dir.0,
        "plain",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp\") int plain_pass(struct xdp_md *ctx) { return XDP_PASS; }\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let file = dir.0.join("refused.pcapng");
    let sample = || common::xdpctl(&["sample", "--dev", &lab.outer, "-w", file.to_str().unwrap()]);

    // A shipped program as an older xdpctl loaded it: no switch pinned.
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);
    std::fs::remove_file(lab.pin_dir().join("_data_xdpsample")).expect("unpinning the switch");
    let id = prog_id(&lab);
    let out = sample();
    let err = stderr(&out);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("older xdpctl"), "{err}");
    let reload =
        format!("xdpctl load --dev {} --progname xdp_parser --force --reuse-maps", lab.outer);
    assert!(err.contains(&reload), "the reload hint: {err}");
    assert_eq!(prog_id(&lab), id, "left attached");
    assert!(!file.exists(), "no capture file");
    // The hint works: after it, the capture goes through.
    let args: Vec<&str> = reload.split(' ').skip(1).collect();
    common::xdpctl_ok(&args);
    let sampler = spawn_through(&lab, &["-w", file.to_str().unwrap(), "-c", "1"]);
    lab.ping_from_inside(&lab.outer_ip, 1);
    let (status, _, err) = sampler.finish();
    assert!(status.success(), "{err}");
    std::fs::remove_file(&file).expect("the capture");
    common::xdpctl_ok(&["unload", "--dev", &lab.outer]);

    // Loaded by xdpctl from an object without xdp_stats_kern.h.
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--obj", obj.to_str().unwrap()]);
    let id = prog_id(&lab);
    let out = sample();
    let err = stderr(&out);
    assert!(!out.status.success(), "refused");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("xdp_stats_kern.h") && err.contains("--obj"), "the hint: {err}");
    assert_eq!(prog_id(&lab), id, "left attached");
    assert!(!file.exists(), "no capture file");

    // Another tool's program.
    common::xdpctl_ok(&["unload", "--dev", &lab.outer]);
    run(
        "ip",
        &["link", "set", "dev", &lab.outer, "xdp", "obj", obj.to_str().unwrap(), "sec", "xdp"],
    );
    let id = prog_id(&lab);
    let out = sample();
    let err = stderr(&out);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("not loaded by xdpctl"), "{err}");
    assert_eq!(prog_id(&lab), id, "left attached");
    assert!(!file.exists(), "no capture file");
    run("ip", &["link", "set", "dev", &lab.outer, "xdp", "off"]);
}

#[test]
#[ignore = "needs root"]
fn capturing_through_a_program_without_cap_sys_admin_is_refused_up_front() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("caps.pcapng");
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);
    // Enough for xdpctl's own sampler, not to read another program's maps.
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all,+bpf,+net_admin", XDPCTL])
        .args(["sample", "--dev", &lab.outer, "-w", file.to_str().unwrap()])
        .output()
        .expect("running setpriv");
    let err = stderr(&out);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("CAP_SYS_ADMIN") && err.contains(&lab.outer), "{err}");
    assert!(!switched_on(&lab) && !file.exists(), "nothing changed");
}

#[test]
#[ignore = "needs root"]
fn a_reload_during_the_capture_ends_it_and_the_new_program_is_not_sampled() {
    let lab = Lab::new();
    let dir = TempDir::new();
    let file = dir.0.join("reload.pcapng");
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_parser"]);
    let sampler = spawn_through(&lab, &["-w", file.to_str().unwrap()]);
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_pass", "--force"]);
    // The sampler sees it within its second of renewal, and ends by itself.
    let (status, _, err) = sampler.finish();
    assert!(status.success(), "{err}");
    assert!(err.contains("left") && err.contains("the capture ends"), "{err}");
    assert!(!switched_on(&lab), "the new program's switch is off");
    let before = sampled(&lab);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 2), 2, "xdp_pass passes");
    assert_eq!(sampled(&lab), before, "nothing sampled");
}
