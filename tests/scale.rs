//! Many interfaces in one namespace (issue 18): `status` lists each with its
//! program, `stats --all` reads every one xdpctl loaded, and `load`/`unload`
//! on one leave the others as they were.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{stderr, unique};
use serde_json::Value;

const PAIRS: usize = 60;

/// A namespace of ours with veth pairs `<name>a<i>`/`<name>b<i>`; dropped,
/// it goes with xdpctl's pins and records of it.
struct Crowd {
    name: String,
    cookie: u64,
}

impl Crowd {
    fn new(pairs: usize) -> Crowd {
        let name = unique("xk");
        common::run("ip", &["netns", "add", &name]);
        let ns = File::open(format!("/run/netns/{name}")).unwrap();
        let crowd = Crowd { name, cookie: xdpctl::net::netns::cookie_of(&ns).unwrap() };
        let lines: String = (0..pairs)
            .map(|i| format!("link add {0}a{i} type veth peer name {0}b{i}\n", crowd.name))
            .collect();
        let mut ip = Command::new("ip")
            .args(["-n", &crowd.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        ip.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        assert!(ip.wait().unwrap().success(), "ip -batch");
        crowd
    }

    fn dev(&self, i: usize) -> String {
        format!("{}a{i}", self.name)
    }

    /// The program loaded on pair `i`: two kinds, so a mix-up shows.
    fn prog(i: usize) -> &'static str {
        if i % 2 == 0 {
            "xdp_pass"
        } else {
            "xdp_drop"
        }
    }

    fn xdpctl(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg(common::XDPCTL)
            .args(args)
            .output()
            .unwrap()
    }

    fn xdpctl_ok(&self, args: &[&str]) -> String {
        let out = self.xdpctl(args);
        assert!(out.status.success(), "xdpctl {}: {}", args.join(" "), stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn load_all(&self, pairs: usize) {
        for i in 0..pairs {
            let dev = self.dev(i);
            self.xdpctl_ok(&[
                "-q",
                "load",
                "--dev",
                &dev,
                "--skb-mode",
                "--progname",
                Self::prog(i),
            ]);
        }
    }

    /// `status --json`, by interface name.
    fn status(&self) -> Vec<Value> {
        let out = self.xdpctl(&["--json", "status"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).is_empty(), "nothing to report: {}", stderr(&out));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.strip_prefix(&self.name).is_some_and(|r| r.starts_with('a')) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let prefix = format!("n{}-i", self.cookie);
        if let Ok(entries) = std::fs::read_dir("/run/xdpctl") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(Path::new("/run/xdpctl").join(e.file_name()));
                }
            }
        }
    }
}

fn row<'a>(rows: &'a [Value], dev: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["ifname"] == dev)
}

#[test]
#[ignore = "needs root"]
fn status_lists_every_interface_with_its_program() {
    let crowd = Crowd::new(PAIRS);
    crowd.load_all(PAIRS);
    let rows = crowd.status();
    assert_eq!(rows.len(), PAIRS, "one program per loaded interface: {rows:?}");
    for i in 0..PAIRS {
        let dev = crowd.dev(i);
        let r = row(&rows, &dev).unwrap_or_else(|| panic!("{dev} missing"));
        assert_eq!(r["name"], Crowd::prog(i), "{r}");
        assert_eq!(r["mode"], "skb", "{r}");
        assert_eq!(r["pin_dir"], format!("/sys/fs/bpf/{dev}"), "{r}");
    }
    // The text table: a line per interface.
    let text = crowd.xdpctl_ok(&["status"]);
    assert_eq!(text.lines().count(), PAIRS + 1, "{text}");
    // --dev picks one out of the crowd.
    let one = crowd.xdpctl_ok(&["--json", "status", "--dev", &crowd.dev(7)]);
    let one: Vec<Value> = serde_json::from_str(&one).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["name"], "xdp_drop");
}

#[test]
#[ignore = "needs root"]
fn stats_all_reads_every_interface_xdpctl_loaded() {
    let pairs = 12;
    let crowd = Crowd::new(pairs);
    crowd.load_all(pairs);
    let out = crowd.xdpctl_ok(&["--json", "stats", "--all", "--count", "2", "--interval", "0.1"]);
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

    let text = crowd.xdpctl_ok(&["stats", "--all", "--count", "1", "--interval", "0.1"]);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&crowd.name)).collect();
    assert_eq!(rows.len(), pairs * 5, "a row per interface and action: {text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("INTERFACE")).count(), 1, "{text}");

    // Nothing of ours here: said, exit 1.
    let empty = Crowd::new(1);
    let out = empty.xdpctl(&["stats", "--all", "--count", "1"]);
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
    let crowd = Crowd::new(pairs + 1);
    crowd.load_all(pairs);
    let before = crowd.status();
    let spare = crowd.dev(pairs);
    let out = crowd.xdpctl_ok(&["--json", "load", "--dev", &spare, "--skb-mode"]);
    let loaded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loaded["ifname"], spare.as_str());
    let after = crowd.status();
    assert_eq!(after.len(), pairs + 1);
    assert!(row(&after, &spare).is_some());
    crowd.xdpctl_ok(&["unload", "--dev", &spare]);
    assert_eq!(crowd.status(), before, "the others are as they were");
    assert!(!Path::new(&format!("/sys/fs/bpf/{spare}/xdp_stats_map")).exists());

    // Unloading one of the crowd takes its pins and nobody else's.
    let victim = crowd.dev(3);
    crowd.xdpctl_ok(&["unload", "--dev", &victim]);
    let left = crowd.status();
    assert_eq!(left.len(), pairs - 1);
    assert!(row(&left, &victim).is_none());
    assert!(!Path::new(&format!("/sys/fs/bpf/{victim}/xdp_stats_map")).exists());
    for i in (0..pairs).filter(|i| *i != 3) {
        let dev = crowd.dev(i);
        assert!(Path::new(&format!("/sys/fs/bpf/{dev}/xdp_stats_map")).exists(), "{dev}");
    }
}
