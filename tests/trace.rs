//! `xdpctl trace` on real traffic: exceptions counted per interface by name,
//! exactly, and nothing left attached once it exits. Needs root.

mod common;

use std::process::Command;

use common::{xdpctl_ok, Lab, Streaming, PING6_REPLY_BYTES};
use serde_json::Value;

/// Programs of the tracer still loaded (bpftool may show the kernel's
/// 15-character name or the full one from BTF).
fn tracers_loaded() -> usize {
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().expect("bpftool");
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    progs
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("trace_xdp_excep")))
        .count()
}

/// The count for `ifname` and `action` in one JSON sample, 0 if absent.
fn count(sample: &str, ifname: &str, action: &str) -> u64 {
    let v: Value = serde_json::from_str(sample).expect("trace JSON");
    v["exceptions"]
        .as_array()
        .expect("exceptions")
        .iter()
        .find(|r| r["ifname"] == ifname && r["action"] == action)
        .map_or(0, |r| r["count"].as_u64().expect("count"))
}

#[test]
fn counts_aborted_packets_per_interface_by_name() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_abort"]);
    let before = tracers_loaded();
    let trace = Streaming::spawn(&["--json", "trace", "--interval", "0.1"]);
    // The first sample means the tracepoint is attached.
    trace.wait_for("a first sample", |l| l.contains("\"exceptions\""));
    assert_eq!(tracers_loaded(), before + 1);

    // Five echo replies come back into the outer end and are aborted there.
    assert!(!lab.ping(5), "xdp_abort lets no reply through");
    let line = trace.wait_for("5 aborted", |l| count(l, &lab.outer, "XDP_ABORTED") >= 5);
    assert_eq!(count(&line, &lab.outer, "XDP_ABORTED"), 5, "{line}");
    assert_eq!(count(&line, &lab.outer, "XDP_DROP"), 0, "{line}");

    let (status, err) = trace.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
    assert_eq!(tracers_loaded(), before, "the tracer went with xdpctl");

    // Text, as the tutorial prints it: a new tracer counts from zero.
    let trace = Streaming::spawn(&["trace", "--interval", "0.1"]);
    // The banner comes once the tracepoint is attached.
    trace.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(!lab.ping(3));
    let want = format!("{} (3) XDP_ABORTED", lab.outer);
    trace.wait_for(&want, |l| l == want);
}

#[test]
fn printk_decodes_the_labs_macs() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_printk"]);
    let reader = Streaming::spawn(&["trace", "printk"]);
    reader.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    // Echo replies come into the outer end from the lab's inside.
    assert!(lab.ping(3), "xdp_printk passes every frame");
    let want = format!("src: {} dst: {} proto: 0x86dd", lab.inner_mac, lab.outer_mac);
    for _ in 0..3 {
        let line = reader.wait_for(&want, |l| l.ends_with(&want));
        assert!(line.contains("bpf_trace_printk: "), "the trace line's prefix stays: {line}");
    }
    let (status, err) = reader.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
}

/// (rx_packets, rx_bytes, tx_packets, tx_bytes) of `dev` in a netdev sample.
fn netdev_counts(sample: &str, dev: &str) -> (u64, u64, u64, u64) {
    let v: Value = serde_json::from_str(sample).expect("trace netdev JSON");
    let Some(d) = v["devices"].as_array().expect("devices").iter().find(|d| d["dev"] == dev) else {
        return (0, 0, 0, 0);
    };
    let n = |k: &str| d[k].as_u64().expect(k);
    (n("rx_packets"), n("rx_bytes"), n("tx_packets"), n("tx_bytes"))
}

#[test]
fn netdev_counts_a_labs_pings_under_its_name() {
    let lab = Lab::new();
    let tracer =
        Streaming::spawn(&["--json", "trace", "netdev", "--dev", &lab.outer, "--interval", "0.1"]);
    tracer.wait_for("a first sample", |l| l.contains("\"devices\""));
    assert!(lab.ping(5));
    let line = tracer.wait_for("5 each way", |l| {
        let (rx, _, tx, _) = netdev_counts(l, &lab.outer);
        rx >= 5 && tx >= 5
    });
    // Requests leave whole (Ethernet header included); replies are counted
    // once the stack has pulled the Ethernet header off.
    assert_eq!(
        netdev_counts(&line, &lab.outer),
        (5, 5 * (PING6_REPLY_BYTES - 14), 5, 5 * PING6_REPLY_BYTES),
        "{line}"
    );
    // --dev filters in the kernel: nothing else shows up.
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["devices"].as_array().unwrap().len(), 1, "{line}");

    let events =
        Streaming::spawn(&["trace", "netdev", "--dev", &lab.outer, "--events", "--count", "2"]);
    events.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(lab.ping(1));
    let want_tx = format!("tx {} len={}", lab.outer, PING6_REPLY_BYTES);
    events.wait_for(&want_tx, |l| l.starts_with(&want_tx));
    let want_rx = format!("rx {} len={}", lab.outer, PING6_REPLY_BYTES - 14);
    events.wait_for(&want_rx, |l| l.starts_with(&want_rx));
}
