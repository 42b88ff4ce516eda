//! Interface names: malformed, unknown, unholdable by bpffs, hostile to a terminal.

use super::*;

// Case c01.
#[test]
#[ignore = "needs root"]
fn malformed_and_unknown_interface_names_are_refused() {
    let _s = serial();
    let nowhere = unique("xnone");
    let file = std::env::temp_dir().join(format!("{}.pcap", unique("c01")));
    let file = file.to_str().unwrap();
    for bad in ["", "sixteen-chars-xx", ".", "..", "a/b", "a:b", "a b", nowhere.as_str()] {
        let valid_form = bad == nowhere;
        for cmd in [
            &["load", "--dev", bad][..],
            &["unload", "--dev", bad],
            &["stats", "--dev", bad, "-c", "1"],
            &["status", "--dev", bad],
            &["sample", "--dev", bad, "-w", file],
            &["afxdp", "--dev", bad],
            &["trafficgen", "--dev", bad, "-n", "1"],
            &["redirect", "--dev", "lo", "--redirect-dev", bad],
            &["features", "--dev", bad],
        ] {
            let err = refused(cmd, &[&format!("{bad:?}"), "ip link"][usize::from(valid_form)..]);
            if valid_form {
                assert!(err.contains(bad) && err.contains("no such interface"), "{err}");
            } else {
                assert!(err.contains("not a valid interface name"), "{err}");
            }
        }
    }
    assert!(!Path::new(file).exists(), "no capture file for a bad --dev");
}

/// A veth named like a VLAN sub-interface (no 8021q module here): its pins
/// go to an encoded directory, and the whole cycle works.
// Case c02.
#[test]
#[ignore = "needs root"]
fn an_interface_name_bpffs_cannot_hold_gets_an_encoded_pin_dir() {
    let _s = serial();
    let name = format!("xv.{}", std::process::id() % 100_000);
    let peer = format!("xw{}", std::process::id() % 100_000);
    Veth { name: &name, peer: &peer, ..Veth::default() }.add().expect("a veth pair");
    let _gone = DelLink(name.clone());
    common::run("ip", &["link", "set", &name, "up"]);
    let before = System::settled();
    let dir = Path::new("/sys/fs/bpf").join(name.replace('.', ":"));
    xdpctl_ok(&["load", "--dev", &name, "--mode", "skb"]);
    assert!(dir.join("xdp_stats_map").exists(), "pinned in {}", dir.display());
    xdpctl_ok(&["stats", "--dev", &name, "-c", "1", "-i", "0.01"]);
    xdpctl_ok(&["unload", "--dev", &name]);
    assert!(!dir.exists());
    before.assert_unchanged("load, stats and unload");
}

/// The whole process group of a hostile helper, killed at the end of the
/// test (also on failure): the shell, what it started, and with them the
/// namespaces they hold.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// `script` (sh, with `args` as $1...) run as nobody, in a process group of
/// its own; `unshare` adds `unshare -Urn` (its own user and net namespace).
fn spawn_as_nobody(unshare: bool, script: &str, args: &[&str]) -> (common::Streaming, KillGroup) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    if unshare {
        cmd.args(["unshare", "-Urn"]);
    }
    cmd.args(["sh", "-c", script, "sh"]).args(args).process_group(0);
    let child = common::Streaming::spawn_command(cmd);
    let group = KillGroup(child.pid());
    (child, group)
}

/// Text a terminal shows as it is: no C0 control but line breaks, no DEL,
/// no C1 control (raw or UTF-8 encoded).
fn assert_no_control(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let bad: Vec<char> =
        text.chars().filter(|&c| c != '\n' && (c.is_control() || c == '\u{fffd}')).collect();
    assert!(bad.is_empty(), "{what} printed raw control characters {bad:?}:\n{text:?}");
}

/// A user without privileges names a device with an escape sequence in a
/// namespace of its own and sends traffic over it, and names a task (comm)
/// with one: root's `trace netdev` and `trace printk` show both escaped.
// Case s07.
#[test]
#[ignore = "needs root"]
fn hostile_interface_names_are_escaped() {
    let _s = serial();
    let lab = Lab::new();
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_printk"]);

    // The device `x ESC [2J` and a peer in a second namespace, pinged.
    let (hostile, _group) = spawn_as_nobody(
        true,
        r#"set -e
        a=$(printf 'x\033[2J')
        ip link set lo up
        ip link add "$a" type veth peer name y
        unshare -n sleep 300 &
        peer=$!
        while [ "$(readlink /proc/$peer/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do
            sleep 0.05
        done
        ip link set y netns "$peer"
        ip addr add 10.99.0.1/24 dev "$a"
        ip link set "$a" up
        nsenter -t "$peer" -n sh -c 'ip addr add 10.99.0.2/24 dev y && ip link set y up'
        exec ping -n -i 0.2 10.99.0.2"#,
        &[],
    );
    hostile.wait_for("pings over the hostile device", |l| l.contains("bytes from"));
    let escaped = r"x\x1b[2J";

    let out = xdpctl(&["trace", "netdev", "--count", "2", "--interval", "0.5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_control("trace netdev", &out.stdout);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with(escaped)).unwrap_or_else(|| panic!("{text}"));
    // Not this namespace's device: its namespace (no `ip netns` name) shows.
    assert!(row.contains("  cookie "), "{row}");

    let out = xdpctl(&["trace", "netdev", "--events", "--count", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_control("trace netdev --events", &out.stdout);
    let text = String::from_utf8_lossy(&out.stdout);
    let seen = format!(" {escaped} len=");
    assert!(text.lines().any(|l| l.contains(&seen) && l.contains(" netns=cookie ")), "{text}");

    // JSON stays JSON, and carries the name itself.
    let out = xdpctl(&["--json", "trace", "netdev", "--count", "1", "--interval", "0.5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sample: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let devices = sample["devices"].as_array().expect("devices");
    assert!(devices.iter().any(|d| d["ifname"] == "x\u{1b}[2J"), "{sample}");

    // A task named `p ESC [2J` (a link to ping) pings the lab, whose
    // xdp_printk logs each reply under the task's name.
    let tmp = common::TempDir::new();
    let plant = tmp.0.join("plant");
    std::fs::create_dir(&plant).unwrap();
    common::run("chown", &["nobody:nogroup", plant.to_str().unwrap()]);
    let (_pinger, _pinger_group) = spawn_as_nobody(
        false,
        r#"cd "$1" && t=$(printf 'p\033[2J') && ln -s /bin/ping "$t" && exec "./$t" -6 -n -i 0.2 "$2""#,
        &[plant.to_str().unwrap(), &lab.inner_ip],
    );
    let reader = common::Streaming::spawn(&["trace", "printk"]);
    let lines = std::cell::RefCell::new(Vec::new());
    reader.wait_for("the hostile task's line", |l| {
        lines.borrow_mut().push(l.to_string());
        l.contains(r"p\x1b[2J-") && l.contains(&format!("bpf_trace_printk: {} src: ", lab.outer))
    });
    let (status, err) = reader.interrupt();
    assert!(status.success(), "{err}");
    assert_no_control("trace printk", lines.borrow().join("\n").as_bytes());

    drop((hostile, _group, _pinger, _pinger_group));
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    before.assert_unchanged("tracing hostile names");
}

#[test]
#[ignore = "needs root"]
fn an_unknown_interface_is_named_in_one_line() {
    let _s = serial();
    let dev = unique("xnone");
    let out = xdpctl(&["load", "--dev", &dev]);
    let err = one_line_naming(&out, 1, &dev);
    assert!(err.contains("ip link"), "hint: {err}");
    for cmd in ["unload", "stats", "status"] {
        let out = xdpctl(&[cmd, "--dev", &dev]);
        one_line_naming(&out, 1, &dev);
    }
}
