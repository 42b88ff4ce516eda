//! Upgrades lose nothing (issue 19, item 5): while trafficgen sends into a
//! lab at a fixed rate, `xdpctl load --force --reuse-maps` swaps xdp_pass and
//! xdp_drop in turn, and PASS + DROP in the pinned stats map equals the
//! frames the interface received: none lost, none counted twice. And the
//! check sees a loss: without --reuse-maps each swap starts its counters at
//! 0, and a mode change has a moment with no program. Also: --reuse-maps
//! finds the maps where a `--pin-dir` load put them. Needs root.

mod common;

use std::process::Command;

use common::swaps::{self, Plan, Tally, Via};
use common::{stderr, unique, xdpctl_ok, Lab, RemoveDir, XDPCTL};

const SWAPS: usize = 10;
const RATE: u64 = 50_000;

fn run(modes: (&str, &str), reuse_maps: bool) -> Tally {
    run_via(modes, reuse_maps, Via::Load)
}

fn run_via(modes: (&str, &str), reuse_maps: bool, via: Via) -> Tally {
    let lab = Lab::new();
    let plan = Plan { swaps: SWAPS, rate: RATE, modes, reuse_maps, via };
    swaps::under_traffic(&lab, &plan).unwrap()
}

/// Every frame received is counted once, by the one map all the swaps share.
fn assert_nothing_lost(t: &Tally) {
    assert_eq!(t.map_ids.0, t.map_ids.1, "--reuse-maps kept the stats map: {t:?}");
    assert_eq!(t.counted(), t.received, "PASS + DROP against frames received: {t:?}");
    // Both programs saw traffic: the swaps happened while frames flowed.
    assert!(t.pass > 0 && t.drop > 0, "{t:?}");
    assert!(t.sent > 0 && t.received >= t.sent, "{t:?}");
}

#[test]
#[ignore = "needs root"]
fn native_swaps_under_traffic_lose_no_frame() {
    assert_nothing_lost(&run(("--native-mode", "--native-mode"), true));
}

#[test]
#[ignore = "needs root"]
fn skb_swaps_under_traffic_lose_no_frame() {
    assert_nothing_lost(&run(("--skb-mode", "--skb-mode"), true));
}

#[test]
#[ignore = "needs root"]
fn swaps_through_apply_with_a_changed_file_lose_no_frame() {
    assert_nothing_lost(&run_via(("--skb-mode", "--skb-mode"), true, Via::Apply));
}

#[test]
#[ignore = "needs root"]
fn through_apply_without_reuse_maps_the_check_sees_the_restart() {
    let t = run_via(("--skb-mode", "--skb-mode"), false, Via::Apply);
    assert_ne!(t.map_ids.0, t.map_ids.1, "a new stats map: {t:?}");
    assert!(t.counted() < t.received, "{t:?}");
}

#[test]
#[ignore = "needs root"]
fn without_reuse_maps_the_counters_restart_and_the_check_sees_it() {
    let t = run(("--native-mode", "--native-mode"), false);
    assert_ne!(t.map_ids.0, t.map_ids.1, "a new stats map: {t:?}");
    // The last map counts only what arrived since the last swap.
    assert!(t.counted() < t.received, "{t:?}");
}

#[test]
#[ignore = "needs root"]
fn a_mode_change_has_a_moment_without_a_program_but_counts_nothing_twice() {
    // The kernel holds one of native and skb at a time: each swap detaches,
    // then attaches, and frames arriving in between meet no program.
    let t = run(("--native-mode", "--skb-mode"), true);
    assert_eq!(t.map_ids.0, t.map_ids.1, "{t:?}");
    assert!(t.counted() < t.received, "no gap seen: {t:?}");
    assert!(t.pass > 0 && t.drop > 0, "{t:?}");
}

/// `count` frames from inside the lab, all received.
fn send(lab: &Lab, count: u32) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, XDPCTL, "-q", "trafficgen", "--dev", "veth0"])
        .args(["--count", &count.to_string()])
        .output()
        .expect("running xdpctl trafficgen");
    assert!(out.status.success(), "trafficgen: {}", stderr(&out));
}

#[test]
#[ignore = "needs root"]
fn reuse_maps_finds_the_maps_a_pin_dir_load_put_elsewhere() {
    let lab = Lab::new();
    let dir = std::path::Path::new("/sys/fs/bpf").join(unique("xu"));
    let _dir = RemoveDir(&dir);
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_pass", "--pin-dir", dir_arg]);
    send(&lab, 1000);
    let before = lab.stats();
    assert_eq!(before.packets("XDP_PASS"), 1000);

    // No --pin-dir this time: the counters are where the record says.
    let args = ["load", "--dev", &lab.outer, "--progname", "xdp_drop", "--force", "--reuse-maps"];
    let out = xdpctl_ok(&[&["--json"], &args[..]].concat());
    let loaded: serde_json::Value = serde_json::from_str(&out).expect("load JSON");
    assert_eq!(loaded["pin_dir"], dir_arg, "{loaded}");
    send(&lab, 500);
    let after = lab.stats();
    assert_eq!(after.map_id(), before.map_id(), "the same map serves both programs");
    assert_eq!((after.packets("XDP_PASS"), after.packets("XDP_DROP")), (1000, 500));
    assert!(dir.join("xdp_stats_map").exists());
    assert!(!lab.pin_dir().exists(), "nothing pinned in the default directory");
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
}
