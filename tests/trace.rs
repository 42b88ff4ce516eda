//! `xdpctl trace` on real traffic: exceptions counted per interface by name,
//! exactly, and nothing left attached once it exits. Needs root.

mod common;

use std::process::Command;

use common::{stderr, xdpctl_ok, Lab, Streaming, PING6_REPLY_BYTES, XDPCTL};
use serde_json::Value;

/// Ids of the BPF programs process `pid` holds (from /proc fdinfo: program
/// and link fds both name one).
fn programs_of(pid: u32) -> Vec<u64> {
    let dir = format!("/proc/{pid}/fdinfo");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut ids: Vec<u64> = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|info| {
            let line = info.lines().find(|l| l.starts_with("prog_id:"))?;
            line["prog_id:".len()..].trim().parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
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
#[ignore = "needs root"]
fn counts_aborted_packets_per_interface_by_name() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_abort"]);
    let trace = Streaming::spawn(&["--json", "trace", "--interval", "0.1"]);
    // The first sample means the tracepoint is attached.
    trace.wait_for("a first sample", |l| l.contains("\"exceptions\""));
    let progs = programs_of(trace.pid());
    assert_eq!(progs.len(), 1, "one tracer program: {progs:?}");

    // Five echo replies come back into the outer end and are aborted there.
    assert!(!lab.ping(5), "xdp_abort lets no reply through");
    let line = trace.wait_for("5 aborted", |l| count(l, &lab.outer, "XDP_ABORTED") >= 5);
    assert_eq!(count(&line, &lab.outer, "XDP_ABORTED"), 5, "{line}");
    assert_eq!(count(&line, &lab.outer, "XDP_DROP"), 0, "{line}");

    let (status, err) = trace.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
    // A raw tracepoint's program is freed after an RCU grace period.
    assert!(common::freed("prog", progs[0]), "the tracer went with xdpctl");

    // Text: a new tracer counts from zero, under a header.
    let trace = Streaming::spawn(&["trace", "--interval", "0.1"]);
    // The banner comes once the tracepoint is attached.
    trace.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(!lab.ping(3));
    trace.wait_for("the header", |l| {
        l.split_whitespace().eq(["INTERFACE", "ACTION", "TOTAL", "PER-SEC"])
    });
    let row = |l: &str| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() == 4 && words[..3] == [lab.outer.as_str(), "XDP_ABORTED", "3"]
    };
    trace.wait_for("3 aborted", row);
}

#[test]
#[ignore = "needs root"]
fn trace_says_so_when_there_is_no_exception() {
    let trace = Streaming::spawn(&["trace", "--interval", "0.1", "--count", "3"]);
    trace.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    // A line per interval, not silence (another test's aborts may come).
    for _ in 0..2 {
        let line = trace.wait_for("an idle line or a table", |l| {
            l.starts_with("no XDP exceptions so far (") || l.starts_with("INTERFACE ")
        });
        assert!(line.ends_with(" s)") || line.starts_with("INTERFACE"), "{line}");
    }
}

#[test]
fn the_top_level_help_lists_the_trace_family() {
    let out = Command::new(XDPCTL).arg("--help").output().expect("running xdpctl --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let trace = help.lines().find(|l| l.trim_start().starts_with("trace ")).expect("trace in help");
    for sub in ["monitor", "netdev", "printk"] {
        assert!(trace.contains(sub), "{sub} on the trace line: {trace}");
    }
}

#[test]
#[ignore = "needs root"]
fn printk_decodes_the_labs_frames_since_it_started_and_names_the_interface() {
    let lab = Lab::new();
    let want = format!("src: {} dst: {} proto: 0x86dd", lab.inner_mac, lab.outer_mac);
    // Before xdp_printk is loaded here, the banner says how. (Only this
    // test loads it; the lock keeps other suites out.)
    let reader = Streaming::spawn(&["trace", "printk"]);
    let banner = reader.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(banner.contains("--progname xdp_printk"), "{banner}");
    drop(reader);

    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_printk"]);
    // Lines nobody reads yet: stale once the reader starts.
    assert!(lab.ping(2), "xdp_printk passes every frame");
    let reader = Streaming::spawn(&["trace", "printk"]);
    let banner = reader.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(banner.contains(&format!("xdp_printk runs on {}", lab.outer)), "{banner}");
    assert!(!banner.contains("--progname"), "no hint to load what runs: {banner}");
    // Someone else's line in the same buffer.
    std::fs::write("/sys/kernel/tracing/trace_marker", "another user's line\n").unwrap();
    assert!(lab.ping(3));
    let named = format!("bpf_trace_printk: {} {want}", lab.outer);
    for _ in 0..3 {
        let line = reader.wait_for(&want, |l| l.ends_with(&want));
        assert!(line.contains(&named), "the interface named: {line}");
    }
    // Nothing more: the 2 stale frames and the other line stay out.
    let mut rest = Vec::new();
    while let Some(line) = reader.next_line(std::time::Duration::from_millis(500)) {
        rest.push(line);
    }
    assert!(!rest.iter().any(|l| l.ends_with(&want)), "stale lines: {rest:?}");
    assert!(!rest.iter().any(|l| l.contains("another user's")), "{rest:?}");
    let (status, err) = reader.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
}

/// (rx_packets, rx_bytes, tx_packets, tx_bytes) of `dev` in a netdev sample.
fn netdev_counts(sample: &str, dev: &str) -> (u64, u64, u64, u64) {
    let v: Value = serde_json::from_str(sample).expect("trace netdev JSON");
    let Some(d) = v["devices"].as_array().expect("devices").iter().find(|d| d["ifname"] == dev)
    else {
        return (0, 0, 0, 0);
    };
    let n = |k: &str| d[k].as_u64().expect(k);
    (n("rx_packets"), n("rx_bytes"), n("tx_packets"), n("tx_bytes"))
}

#[test]
#[ignore = "needs root"]
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
    // The last packets came in this sample's period: rates beside totals.
    let dev = &v["devices"][0];
    for rate in ["rx_pps", "tx_pps", "rx_bps", "tx_bps"] {
        assert!(dev[rate].as_f64().expect(rate) > 0.0, "{rate}: {line}");
    }
    drop(tracer);

    // Text: a header naming the columns, rates beside totals.
    let tracer = Streaming::spawn(&["trace", "netdev", "--dev", &lab.outer, "--interval", "0.1"]);
    let header = tracer.wait_for("the header", |l| l.starts_with("DEV "));
    let columns: Vec<&str> = header.split_whitespace().collect();
    let want = ["DEV", "RX-PKTS", "RX-PPS", "RX-BYTES", "TX-PKTS", "TX-PPS", "TX-BYTES"];
    assert_eq!(columns, want, "{header}");
    assert!(lab.ping(2));
    let row = tracer.wait_for("2 sent", |l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() == 7 && words[0] == lab.outer && words[4] == "2"
    });
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");

    let events =
        Streaming::spawn(&["trace", "netdev", "--dev", &lab.outer, "--events", "--count", "2"]);
    events.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(lab.ping(1));
    let want_tx = format!("tx {} len={}", lab.outer, PING6_REPLY_BYTES);
    events.wait_for(&want_tx, |l| l.starts_with(&want_tx));
    let want_rx = format!("rx {} len={}", lab.outer, PING6_REPLY_BYTES - 14);
    events.wait_for(&want_rx, |l| l.starts_with(&want_rx));
}

/// Packets counted for `event` on all CPUs in one monitor sample, 0 if absent.
fn monitor_total(sample: &str, event: &str) -> u64 {
    monitor_field(sample, event, "packets")
}

/// Field `field` of `event`'s total row in one monitor sample, 0 if absent.
fn monitor_field(sample: &str, event: &str, field: &str) -> u64 {
    let v: Value = serde_json::from_str(sample).expect("trace monitor JSON");
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|r| r["event"] == event && r["cpu"] == "total")
        .map_or(0, |r| r[field].as_u64().expect(field))
}

#[test]
#[ignore = "needs root"]
fn monitor_counts_redirects_and_skips_missing_tracepoints() {
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", "xdp_redirect_map"]);
    xdpctl_ok(&["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer]);
    right.exec(&["ethtool", "-K", "veth0", "gro", "on"]);

    let monitor = Streaming::spawn(&["--json", "trace", "monitor", "--interval", "0.1"]);
    monitor.wait_for("a first sample", |l| l.contains("\"events\""));
    // Pings to the left lab's outer address go to the right lab: no replies.
    assert_eq!(left.ping_from_inside(&left.outer_ip, 5), 0);
    let line = monitor.wait_for("5 redirects", |l| monitor_total(l, "redirect") >= 5);
    assert_eq!(monitor_total(&line, "redirect"), 5, "{line}");
    let line = monitor.wait_for("5 sent", |l| monitor_total(l, "devmap_xmit") >= 5);
    assert_eq!(monitor_total(&line, "devmap_xmit"), 5, "{line}");
    assert_eq!(monitor_total(&line, "redirect_err"), 0, "{line}");

    let (status, err) = monitor.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
    // 6.x kernels have no xdp_redirect_map tracepoints: one notice each.
    for gone in ["xdp_redirect_map", "xdp_redirect_map_err"] {
        if !std::path::Path::new("/sys/kernel/tracing/events/xdp").join(gone).exists() {
            let notice = format!("no xdp:{gone} tracepoint;");
            assert_eq!(err.matches(&notice).count(), 1, "{err}");
        }
    }
}

#[test]
#[ignore = "needs root"]
fn monitor_keeps_trafficgens_own_redirects_apart() {
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", "xdp_redirect_map"]);
    xdpctl_ok(&["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer]);
    // A target that is down: every redirect into it fails.
    common::run("ip", &["link", "set", "dev", &right.outer, "down"]);

    let monitor = Streaming::spawn(&["--json", "trace", "monitor", "--interval", "0.1"]);
    monitor.wait_for("a first sample", |l| l.contains("\"events\""));
    // trafficgen sends with XDP_TX, which its test run makes a redirect.
    let out = Command::new("ip")
        .args(["netns", "exec", &left.ns, XDPCTL, "-q", "trafficgen", "--dev", "veth0"])
        .args(["--count", "1000"])
        .output()
        .expect("running xdpctl trafficgen");
    assert!(out.status.success(), "trafficgen: {}", stderr(&out));
    let line =
        monitor.wait_for("1000 failed", |l| monitor_field(l, "redirect_err", "drops") >= 1000);
    // All 1000 redirects under test failed; none of them succeeded.
    assert_eq!(monitor_field(&line, "redirect_err", "drops"), 1000, "{line}");
    assert_eq!(monitor_total(&line, "redirect"), 0, "{line}");
    let v: Value = serde_json::from_str(&line).unwrap();
    let errors: u64 = v["errors"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(errors, 1000, "by errno: {line}");
    // The generator's own, on rows of their own.
    assert_eq!(monitor_total(&line, "redirect (trafficgen)"), 1000, "{line}");
    assert_eq!(monitor_total(&line, "devmap_xmit (trafficgen)"), 1000, "{line}");
    assert_eq!(monitor_total(&line, "devmap_xmit"), 0, "{line}");

    let (status, err) = monitor.interrupt();
    assert!(status.success(), "Ctrl-C is a clean exit: {status} {err}");
}
