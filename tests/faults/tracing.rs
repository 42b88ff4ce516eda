//! tracefs and tracepoints.

use super::*;

/// tracefs unmounted (in a mount namespace of the test's own, so the host
/// keeps its mount): `trace` mounts it and runs.
// Case c04.
#[test]
#[ignore = "needs root"]
fn trace_mounts_tracefs_when_it_is_missing() {
    let _s = serial();
    let before = System::settled();
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; \
         ! grep -q ' /sys/kernel/tracing tracefs' /proc/self/mounts || exit 9; \
         {} trace -c 1 -i 0.1 && grep -q ' /sys/kernel/tracing tracefs' /proc/self/mounts",
        common::XDPCTL
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    before.assert_unchanged("trace with tracefs mounted by xdpctl");
}

/// Runs `xdpctl args` in a mount namespace of its own where the tracepoints
/// `hidden` (category/name) have no id file: libbpf finds no tracepoint, as
/// on a kernel without it. The host's tracefs is not touched.
fn without_tracepoints(hidden: &[&str], args: &[&str]) -> std::process::Child {
    let masks: String = hidden
        .iter()
        .map(|t| format!("mount -t tmpfs none /sys/kernel/tracing/events/{t} || exit 9; "))
        .collect();
    let script = format!("{masks}exec {} \"$@\"", common::XDPCTL);
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Tracepoints the kernel lacks are skipped with a notice; a command left
/// with none says so in one line.
// Case c20.
#[test]
#[ignore = "needs root"]
fn trace_skips_the_tracepoints_the_kernel_lacks() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let before = System::settled();
    let out = without_tracepoints(&["xdp/xdp_exception"], &["trace", "-c", "1"])
        .wait_with_output()
        .unwrap();
    let err = one_line(&out, &["xdp:xdp_exception", "ls /sys/kernel/tracing/events/xdp"]);
    assert_ne!(out.status.code(), Some(9), "masking failed: {err}");
    before.assert_unchanged("trace without xdp:xdp_exception");

    let out = without_tracepoints(
        &["xdp/xdp_exception", "xdp/xdp_redirect"],
        &["--json", "trace", "monitor", "-c", "1", "-i", "0.2"],
    )
    .wait_with_output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for gone in ["xdp:xdp_exception", "xdp:xdp_redirect "] {
        assert!(err.lines().any(|l| l.contains(gone) && l.contains("skipping")), "{err}");
    }
    let sample: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events: Vec<&str> =
        sample["events"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(!events.iter().any(|e| *e == "xdp_exception" || *e == "xdp_redirect"), "{events:?}");
    before.assert_unchanged("trace monitor without two tracepoints");

    // TX unseen, RX counted: pings out of `dev` come back as replies.
    let child = without_tracepoints(
        &["net/net_dev_queue"],
        &["--json", "trace", "netdev", "--dev", dev, "-c", "1", "-i", "1.5"],
    );
    sleep(Duration::from_millis(300));
    assert!(lab.ping(5), "the pings come back");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    one_line_note(&out, &["net:net_dev_queue", "skipping"]);
    let sample: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = sample["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["ifname"] == dev)
        .unwrap_or_else(|| panic!("{dev} missing: {sample}"))
        .clone();
    assert!(ours["rx_packets"].as_u64().unwrap() >= 5, "{ours}");
    assert_eq!(ours["tx_packets"], 0, "{ours}");
    before.assert_unchanged("trace netdev without net:net_dev_queue");
}
