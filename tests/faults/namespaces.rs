//! Network namespaces: dead ones, `ip netns exec`, tracing per namespace.

use super::*;

/// Deletes a network namespace when dropped.
struct DelNetns(String);

impl Drop for DelNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A namespace `ns` with a veth pair `dev`/`peer` inside, up.
fn netns_with_veth(ns: &str, dev: &str, peer: &str) -> DelNetns {
    common::run("ip", &["netns", "add", ns]);
    let guard = DelNetns(ns.to_string());
    common::run("ip", &["-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer]);
    common::run("ip", &["-n", ns, "link", "set", dev, "up"]);
    common::run("ip", &["-n", ns, "link", "set", peer, "up"]);
    guard
}

/// The cookie of the namespace `ip netns` calls `ns`.
fn cookie_of(ns: &str) -> u64 {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    xdpctl::net::netns::cookie_of(&file).unwrap()
}

fn xdpctl_in(ns: &str, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap()
}

/// A namespace deleted with xdpctl's program attached; its pinned map is
/// shared by another tool's live program. A new namespace gets the dead
/// one's inode number (the kernel hands it on at once) and an interface of
/// the same name and ifindex. It inherits nothing: the old record goes with
/// the next command that looks, and no unload anywhere removes the pin the
/// live program uses.
// Case s03.
#[test]
#[ignore = "needs root"]
fn a_dead_namespace_leaves_nothing_to_inherit() {
    let _s = serial();
    let tmp = common::TempDir::new();
    let (dev, peer) = (unique("xd"), unique("xe"));
    let pins = Path::new("/sys/fs/bpf").join(unique("xpins"));
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm_pins, _rm_other) = (common::RemoveDir(&pins), common::RemoveDir(&other));
    let before = System::settled();

    let ns_a = unique("xa");
    let guard_a = netns_with_veth(&ns_a, &dev, &peer);
    // A directory the next namespace's loads could name too.
    let dir = pins.to_str().unwrap();
    let out = xdpctl_in(&ns_a, &["--json", "load", "--dev", &dev, "--pin-dir", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let prog_a = loaded["prog_id"].as_u64().unwrap();
    let cookie_a = cookie_of(&ns_a);
    let pin = pins.join("xdp_stats_map");
    let shared = map_id_of(&pin);
    // Another tool's program shares the pinned map.
    let obj = common::build_bpf(&tmp.0, "reader", STATS_READER_SRC);
    std::fs::create_dir(&other).unwrap();
    let reader_pin = other.join("reader");
    common::run(
        "bpftool",
        &[
            "prog",
            "load",
            obj.to_str().unwrap(),
            reader_pin.to_str().unwrap(),
            "map",
            "name",
            "xdp_stats_map",
            "pinned",
            pin.to_str().unwrap(),
        ],
    );

    use std::os::unix::fs::MetadataExt;
    let ino_a = std::fs::metadata(format!("/run/netns/{ns_a}")).unwrap().ino();
    drop(guard_a);
    assert!(common::freed("prog", prog_a), "the namespace's program went with it");
    // The next namespace made takes the freed inode number.
    let mut ns_b = None;
    for _ in 0..20 {
        let name = unique("xb");
        let guard = netns_with_veth(&name, &dev, &peer);
        if std::fs::metadata(format!("/run/netns/{name}")).unwrap().ino() == ino_a {
            ns_b = Some((name, guard));
            break;
        }
    }
    let (ns_b, guard_b) = ns_b.expect("no new namespace got the dead one's inode number");

    let out = xdpctl_in(&ns_b, &["status", "--dev", &dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("leftovers"), "inherited: {}", stderr(&out));
    let records: Vec<String> = std::fs::read_dir("/run/xdpctl")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !records.iter().any(|r| r.starts_with(&format!("n{cookie_a}-"))),
        "the dead namespace's record stays: {records:?}"
    );
    let out = xdpctl_in(&ns_b, &["unload", "--dev", &dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(pin.exists(), "the pin a live program uses was removed");
    assert_eq!(map_id_of(&pin), shared);

    drop(guard_b);
    std::fs::remove_file(&reader_pin).unwrap();
    std::fs::remove_file(&pin).unwrap();
    std::fs::remove_dir(&pins).unwrap();
    std::fs::remove_dir(&other).unwrap();
    before.assert_unchanged("a namespace deleted while attached, and one after it");
}

/// Interface indexes repeat across namespaces: aborts on a lab's veth0 whose
/// index is that of another lab's interface here show under that lab's
/// namespace, never under this namespace's interface.
// Case s07.
#[test]
#[ignore = "needs root"]
fn trace_keys_exceptions_per_namespace() {
    let _s = serial();
    let host = Lab::new();
    let index = xdpctl::net::iface::resolve(&host.outer).unwrap().index;
    let other = Lab::with_inner_index(index);
    let before = System::settled();
    let netns = format!("--net=/run/netns/{}", other.ns);
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "load", "--dev", "veth0", "--progname", "xdp_abort"],
    );

    let trace = common::Streaming::spawn(&["--json", "trace", "--interval", "0.1"]);
    trace.wait_for("a first sample", |l| l.contains("\"exceptions\""));
    // Echo requests reach veth0 in the other lab, and are aborted there.
    assert!(!other.ping(5), "xdp_abort lets no request through");
    let rows = |l: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(l).expect("trace JSON");
        v["exceptions"].as_array().expect("exceptions").clone()
    };
    let counted = |r: &serde_json::Value| r["count"].as_u64().unwrap_or(0);
    let line = trace.wait_for("5 aborted in the other lab", |l| {
        rows(l).iter().any(|r| r["netns"]["name"] == other.ns.as_str() && counted(r) >= 5)
    });
    let rows = rows(&line);
    assert_eq!(rows.len(), 1, "{line}");
    let row = &rows[0];
    assert_eq!(
        (row["ifname"].as_str(), row["ifindex"].as_u64(), row["action"].as_str(), counted(row)),
        (Some("veth0"), Some(u64::from(index)), Some("XDP_ABORTED"), 5),
        "{line}"
    );
    let sample: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_ne!(row["netns"]["cookie"], sample["netns"]["cookie"], "{line}");
    let (status, err) = trace.interrupt();
    assert!(status.success(), "{err}");

    // Text: the namespace by its `ip netns` name; the host's interface of
    // that index never shows.
    let trace = common::Streaming::spawn(&["trace", "--interval", "0.1"]);
    trace.wait_for("the banner", |l| l.contains("Ctrl-C stops"));
    assert!(!other.ping(3));
    let want = ["veth0", "XDP_ABORTED", "3", other.ns.as_str()];
    let seen = std::cell::RefCell::new(Vec::new());
    trace.wait_for("veth0, 3 aborted, in the other lab", |l| {
        seen.borrow_mut().push(l.to_string());
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() == 5 && words[..3] == want[..3] && words[4] == want[3]
    });
    let seen = seen.into_inner();
    assert!(!seen.iter().any(|l| l.contains(&host.outer)), "{seen:?}");
    let (status, err) = trace.interrupt();
    assert!(status.success(), "{err}");

    common::run("nsenter", &[&netns, common::XDPCTL, "unload", "--dev", "veth0"]);
    before.assert_unchanged("trace across namespaces");
}

#[test]
#[ignore = "needs root"]
fn load_under_ip_netns_exec_is_refused_as_its_pins_would_vanish() {
    let _s = serial();
    let lab = Lab::new();
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, common::XDPCTL, "load", "--dev", "veth0"])
        .output()
        .expect("running ip netns exec");
    let err = one_line_naming(&out, 1, "ip netns exec");
    assert!(err.contains("nsenter --net=/run/netns/"), "hint: {err}");
    let status = Command::new("ip")
        .args(["netns", "exec", &lab.ns, common::XDPCTL, "--json", "status"])
        .output()
        .expect("status in the namespace");
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "[]", "nothing attached");

    // The hint works: the pins land in the host's bpffs and persist.
    let dir = Path::new("/sys/fs/bpf").join(unique("xnsenter"));
    let _cleanup = common::RemoveDir(&dir);
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let dir_arg = dir.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "load", "--dev", "veth0", "--pin-dir", dir_arg],
    );
    assert!(dir.join("xdp_stats_map").exists());
    common::run("nsenter", &[&netns, common::XDPCTL, "unload", "--dev", "veth0"]);
    assert!(!dir.exists());
}

/// Every lab's inner end is `veth0`: loads there without --pin-dir pin
/// apart, under a directory of each namespace's own; `status` in each shows
/// its own program and pins, and each unload removes only its own.
/// `trace netdev` counts the two `veth0`s apart too.
#[test]
#[ignore = "needs root"]
fn same_named_interfaces_in_two_namespaces_pin_apart() {
    let _s = serial();
    let labs = [Lab::new(), Lab::new()];
    let before = System::settled();
    let mut loaded = Vec::new();
    for lab in &labs {
        let out = xdpctl_in(&lab.ns, &["--json", "load", "--dev", "veth0"]);
        assert!(out.status.success(), "{}: {}", lab.ns, stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let home = Path::new("/sys/fs/bpf").join(format!("xdpctl-netns-{}", cookie_of(&lab.ns)));
        let dir = home.join("veth0");
        assert_eq!(v["pin_dir"], dir.to_str().unwrap(), "{v}");
        assert!(dir.join("xdp_stats_map").exists(), "{}", dir.display());
        loaded.push((v["prog_id"].as_u64().unwrap(), home, dir));
    }
    let status = |lab: &Lab| -> Vec<serde_json::Value> {
        let out = xdpctl_in(&lab.ns, &["--json", "status", "--dev", "veth0"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    for (lab, (id, _, dir)) in labs.iter().zip(&loaded) {
        let rows = status(lab);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["prog_id"], *id, "{rows:?}");
        assert_eq!(rows[0]["pin_dir"], dir.to_str().unwrap(), "{rows:?}");
        let out = xdpctl_in(&lab.ns, &["--json", "stats", "--dev", "veth0", "-c", "1"]);
        assert!(out.status.success(), "stats finds its own pins: {}", stderr(&out));
    }

    // Two rows for the two `veth0`s, each under its namespace's name.
    let trace = common::Streaming::spawn(&[
        "--json",
        "trace",
        "netdev",
        "--dev",
        "veth0",
        "--interval",
        "0.1",
    ]);
    trace.wait_for("a first sample", |l| l.contains("\"devices\""));
    assert!(labs[0].ping(3) && labs[1].ping(5), "xdp_pass lets the pings through");
    let received = |l: &str, ns: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(l).expect("trace JSON");
        let rows = v["devices"].as_array().expect("devices").clone();
        rows.iter()
            .filter(|d| d["ifname"] == "veth0" && d["netns"]["name"] == ns)
            .map(|d| d["rx_packets"].as_u64().unwrap())
            .sum()
    };
    let line = trace.wait_for("both labs' requests", |l| {
        received(l, &labs[0].ns) >= 3 && received(l, &labs[1].ns) >= 5
    });
    assert_eq!((received(&line, &labs[0].ns), received(&line, &labs[1].ns)), (3, 5), "{line}");
    let (code, err) = trace.interrupt();
    assert!(code.success(), "{err}");

    // Each unload takes its own pins and namespace directory, nothing else.
    let out = xdpctl_in(&labs[0].ns, &["unload", "--dev", "veth0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!loaded[0].1.exists(), "{} stays", loaded[0].1.display());
    assert!(loaded[1].2.join("xdp_stats_map").exists(), "the other lab's pin went");
    assert_eq!(status(&labs[1])[0]["prog_id"], loaded[1].0);
    let out = xdpctl_in(&labs[1].ns, &["unload", "--dev", "veth0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!loaded[1].1.exists(), "{} stays", loaded[1].1.display());
    before.assert_unchanged("loads on same-named interfaces of two namespaces");
}
