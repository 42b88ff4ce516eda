//! `xdpctl afxdp` on labs: ping answered from user space through the UMEM and
//! TX ring, --every-other leaving half to the kernel, --drop, and the faults
//! a user meets (bad queue, zero-copy on veth, a taken queue or interface,
//! Ctrl-C and SIGKILL mid-run), each ending with nothing left behind.
//! Needs root.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{freed, Finished, Lab, Streaming, PING6_REPLY_BYTES};
use serde_json::Value;

/// The closing JSON report ("final": true) among the lines printed last.
fn final_report(f: &Finished) -> Value {
    let line = f.rest.iter().rev().find(|l| l.contains("\"final\":true")).unwrap_or_else(|| {
        panic!("no final report; stdout tail {:?}, stderr {}", f.rest, f.stderr)
    });
    serde_json::from_str(line).expect("report JSON")
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

/// Start afxdp on the lab's outer end and wait for its first report: from
/// then on the socket is bound, in the map, and the program attached.
fn start(lab: &Lab, extra: &[&str]) -> Streaming {
    let mut args = vec!["--json", "afxdp", "--dev", &lab.outer, "--interval", "0.2"];
    args.extend_from_slice(extra);
    let x = lab.spawn_xdpctl(&args);
    x.wait_for("a first report", |l| l.contains("\"rx\""));
    x
}

/// ICMPv6 echo replies the outer end's kernel has sent (its namespace's
/// Icmp6OutEchoReplies).
fn kernel_echo_replies(lab: &Lab) -> u64 {
    let out = lab.outer_run(&["cat", "/proc/net/snmp6"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Icmp6OutEchoReplies")?.trim().parse().ok())
        .expect("Icmp6OutEchoReplies in /proc/net/snmp6")
}

fn kernel_echo(lab: &Lab, on: bool) {
    let value = if on { "0" } else { "1" };
    lab.outer_run(&["sysctl", "-qw", &format!("net.ipv6.icmp.echo_ignore_all={value}")]);
}

/// What a stopped afxdp must leave: a clean exit, no program on the interface,
/// and neither its program nor its XSKMAP (with the socket in it) in the kernel.
fn assert_clean(lab: &Lab, f: &Finished, report: &Value) {
    assert!(f.status.success(), "xdpctl afxdp failed: {}", f.stderr);
    assert!(!f.stderr.contains("error"), "{}", f.stderr);
    assert_eq!(lab.attached(), Vec::<Value>::new(), "program left attached");
    let (prog, map) = (u64_at(report, &["prog_id"]), u64_at(report, &["xsks_map_id"]));
    assert!(freed("prog", prog), "program {prog} outlived xdpctl");
    assert!(freed("map", map), "xsks_map {map} outlived xdpctl");
    assert!(!lab.pin_dir().exists(), "pins left in {}", lab.pin_dir().display());
}

#[test]
#[ignore = "needs root"]
fn ping6_is_answered_from_user_space() {
    let lab = Lab::isolated();
    kernel_echo(&lab, false);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 1), 0, "the kernel must not answer");

    let x = start(&lab, &[]); // busy-polling, the default
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 20), 20, "replies from xdpctl");
    let f = x.signal("INT");
    let report = final_report(&f);
    assert_eq!(u64_at(&report, &["tx", "packets"]), 20, "{report}");
    assert_eq!(u64_at(&report, &["tx", "bytes"]), 20 * PING6_REPLY_BYTES, "{report}");
    // A stray frame (an MLD report) may come too; all of them reached the socket.
    let rx = u64_at(&report, &["rx", "packets"]);
    assert!(rx >= 20, "{report}");
    assert_eq!(u64_at(&report, &["redirected"]), rx, "{report}");
    assert_eq!(u64_at(&report, &["passed"]), 0, "{report}");
    assert_eq!(u64_at(&report, &["socket", "rx_dropped"]), 0, "{report}");
    assert_eq!(kernel_echo_replies(&lab), 0);
    assert_clean(&lab, &f, &report);
}

#[test]
#[ignore = "needs root"]
fn every_other_frame_is_left_to_the_kernel() {
    let lab = Lab::isolated();
    kernel_echo(&lab, true);
    let before = kernel_echo_replies(&lab);

    let x = start(&lab, &["--every-other", "--poll"]);
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 20), 20, "every request answered");
    let f = x.signal("INT");
    let report = final_report(&f);
    let by_xdpctl = u64_at(&report, &["tx", "packets"]);
    let by_kernel = kernel_echo_replies(&lab) - before;
    assert_eq!(by_xdpctl + by_kernel, 20, "{report}");
    // Alternating frames: a stray one can shift the split by one.
    assert!((9..=11).contains(&by_xdpctl), "xdpctl answered {by_xdpctl}: {report}");
    let (redirected, passed) = (u64_at(&report, &["redirected"]), u64_at(&report, &["passed"]));
    assert!(redirected.abs_diff(passed) <= 1, "{report}");
    assert_eq!(u64_at(&report, &["rx", "packets"]), redirected, "{report}");
    assert_clean(&lab, &f, &report);
}

#[test]
#[ignore = "needs root"]
fn drop_counts_frames_and_answers_nothing() {
    let lab = Lab::new();
    let x = start(&lab, &["--drop", "--poll"]);
    // Kernel echo is on here: no replies means no frame got past the socket.
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 10), 0);
    let f = x.signal("TERM");
    let report = final_report(&f);
    assert!(u64_at(&report, &["rx", "packets"]) >= 10, "{report}");
    assert_eq!(u64_at(&report, &["tx", "packets"]), 0, "{report}");
    assert_clean(&lab, &f, &report);
}

#[test]
#[ignore = "needs root"]
fn ctrl_c_under_traffic_leaves_nothing_behind() {
    let lab = Lab::new();
    let x = start(&lab, &[]);
    let mut flood = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "ping", "-q", "-i", "0.002", "-c", "2000"])
        .arg(&lab.outer_ip)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting ping");
    std::thread::sleep(Duration::from_millis(500));
    let f = x.signal("INT");
    let _ = flood.kill();
    let _ = flood.wait();
    let report = final_report(&f);
    assert!(u64_at(&report, &["tx", "packets"]) > 0, "{report}");
    assert_clean(&lab, &f, &report);
}

#[test]
#[ignore = "needs root"]
fn sigkill_leaves_no_program_attached() {
    let lab = Lab::new();
    let x = start(&lab, &["--poll"]);
    assert_eq!(lab.attached().len(), 1);
    let f = x.signal("KILL");
    assert!(!f.status.success());
    assert_eq!(lab.attached(), Vec::<Value>::new(), "the bpf_link went with xdpctl");
}

/// A refused start: one line naming `expect`, a failure status, nothing attached.
fn assert_refused(lab: &Lab, args: &[&str], expect: &[&str]) {
    let mut all = vec!["afxdp", "--dev", &lab.outer];
    all.extend_from_slice(args);
    let out = lab.xdpctl(&all);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{all:?} succeeded");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for e in expect {
        assert!(err.contains(e), "{all:?}: want {e:?} in {err}");
    }
}

#[test]
#[ignore = "needs root"]
fn a_queue_the_device_lacks_is_refused() {
    let lab = Lab::new();
    assert_refused(&lab, &["--queue", "5"], &["--queue 5", "1 receive queue", "ethtool -l"]);
    assert_eq!(lab.attached(), Vec::<Value>::new());
}

#[test]
#[ignore = "needs root"]
fn zero_copy_on_veth_is_refused() {
    let lab = Lab::new();
    assert_refused(&lab, &["--zero-copy"], &["--zero-copy", "use --copy"]);
    assert_refused(&lab, &["--zero-copy", "--mode", "skb"], &["--zero-copy", "--mode native"]);
    assert_eq!(lab.attached(), Vec::<Value>::new());
}

#[test]
#[ignore = "needs root"]
fn a_taken_queue_is_refused_and_its_owner_keeps_running() {
    let lab = Lab::isolated();
    kernel_echo(&lab, false);
    let first = start(&lab, &["--poll"]);
    assert_refused(&lab, &[], &["--queue 0", "already has an AF_XDP socket bound"]);
    // The first one still answers.
    assert_eq!(lab.ping_from_inside(&lab.outer_ip, 3), 3);
    let f = first.signal("INT");
    let report = final_report(&f);
    assert_eq!(u64_at(&report, &["tx", "packets"]), 3, "{report}");
    assert_clean(&lab, &f, &report);
}

#[test]
#[ignore = "needs root"]
fn an_interface_with_a_program_is_refused() {
    let lab = Lab::new();
    common::xdpctl_ok(&["load", "--dev", &lab.outer, "--progsec", "xdp_pass"]);
    assert_refused(&lab, &[], &["already has an XDP program", "xdp_pass", "xdpctl unload"]);
    let attached = lab.attached();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0]["name"], "xdp_pass");
}
