//! `xdpctl trafficgen` on labs: the generator sends from inside the lab out
//! of veth0, and the outer end counts (xdp_pass and its stats) or captures
//! (tcpdump) what arrives. Also the refusals: a peer that would drop the
//! frames, impossible frames, and a SIGKILL that must leave nothing behind.
//! Needs root.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::{freed, run, stderr, xdpctl_ok, Lab, Streaming, TempDir, XDPCTL};
use serde_json::Value;

/// xdpctl trafficgen from inside the lab, out of veth0.
fn trafficgen(lab: &Lab, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.ns, XDPCTL, "--json", "trafficgen", "--dev", "veth0"])
        .args(args)
        .output()
        .expect("running xdpctl trafficgen")
}

/// The final JSON report of a run that must succeed.
fn final_report(out: &Output) -> Value {
    assert!(out.status.success(), "trafficgen failed: {}", stderr(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("\"final\":true"))
        .unwrap_or_else(|| panic!("no final report in {stdout}"));
    serde_json::from_str(line).expect("report JSON")
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

/// The outer end's received-frames counter.
fn outer_rx(lab: &Lab) -> u64 {
    let path = format!("/sys/class/net/{}/statistics/rx_packets", lab.outer);
    std::fs::read_to_string(&path).expect("rx_packets").trim().parse().expect("a number")
}

/// A refused run: non-zero exit, one stderr line with every `expect`ed part.
fn assert_refused(out: &Output, expect: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "should have been refused; stdout {:?}", out.stdout);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for part in expect {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
#[ignore = "needs root"]
fn every_frame_reaches_a_peer_running_xdp() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progsec", "xdp_pass"]);
    let before = lab.stats();
    let out = trafficgen(&lab, &["--count", "25000", "--size", "100"]);
    let report = final_report(&out);
    assert_eq!(u64_at(&report, &["sent", "packets"]), 25000, "{report}");
    // Read across namespaces: the outer end is the veth peer.
    assert_eq!(report["peer_ifname"], lab.outer.as_str(), "{report}");
    assert_eq!(u64_at(&report, &["received", "packets"]), 25000, "{report}");
    let after = lab.stats();
    let passed = after.packets("XDP_PASS") - before.packets("XDP_PASS");
    assert_eq!(passed, 25000, "frames xdp_pass counted");
    assert_eq!(after.bytes("XDP_PASS") - before.bytes("XDP_PASS"), 25000 * 100);
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
}

#[test]
#[ignore = "needs root"]
fn a_peer_without_xdp_or_gro_is_named_and_nothing_is_sent() {
    let lab = Lab::new();
    let before = outer_rx(&lab);
    let out = trafficgen(&lab, &["--count", "1000"]);
    let hint = format!("ethtool -K {} gro on", lab.outer);
    assert_refused(&out, &[&lab.outer, "would drop", &hint]);
    assert_eq!(outer_rx(&lab), before, "frames went out anyway");
}

/// A peer in another namespace: both hints run there (nsenter, not a
/// command that fails here), and the GRO one, run as given, lets the
/// frames through. `-n`, the old spelling of `-c/--count`, still works.
#[test]
#[ignore = "needs root"]
fn the_hints_for_a_peer_in_another_namespace_run_there() {
    let lab = Lab::new();
    let send = |count: &str| {
        Command::new(XDPCTL)
            .args(["--json", "trafficgen", "--dev", &lab.outer, count, "10"])
            .output()
            .expect("running xdpctl trafficgen")
    };
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let gro = format!("`nsenter {netns} ethtool -K veth0 gro on`");
    let load = format!("`nsenter {netns} xdpctl load --dev veth0`");
    assert_refused(&send("-c"), &[&lab.outer, "would drop", &gro, &load]);
    run("nsenter", &[&netns, "ethtool", "-K", "veth0", "gro", "on"]);
    let report = final_report(&send("-n"));
    assert_eq!(u64_at(&report, &["sent", "packets"]), 10, "{report}");
    assert_eq!(u64_at(&report, &["received", "packets"]), 10, "{report}");

    // A device with no native XDP: nothing to load on it is suggested.
    let out = Command::new(XDPCTL).args(["trafficgen", "--dev", "lo", "-c", "1"]).output().unwrap();
    assert_refused(&out, &["lo cannot transmit XDP frames", "no native XDP"]);
    assert!(!stderr(&out).contains("xdpctl load"), "{}", stderr(&out));
    // --count 0 does nothing: said so, not as a range.
    let out = Command::new(XDPCTL).args(["trafficgen", "--dev", "lo", "-c", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 would do nothing"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("18446744073709551615"), "{}", stderr(&out));
}

/// tcpdump on the outer end until it has `count` UDP frames.
struct Tcpdump(Child);

impl Tcpdump {
    fn start(dev: &str, file: &Path, count: u32) -> Tcpdump {
        let mut child = Command::new("tcpdump")
            .args(["-i", dev, "-n", "-U", "-c", &count.to_string(), "-w"])
            .arg(file)
            .arg("udp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpdump");
        let err = child.stderr.take().expect("piped stderr");
        let mut line = String::new();
        BufReader::new(err).read_line(&mut line).expect("tcpdump's first line");
        assert!(line.contains("listening on"), "tcpdump: {line}");
        Tcpdump(child)
    }

    fn finish(mut self) {
        let status = self.0.wait().expect("waiting for tcpdump");
        assert!(status.success(), "tcpdump failed");
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tshark's fields, one Vec per frame, with checksum validation on.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-r", file.to_str().expect("utf-8 path"), "-T", "fields"];
    args.extend(["-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]);
    for f in fields {
        args.extend(["-e", f]);
    }
    let out = run("tshark", &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn frames_cycle_through_the_port_range_with_valid_checksums() {
    let lab = Lab::new();
    // GRO on lets the outer veth take XDP frames without a program of its own.
    run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let dir = TempDir::new();

    let v4 = dir.0.join("v4.pcap");
    let cap = Tcpdump::start(&lab.outer, &v4, 30);
    let report = final_report(&trafficgen(&lab, &["-n", "30", "--udp-dst", "5000-5009"]));
    assert_eq!(u64_at(&report, &["sent", "packets"]), 30);
    cap.finish();
    let frames = tshark(
        &v4,
        &["frame.len", "ip.dst", "udp.dstport", "udp.checksum.status", "ip.checksum.status"],
    );
    assert_eq!(frames.len(), 30);
    for (i, f) in frames.iter().enumerate() {
        let port = (5000 + i % 10).to_string();
        let want = ["64", "198.18.0.2", port.as_str(), "1", "1"];
        assert_eq!(f, &want, "frame {i} (checksum status 1: good)");
    }

    let v6 = dir.0.join("v6.pcap");
    let cap = Tcpdump::start(&lab.outer, &v6, 7);
    let args = ["-n", "7", "--size", "99", "--dst-ip", "2001:db8::7", "--udp-dst", "65534-65535"];
    final_report(&trafficgen(&lab, &args));
    cap.finish();
    let frames =
        tshark(&v6, &["frame.len", "ipv6.src", "ipv6.dst", "udp.dstport", "udp.checksum.status"]);
    assert_eq!(frames.len(), 7);
    for (i, f) in frames.iter().enumerate() {
        let port = (65534 + i % 2).to_string();
        let want = ["99", "2001:2::1", "2001:db8::7", port.as_str(), "1"];
        assert_eq!(f, &want, "frame {i}");
    }
}

#[test]
#[ignore = "needs root"]
fn a_rate_spreads_the_frames_over_time() {
    let lab = Lab::new();
    run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let start = Instant::now();
    let report = final_report(&trafficgen(&lab, &["--rate", "4000", "--count", "2000"]));
    // 2000 frames at 4000 per second cannot be out in less than half a second.
    assert!(start.elapsed().as_secs_f64() >= 0.45, "{report}");
    assert_eq!(u64_at(&report, &["sent", "packets"]), 2000, "{report}");
    assert_eq!(u64_at(&report, &["received", "packets"]), 2000, "{report}");
}

#[test]
#[ignore = "needs root"]
fn impossible_frames_are_refused() {
    let lab = Lab::new();
    run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let cases: &[(&[&str], &[&str])] = &[
        (&["--size", "41"], &["frame size 41", "42 to 65535"]),
        (&["--dst-ip", "2001:db8::1", "--size", "61"], &["frame size 61", "62 to"]),
        (&["--size", "1515"], &["--size 1515", "MTU of 1500"]),
        (&["--src-ip", "198.18.0.1", "--dst-ip", "2001:db8::1"], &["different IP versions"]),
        (&["--udp-dst", "10-5"], &["\"10-5\"", "FIRST <= LAST"]),
        (&["--udp-dst", "70000"], &["\"70000\""]),
        (&["--rate", "0"], &["\"0\"", "rate"]),
        (&["--dst-mac", "aa:bb:cc:dd:ee"], &["\"aa:bb:cc:dd:ee\"", "MAC"]),
    ];
    let before = outer_rx(&lab);
    for (args, expect) in cases {
        let mut all = vec!["-n", "10"];
        all.extend_from_slice(args);
        let out = trafficgen(&lab, &all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} accepted");
        for part in *expect {
            assert!(err.contains(part), "{args:?}: {part:?} missing from {err}");
        }
    }
    assert_eq!(outer_rx(&lab), before, "a refused run sent frames");
    // A device that is down, and one with no XDP transmit at all.
    lab.exec(&["ip", "link", "set", "veth0", "down"]);
    assert_refused(&trafficgen(&lab, &["-n", "1"]), &["veth0 is down", "ip link set veth0 up"]);
    lab.exec(&["ip", "link", "set", "lo", "up"]);
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, XDPCTL, "trafficgen", "--dev", "lo", "-n", "1"])
        .output()
        .expect("running xdpctl");
    assert_refused(&out, &["lo cannot transmit XDP frames"]);
}

#[test]
#[ignore = "needs root"]
fn sigkill_leaves_no_program_and_ctrl_c_reports_totals() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progsec", "xdp_drop"]);
    let spawn = || {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.ns, XDPCTL, "--json", "trafficgen", "--dev", "veth0"]);
        cmd.args(["--interval", "0.1"]);
        Streaming::spawn_command(cmd)
    };
    let x = spawn();
    let line = x.wait_for("a progress report", |l| l.contains("\"sent\""));
    let report: Value = serde_json::from_str(&line).expect("report JSON");
    let f = x.signal("KILL");
    assert!(!f.status.success());
    let prog = u64_at(&report, &["prog_id"]);
    assert!(freed("prog", prog), "generator program {prog} outlived a SIGKILL");

    let x = spawn();
    x.wait_for("a progress report", |l| l.contains("\"sent\""));
    let f = x.signal("INT");
    assert!(f.status.success(), "{}", f.stderr);
    let last = f.rest.iter().find(|l| l.contains("\"final\":true")).expect("a final report");
    let report: Value = serde_json::from_str(last).expect("report JSON");
    assert!(u64_at(&report, &["sent", "packets"]) > 0, "{report}");
    assert_eq!(report["sent"], report["received"], "xdp_drop on the peer counts them all");
    assert!(freed("prog", u64_at(&report, &["prog_id"])));
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
}

/// The text a user reads: IPv6 addresses bracketed apart from their ports,
/// "1 frame", and nothing at all with --quiet (the total is a summary).
#[test]
#[ignore = "needs root"]
fn the_text_brackets_ipv6_counts_one_frame_and_quiet_silences_the_total() {
    let lab = Lab::new();
    run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let text = |quiet: bool| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.ns, XDPCTL]);
        if quiet {
            cmd.arg("-q");
        }
        let args = ["--count", "1", "--dst-ip", "2001:db8::7", "--udp-dst", "9"];
        let out = cmd.args(["trafficgen", "--dev", "veth0"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let out = text(false);
    assert!(out.contains("-> [2001:db8::7]:9 ("), "{out}");
    assert!(out.contains("UDP frames [2001:2::1]:"), "{out}");
    assert!(out.contains("total over the run, veth0: sent 1 frame ("), "{out}");
    assert_eq!(text(true), "", "--quiet prints nothing");
}
