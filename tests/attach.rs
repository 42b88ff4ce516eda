//! load / unload / status / stats against a real veth with real ping traffic.
//! Needs root; every test builds its own lab and removes it, also on failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::{xdpctl, xdpctl_ok, Lab, PING6_REPLY_BYTES};
use serde_json::Value;

fn load(lab: &Lab, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "load", "--dev", &lab.outer];
    args.extend_from_slice(extra);
    serde_json::from_str(&xdpctl_ok(&args)).expect("load JSON")
}

fn prog_id(v: &Value) -> u64 {
    v["prog_id"].as_u64().expect("prog_id")
}

#[test]
#[ignore = "needs root"]
fn pass_lets_ping6_through_and_counts_every_reply() {
    let lab = Lab::new();
    load(&lab, &["--progname", "xdp_pass"]);
    assert!(lab.ping(5), "ping6 must succeed through xdp_pass");
    let s = lab.stats();
    assert_eq!(s.packets("XDP_PASS"), 5);
    assert_eq!(s.bytes("XDP_PASS"), 5 * PING6_REPLY_BYTES);
    for other in ["XDP_ABORTED", "XDP_DROP", "XDP_TX", "XDP_REDIRECT"] {
        assert_eq!(s.packets(other), 0, "{other}");
    }
}

#[test]
#[ignore = "needs root"]
fn drop_blocks_ping_and_counts_the_drops() {
    let lab = Lab::new();
    load(&lab, &["--progname", "xdp_drop_func"]);
    assert!(!lab.ping(3), "ping6 must fail through xdp_drop");
    let s = lab.stats();
    assert_eq!(s.packets("XDP_DROP"), 3);
    assert_eq!(s.bytes("XDP_DROP"), 3 * PING6_REPLY_BYTES);
    assert_eq!(s.packets("XDP_PASS"), 0);
}

#[test]
#[ignore = "needs root"]
fn abort_counts_aborted() {
    let lab = Lab::new();
    load(&lab, &["--progsec", "xdp_abort"]);
    assert!(!lab.ping(2));
    let s = lab.stats();
    assert_eq!(s.packets("XDP_ABORTED"), 2);
    assert_eq!(s.packets("XDP_DROP"), 0);
}

#[test]
#[ignore = "needs root"]
fn second_load_without_force_is_refused_and_changes_nothing() {
    let lab = Lab::new();
    let first = prog_id(&load(&lab, &[]));
    let out = xdpctl(&["load", "--dev", &lab.outer, "--progname", "xdp_drop"]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("id {first}")) && err.contains("xdp_pass") && err.contains("native"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    let attached = lab.attached();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0]["prog_id"].as_u64(), Some(first));
    assert!(lab.ping(1), "the first program (xdp_pass) still runs");
}

#[test]
#[ignore = "needs root"]
fn force_swaps_the_program() {
    let lab = Lab::new();
    let first = prog_id(&load(&lab, &[]));
    let second = load(&lab, &["--progname", "xdp_drop", "--force"]);
    assert_ne!(prog_id(&second), first);
    assert_eq!(second["replaced"], serde_json::json!([first]));
    let attached = lab.attached();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0]["name"], "xdp_drop");
    assert_eq!(attached[0]["prog_id"].as_u64(), Some(prog_id(&second)));
    assert!(!lab.ping(1));
}

#[test]
#[ignore = "needs root"]
fn reuse_maps_keeps_counters_across_a_swap() {
    let lab = Lab::new();
    load(&lab, &[]);
    assert!(lab.ping(3));
    let before = lab.stats();
    assert_eq!(before.packets("XDP_PASS"), 3);

    load(&lab, &["--progname", "xdp_drop", "--force", "--reuse-maps"]);
    assert!(!lab.ping(2));
    let after = lab.stats();
    assert_eq!(after.map_id(), before.map_id(), "the same map serves both programs");
    assert_eq!(after.packets("XDP_PASS"), 3);
    assert_eq!(after.packets("XDP_DROP"), 2);

    // Without --reuse-maps the counters start over in a new map.
    load(&lab, &["--progname", "xdp_pass", "--force"]);
    let fresh = lab.stats();
    assert_ne!(fresh.map_id(), before.map_id());
    assert_eq!(fresh.packets("XDP_DROP"), 0);
}

#[test]
#[ignore = "needs root"]
fn stats_from_a_separate_process_follow_a_reload() {
    let lab = Lab::new();
    load(&lab, &[]);
    let old_map = lab.stats().map_id();
    let stream =
        common::Streaming::spawn(&["--json", "stats", "--dev", &lab.outer, "--interval", "0.1"]);
    let sample_of = |line: &str| serde_json::from_str::<Value>(line).expect("NDJSON line");
    let first = sample_of(&stream.wait_for("a first sample", |_| true));
    assert_eq!(first["map_id"].as_u64(), Some(old_map));

    load(&lab, &["--progname", "xdp_drop", "--force"]);
    let new_map = lab.stats().map_id();
    assert_ne!(new_map, old_map);
    assert!(!lab.ping(4));
    stream.wait_for("the new map counting 4 drops", |line| {
        let s = sample_of(line);
        s["map_id"].as_u64() == Some(new_map)
            && s["actions"]["XDP_DROP"]["packets"].as_u64() == Some(4)
    });

    let (status, err) = stream.interrupt();
    assert!(status.success(), "{status:?} {err}");
    assert!(err.contains(&format!("map id {old_map} -> {new_map}")), "{err}");
}

#[test]
#[ignore = "needs root"]
fn unload_leaves_no_attachment_and_no_pins() {
    let lab = Lab::new();
    let loaded = load(&lab, &[]);
    let pin = lab.pin_dir().join("xdp_stats_map");
    assert!(pin.exists(), "load pins xdp_stats_map in {}", lab.pin_dir().display());

    let report: Value =
        serde_json::from_str(&xdpctl_ok(&["--json", "unload", "--dev", &lab.outer])).unwrap();
    assert_eq!(report["detached"][0]["prog_id"], loaded["prog_id"]);
    assert!(lab.attached().is_empty());
    assert!(!pin.exists() && !lab.pin_dir().exists(), "pins and their directory are gone");
    assert!(lab.ping(1), "traffic flows without a program");

    // Idempotent: nothing attached is not an error.
    let again = xdpctl_ok(&["unload", "--dev", &lab.outer]);
    assert!(again.contains("No XDP program attached"), "{again}");
}

#[test]
#[ignore = "needs root"]
fn skb_and_native_modes_both_work() {
    let lab = Lab::new();
    for (flag, mode) in
        [("--skb-mode", "skb"), ("-N", "native"), ("--mode=skb", "skb"), ("-A", "native")]
    {
        let loaded = load(&lab, &[flag]);
        assert_eq!(loaded["mode"], mode, "{flag}");
        let attached = lab.attached();
        assert_eq!(attached.len(), 1, "{flag}");
        assert_eq!(attached[0]["mode"], mode, "{flag}");
        assert!(lab.ping(2), "{flag}");
        assert_eq!(lab.stats().packets("XDP_PASS"), 2, "{flag}");
        xdpctl_ok(&["unload", "--dev", &lab.outer]);
    }
    // --force across modes: skb is detached, native attached.
    load(&lab, &["--skb-mode"]);
    let loaded = load(&lab, &["--native-mode", "--force", "--progname", "xdp_drop"]);
    assert_eq!(loaded["mode"], "native");
    let attached = lab.attached();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0]["name"], "xdp_drop");
}

#[test]
#[ignore = "needs root"]
fn custom_pin_dir_is_recorded_for_stats_status_and_unload() {
    let lab = Lab::new();
    let dir = Path::new("/sys/fs/bpf").join(common::unique("xpin"));
    let _cleanup = common::RemoveDir(&dir);
    load(&lab, &["--pin-dir", dir.to_str().unwrap()]);
    assert!(dir.join("xdp_stats_map").exists());
    assert!(!lab.pin_dir().exists(), "nothing pinned in the default place");
    assert_eq!(lab.attached()[0]["pin_dir"], dir.to_str().unwrap());
    assert!(lab.ping(2));
    assert_eq!(lab.stats().packets("XDP_PASS"), 2);
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    assert!(!dir.exists());
}

#[test]
#[ignore = "needs root"]
fn a_user_object_built_by_the_test_loads_and_counts() {
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(
        &tmp.0,
        "my_prog",
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include \"xdp_stats_kern.h\"\n\
         SEC(\"xdp\") int my_drop(struct xdp_md *ctx)\n\
         { return xdp_stats_record_action(ctx, XDP_DROP); }\n\
         SEC(\"xdp\") int my_pass(struct xdp_md *ctx)\n\
         { return xdp_stats_record_action(ctx, XDP_PASS); }\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n",
    );
    let loaded = load(&lab, &["--obj", obj.to_str().unwrap(), "--progname", "my_drop"]);
    assert_eq!(loaded["prog_name"], "my_drop");
    assert_eq!(lab.attached()[0]["name"], "my_drop");
    assert!(!lab.ping(2));
    assert_eq!(lab.stats().packets("XDP_DROP"), 2);
}

#[test]
#[ignore = "needs root"]
fn load_mounts_bpffs_when_it_is_missing() {
    let lab = Lab::new();
    // In a private mount namespace, unmounting bpffs leaves the host's alone.
    let script = format!(
        "set -e; while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf; done; \
         {x} -q load --dev {d}; stat -f -c %T /sys/fs/bpf; \
         test -e /sys/fs/bpf/{d}/xdp_stats_map; \
         {x} -q stats --dev {d} --count 1 --interval 0.05; {x} -q unload --dev {d}",
        x = common::XDPCTL,
        d = lab.outer
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("running unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", common::stderr(&out));
    assert!(stdout.contains("bpf_fs"), "bpffs was mounted again: {stdout}");
    assert!(stdout.contains("XDP_PASS"), "stats read the new pin: {stdout}");
    assert!(lab.attached().is_empty());
}

#[test]
#[ignore = "needs root"]
fn stats_stops_cleanly_on_ctrl_c_and_on_a_closed_pipe() {
    let lab = Lab::new();
    load(&lab, &[]);
    let stream = common::Streaming::spawn(&["stats", "--dev", &lab.outer, "--interval", "0.1"]);
    // The banner comes after the Ctrl-C handler is in place.
    stream.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    stream.wait_for("a table", |l| l.starts_with("XDP_PASS"));
    let (status, err) = stream.interrupt();
    assert!(status.success(), "exit on SIGINT: {status:?} {err}");
    assert_eq!(err, "");

    let piped = format!(
        "set -o pipefail; {} --json stats --dev {} --interval 0.05 | head -n 1",
        common::XDPCTL,
        lab.outer
    );
    let out = Command::new("bash").args(["-c", &piped]).output().expect("running bash");
    assert!(out.status.success(), "{:?} {}", out.status, common::stderr(&out));
    assert_eq!(common::stderr(&out), "", "no panic on a closed pipe");
    let line = String::from_utf8_lossy(&out.stdout);
    let sample: Value = serde_json::from_str(line.trim()).expect("one JSON sample");
    assert!(sample["actions"]["XDP_PASS"].is_object());
}

/// `stats --count 1` prints the totals at once, however long the interval;
/// rates come from the second sample on. On a terminal the tables redraw in
/// place, every line within 80 columns.
#[test]
#[ignore = "needs root"]
fn stats_shows_totals_at_once_and_redraws_in_place_on_a_terminal() {
    use std::time::{Duration, Instant};

    let lab = Lab::new();
    load(&lab, &[]);
    assert!(lab.ping(3));
    let start = Instant::now();
    let out = xdpctl_ok(&["stats", "--dev", &lab.outer, "--count", "1", "--interval", "5"]);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(2500), "waited {took:?} for the first sample: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("XDP-action") && l.ends_with("totals only")));
    let pass = lines.iter().find(|l| l.starts_with("XDP_PASS")).expect("an XDP_PASS row");
    let cols: Vec<&str> = pass.split_whitespace().collect();
    assert_eq!(cols[2], "-", "no rate yet: {pass}");
    assert!(cols[1].parse::<u64>().unwrap() >= 3, "the pings' replies: {pass}");

    // JSON: totals at once (period 0), rates over the interval next.
    let json = xdpctl_ok(&["--json", "stats", "--dev", &lab.outer, "-c", "2", "-i", "0.2"]);
    let samples: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(samples.len(), 2, "{json}");
    assert_eq!(samples[0]["period"], 0.0, "{json}");
    let period = samples[1]["period"].as_f64().unwrap();
    assert!((0.15..0.5).contains(&period), "{json}");

    // A terminal (script gives one): the cursor goes back up over the
    // header and the five rows before each new table.
    let cmd = format!("{} stats --dev {} --count 3 --interval 0.1", common::XDPCTL, lab.outer);
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(screen.matches("\x1b[6A\r\x1b[J").count(), 2, "{screen:?}");
    assert_eq!(screen.matches("XDP-action").count(), 3, "{screen:?}");
    // Every line of the tables (the banner names the pin and may be longer).
    for line in screen.replace("\x1b[6A\r\x1b[J", "").lines().skip(1) {
        assert!(line.trim_end_matches('\r').chars().count() <= 80, "{line:?}");
    }
}

/// The link and program walks (libbpf-rs's query iterators) find what a
/// link attachment holds: the link on this interface, and the program that
/// uses the stats map.
#[test]
#[ignore = "needs root"]
fn link_and_program_walks_find_the_link_and_the_map_user() {
    use std::os::fd::AsFd;

    use libbpf_rs::{MapCore, Program};
    use xdpctl::xdp::attach::{self, Attachment, Mode};

    let lab = Lab::new();
    common::with_skeleton(|skel| {
        let dev = xdpctl::net::iface::resolve(&lab.outer).expect("the lab's interface");
        let prog = skel.progs.xdp_pass.as_fd();
        let prog_id = Program::id_from_fd(prog).expect("program id");
        let att = Attachment { prog_id, mode: Mode::Skb };
        assert_eq!(attach::holding_link(dev.index, att).expect("walk links"), None);

        let fd = attach::attach_link(&dev, prog, Some(Mode::Skb)).expect("attach through a link");
        let link_id = libbpf_rs::query::LinkInfo::from_fd(fd.as_fd()).expect("link info").id;
        assert_eq!(attach::holding_link(dev.index, att).expect("walk links"), Some(link_id));
        let other = Attachment { prog_id: prog_id + 1_000_000, mode: Mode::Skb };
        assert_eq!(attach::holding_link(dev.index, other).expect("walk links"), None);

        let map_id = skel.maps.xdp_stats_map.info().expect("map info").info.id;
        let users = xdpctl::obj::object::programs_using(&[map_id]).expect("walk programs");
        assert!(users.contains(&(prog_id, map_id)), "{users:?}");
        let unused = xdpctl::obj::object::programs_using(&[u32::MAX]).expect("walk programs");
        assert!(unused.is_empty(), "{unused:?}");
    });
}

/// The stats map keeps its BTF, so `bpftool map dump` shows fields, not raw
/// bytes: the kernel refuses BTF for an array map whose key is no integer,
/// and libbpf then quietly creates the map without it.
#[test]
#[ignore = "needs root"]
fn the_stats_map_carries_btf_for_bpftool() {
    let lab = Lab::new();
    load(&lab, &["--progname", "xdp_pass"]);
    let pin = lab.pin_dir().join("xdp_stats_map");
    let out = Command::new("bpftool")
        .args(["-j", "map", "show", "pinned"])
        .arg(&pin)
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    assert!(info["btf_id"].as_u64().is_some_and(|id| id > 0), "no BTF: {info}");
    let dump = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&pin)
        .output()
        .expect("bpftool");
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("rx_packets"), "dump names the fields: {text}");
}
