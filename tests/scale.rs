//! Many interfaces in one namespace (issue 18): `status` lists each with its
//! program, `stats --all` reads every one xdpctl loaded, and `load`/`unload`
//! on one leave the others as they were.

mod common;

use std::process::{Command, Output};

use common::crowd::Crowd;
use common::{stderr, unique};
use serde_json::Value;

const PAIRS: usize = 60;

/// A crowd of `pairs` veth pairs.
fn new_crowd(pairs: usize) -> Crowd {
    let crowd = Crowd::new(&unique("xk")).unwrap();
    crowd.add_pairs(pairs).unwrap();
    crowd
}

/// The program loaded on pair `i`: two kinds, so a mix-up shows.
fn prog(i: usize) -> &'static str {
    if i % 2 == 0 {
        "xdp_pass"
    } else {
        "xdp_drop"
    }
}

/// xdpctl in the crowd's namespace.
fn xdpctl(crowd: &Crowd, args: &[&str]) -> Output {
    crowd.within(|| Ok(Command::new(common::XDPCTL).args(args).output()?)).unwrap()
}

fn xdpctl_ok(crowd: &Crowd, args: &[&str]) -> String {
    let out = xdpctl(crowd, args);
    assert!(out.status.success(), "xdpctl {}: {}", args.join(" "), stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load_all(crowd: &Crowd, pairs: usize) {
    for i in 0..pairs {
        let dev = crowd.dev(i);
        xdpctl_ok(crowd, &["-q", "load", "--dev", &dev, "--skb-mode", "--progname", prog(i)]);
    }
}

/// `status --json`, by interface name.
fn status(crowd: &Crowd) -> Vec<Value> {
    let out = xdpctl(crowd, &["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "nothing to report: {}", stderr(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn row<'a>(rows: &'a [Value], dev: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["ifname"] == dev)
}

#[test]
#[ignore = "needs root"]
fn status_lists_every_interface_with_its_program() {
    let crowd = new_crowd(PAIRS);
    load_all(&crowd, PAIRS);
    let rows = status(&crowd);
    assert_eq!(rows.len(), PAIRS, "one program per loaded interface: {rows:?}");
    for i in 0..PAIRS {
        let dev = crowd.dev(i);
        let r = row(&rows, &dev).unwrap_or_else(|| panic!("{dev} missing"));
        assert_eq!(r["name"], prog(i), "{r}");
        assert_eq!(r["mode"], "skb", "{r}");
        assert_eq!(r["pin_dir"], crowd.pin_dir(&dev).to_str().unwrap(), "{r}");
    }
    // The text table: a line per interface.
    let text = xdpctl_ok(&crowd, &["status"]);
    assert_eq!(text.lines().count(), PAIRS + 1, "{text}");
    // --dev picks one out of the crowd.
    let one = xdpctl_ok(&crowd, &["--json", "status", "--dev", &crowd.dev(7)]);
    let one: Vec<Value> = serde_json::from_str(&one).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["name"], "xdp_drop");
}

#[test]
#[ignore = "needs root"]
fn stats_all_reads_every_interface_xdpctl_loaded() {
    let pairs = 12;
    let crowd = new_crowd(pairs);
    load_all(&crowd, pairs);
    let out = xdpctl_ok(&crowd, &["--json", "stats", "--all", "--count", "2", "--interval", "0.1"]);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2 * pairs, "one object per interface per sample: {out}");
    for i in 0..pairs {
        let dev = crowd.dev(i);
        let mine: Vec<&Value> = lines.iter().filter(|l| l["ifname"] == dev).collect();
        assert_eq!(mine.len(), 2, "{dev}: {out}");
        let index = index_of(&crowd, &dev);
        for l in mine {
            assert_eq!(l["ifindex"], index, "{l}");
            assert_eq!(l["actions"].as_object().unwrap().len(), 5, "{l}");
            assert!(l["map_id"].as_u64().unwrap() > 0);
        }
    }
    let peers = format!("\"{}b", crowd.name);
    assert!(!out.contains(&peers), "nothing loaded on the peers: {out}");

    let text = xdpctl_ok(&crowd, &["stats", "--all", "--count", "1", "--interval", "0.1"]);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&crowd.name)).collect();
    assert_eq!(rows.len(), pairs * 5, "a row per interface and action: {text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("INTERFACE")).count(), 1, "{text}");

    // Nothing of ours here: said, exit 1.
    let empty = new_crowd(1);
    let out = xdpctl(&empty, &["stats", "--all", "--count", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no interface here runs"), "{}", stderr(&out));
}

/// The interface's index in the crowd's namespace, as JSON.
fn index_of(crowd: &Crowd, dev: &str) -> Value {
    let out = common::run("ip", &["-n", &crowd.name, "-j", "link", "show", "dev", dev]);
    let links: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    links[0]["ifindex"].clone()
}

#[test]
#[ignore = "needs root"]
fn load_and_unload_beside_many_leave_the_others_alone() {
    let pairs = 40;
    let crowd = new_crowd(pairs + 1);
    load_all(&crowd, pairs);
    let before = status(&crowd);
    let spare = crowd.dev(pairs);
    let out = xdpctl_ok(&crowd, &["--json", "load", "--dev", &spare, "--skb-mode"]);
    let loaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["ifname"], spare.as_str());
    let after = status(&crowd);
    assert_eq!(after.len(), pairs + 1);
    assert!(row(&after, &spare).is_some());
    xdpctl_ok(&crowd, &["unload", "--dev", &spare]);
    assert_eq!(status(&crowd), before, "the others are as they were");
    assert!(!crowd.pin_dir(&spare).join("xdp_stats_map").exists());

    // Unloading one of the crowd takes its pins and nobody else's.
    let victim = crowd.dev(3);
    xdpctl_ok(&crowd, &["unload", "--dev", &victim]);
    let left = status(&crowd);
    assert_eq!(left.len(), pairs - 1);
    assert!(row(&left, &victim).is_none());
    assert!(!crowd.pin_dir(&victim).join("xdp_stats_map").exists());
    for i in (0..pairs).filter(|i| *i != 3) {
        let dev = crowd.dev(i);
        assert!(crowd.pin_dir(&dev).join("xdp_stats_map").exists(), "{dev}");
    }
}
