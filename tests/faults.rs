//! Issue 7: every bad input and fault ends in one clear line on stderr that
//! names the input or the cause with a hint, a non-zero exit, and a system
//! exactly as before: the same BPF programs, maps and links, the same XDP
//! attachments and the same pins. Each case builds its own lab. The cases run
//! one at a time (the system-wide counts must not see another case's work).
//! Needs root.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{stderr, unique, xdpctl, xdpctl_ok, Lab};
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use xdpctl::skel::xdp_prog::XdpProgKernSkelBuilder;

/// Everything a failed command must leave as it found it.
#[derive(Debug, PartialEq, Eq, Clone)]
struct System {
    progs: BTreeSet<u32>,
    maps: BTreeSet<u32>,
    links: BTreeSet<u32>,
    /// (interface, program id, mode) of this namespace.
    attached: BTreeSet<(String, u32, String)>,
    /// Every path under /sys/fs/bpf but xdpctl's locks, and xdpctl's
    /// attachment records.
    pins: BTreeSet<PathBuf>,
}

fn ids(next: unsafe extern "C" fn(u32, *mut u32) -> i32) -> BTreeSet<u32> {
    let (mut id, mut out) = (0u32, BTreeSet::new());
    loop {
        let mut n = 0u32;
        // SAFETY: `n` is a live u32 the call writes.
        if unsafe { next(id, &mut n) } != 0 {
            return out;
        }
        out.insert(n);
        id = n;
    }
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, out);
        }
        out.insert(path);
    }
}

impl System {
    fn now() -> System {
        let mut attached = BTreeSet::new();
        for dev in xdpctl::iface::all().expect("listing interfaces") {
            for a in xdpctl::xdp::query(dev.index).unwrap_or_default() {
                attached.insert((dev.name.clone(), a.prog_id, a.mode.to_string()));
            }
        }
        let mut pins = BTreeSet::new();
        walk(Path::new("/sys/fs/bpf"), &mut pins);
        walk(Path::new("/run/xdpctl"), &mut pins);
        // A lock directory stays when the process is killed before it lets
        // go; the next lock taken removes it (see `no_lock_left`).
        pins.retain(|p| !p.starts_with(xdpctl::lock::root()));
        System {
            progs: ids(libbpf_sys::bpf_prog_get_next_id),
            maps: ids(libbpf_sys::bpf_map_get_next_id),
            links: ids(libbpf_sys::bpf_link_get_next_id),
            attached,
            pins,
        }
    }

    /// The state once it stops changing: objects a test itself just closed
    /// are freed after a grace period, not at once.
    fn settled() -> System {
        let mut last = System::now();
        for _ in 0..100 {
            sleep(Duration::from_millis(50));
            let now = System::now();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    /// The kernel frees a closed program or map after an RCU grace period:
    /// give it a moment before calling a difference a leak.
    fn assert_unchanged(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = System::now();
            if now == *self {
                return;
            }
            if Instant::now() > deadline {
                panic!("{what} changed the system:\nbefore {self:?}\nafter  {now:?}");
            }
            sleep(Duration::from_millis(50));
        }
    }
}

/// No lock directory is left: each goes with its lock, and those of killed
/// processes with the next lock taken (the unload that ends each case).
fn no_lock_left() {
    let left: Vec<_> = std::fs::read_dir(xdpctl::lock::root())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "lock directories left: {left:?}");
}

/// One case at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The failure is one line that names each of `names`.
fn one_line(out: &Output, names: &[&str]) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "must fail; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("xdpctl: error: ") || err.starts_with("error: "), "{err}");
    for name in names {
        assert!(err.contains(name), "names {name:?}: {err}");
    }
    err
}

/// `xdpctl args` fails with one line naming `names`, and changes nothing.
fn refused(args: &[&str], names: &[&str]) -> String {
    let before = System::settled();
    let out = xdpctl(args);
    let err = one_line(&out, names);
    before.assert_unchanged(&format!("xdpctl {}", args.join(" ")));
    err
}

#[test]
fn c01_malformed_and_unknown_interface_names() {
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
#[test]
fn c02_an_interface_name_bpffs_cannot_hold() {
    let _s = serial();
    let name = format!("xv.{}", std::process::id() % 100_000);
    let peer = format!("xw{}", std::process::id() % 100_000);
    common::run("ip", &["link", "add", &name, "type", "veth", "peer", "name", &peer]);
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

#[test]
fn c03_pin_dirs_outside_bpffs_are_refused() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let escape = "/sys/fs/bpf/../../tmp/xdpctl-escape";
    refused(&["load", "--dev", &lab.outer, "--pin-dir", escape], &[escape, "'..'"]);
    // A symlink inside bpffs that leads out of it.
    let link = Path::new("/sys/fs/bpf").join(unique("xlink"));
    std::os::unix::fs::symlink(&tmp.0, &link).unwrap();
    let _rm = RemoveFile(link.clone());
    let through = link.join("pins");
    let through = through.to_str().unwrap();
    refused(&["load", "--dev", &lab.outer, "--pin-dir", through], &[through, "/sys/fs/bpf"]);
    let outside = tmp.0.join("pins");
    let outside = outside.to_str().unwrap();
    refused(&["load", "--dev", &lab.outer, "--pin-dir", outside], &[outside, "/sys/fs/bpf"]);
    assert_eq!(std::fs::read_dir(&tmp.0).unwrap().count(), 0, "nothing made outside");
}

/// A checked pin directory's parent swapped for a symlink out of bpffs while
/// load makes the directory (held up there by strace): nothing is made out
/// there, and the load fails with nothing attached.
#[test]
fn c03_a_pin_dir_swapped_while_it_is_made() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let base = Path::new("/sys/fs/bpf").join(unique("xrace"));
    let moved = base.with_file_name(unique("xmoved"));
    std::fs::create_dir(&base).unwrap();
    let (_rm_base, _rm_moved) = (RemoveFile(base.clone()), common::RemoveDir(&moved));
    let pin_dir = base.join("b").join("c");
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mkdirat"])
        .args(["-e", "inject=mkdirat:delay_enter=1500000:when=1", common::XDPCTL, "load"])
        .args(["--dev", &lab.outer, "--pin-dir", pin_dir.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(700));
    std::fs::rename(&base, &moved).unwrap();
    std::os::unix::fs::symlink(&tmp.0, &base).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_dir(&tmp.0).unwrap().count(), 0, "nothing made outside bpffs");
    assert!(lab.attached().is_empty());
}

/// A pin directory swapped for a symlink out of bpffs after the load:
/// unload detaches but deletes nothing there.
#[test]
fn c03_unload_deletes_nothing_outside_bpffs() {
    let _s = serial();
    let lab = Lab::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xswap"));
    let _rm = common::RemoveDir(&dir);
    xdpctl_ok(&["load", "--dev", &lab.outer, "--pin-dir", dir.to_str().unwrap()]);
    let tmp = common::TempDir::new();
    std::fs::write(tmp.0.join("xdp_stats_map"), "not a pin").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&tmp.0, &dir).unwrap();
    let out = xdpctl(&["unload", "--dev", &lab.outer]);
    let err = one_line(&out, &[dir.to_str().unwrap(), "not on a BPF filesystem"]);
    assert!(tmp.0.join("xdp_stats_map").exists(), "left alone: {err}");
    std::fs::remove_file(&dir).unwrap();
}

/// tracefs unmounted (in a mount namespace of the test's own, so the host
/// keeps its mount): `trace` mounts it and runs.
#[test]
fn c04_trace_mounts_tracefs_when_it_is_missing() {
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

const XDP_PASS_SRC: &str = "#include <linux/bpf.h>\n\
    __attribute__((section(\"xdp\"), used)) int foreign(struct xdp_md *ctx) { return 2; }\n\
    char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

#[test]
fn c05_bad_objects_and_program_names() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev, "--progname", "xdp_bogus"], &["xdp_bogus"]);
    assert!(err.contains("xdp_pass") && err.contains("xdp_router"), "lists the names: {err}");

    let good = common::build_bpf(&tmp.0, "good", XDP_PASS_SRC);
    let good_s = good.to_str().unwrap();
    let err =
        refused(&["load", "--dev", dev, "--obj", good_s, "--progname", "nothere"], &["nothere"]);
    assert!(err.contains("foreign"), "lists what it has: {err}");

    let sock = common::build_bpf(
        &tmp.0,
        "sock",
        "#include <linux/bpf.h>\n\
         __attribute__((section(\"socket\"), used)) int filter(void *skb) { return 0; }\n\
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    );
    let sock = sock.to_str().unwrap();
    refused(
        &["load", "--dev", dev, "--obj", sock, "--progname", "filter"],
        &["filter", "not an XDP program"],
    );

    let missing = tmp.0.join("missing.o");
    let missing = missing.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", missing], &[missing]);
    let empty = tmp.0.join("empty.o");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", empty], &[empty, "not an ELF"]);
    let text = tmp.0.join("text.o");
    std::fs::write(&text, "not an object\n").unwrap();
    let text = text.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", text], &[text, "not an ELF"]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.0.join("truncated.o");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let cut = cut.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", cut, "--progname", "foreign"], &[cut]);
}

/// Attaches `obj`'s program `foreign` to `dev` the way another tool would.
fn ip_link_attach(dev: &str, obj: &Path) {
    common::run(
        "ip",
        &["link", "set", "dev", dev, "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"],
    );
}

#[test]
fn c07_c10_another_tools_program_is_left_alone_without_force() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "foreign", XDP_PASS_SRC);
    ip_link_attach(&lab.outer, &obj);
    let id = lab.attached()[0]["prog_id"].as_u64().unwrap().to_string();
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev], &[dev, "foreign", &id, "--force"]);
    assert!(err.contains("not loaded by xdpctl"), "{err}");
    let err = refused(&["unload", "--dev", dev], &[dev, "foreign", &id, "--force"]);
    assert!(err.contains("not loaded by xdpctl"), "{err}");

    // With --force it goes; a second unload finds nothing and says so
    // (exit 0, documented: unload is idempotent).
    xdpctl_ok(&["unload", "--dev", dev, "--force"]);
    assert!(lab.attached().is_empty());
    let before = System::settled();
    let again = xdpctl_ok(&["unload", "--dev", dev]);
    assert!(again.contains("No XDP program attached"), "{again}");
    before.assert_unchanged("a second unload");
}

#[test]
fn c08_a_pinned_bpf_link_holds_the_interface() {
    let _s = serial();
    let lab = Lab::new();
    let pin = Path::new("/sys/fs/bpf").join(unique("xlink"));
    let _rm = RemoveFile(pin.clone());
    {
        let mut storage = std::mem::MaybeUninit::uninit();
        let skel = XdpProgKernSkelBuilder::default().open(&mut storage).unwrap().load().unwrap();
        let ifindex = nix::net::if_::if_nametoindex(lab.outer.as_str()).unwrap();
        let mut link = skel.progs.xdp_pass.attach_xdp(ifindex as i32).unwrap();
        link.pin(&pin).unwrap();
    } // the pin alone holds it now
    let dev = lab.outer.as_str();
    for args in [
        &["load", "--dev", dev][..],
        &["load", "--dev", dev, "--force"],
        &["unload", "--dev", dev],
        &["unload", "--dev", dev, "--force"],
    ] {
        let err = refused(args, &[dev, "BPF link", "Can't replace active BPF XDP link"]);
        assert!(err.contains("bpftool link show"), "hint: {err}");
    }
}

#[test]
fn c09_native_mode_refused_at_this_mtu() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ip", &["link", "set", "dev", &lab.outer, "mtu", "9000"]);
    common::run("ip", &["-n", &lab.ns, "link", "set", "dev", "veth0", "mtu", "9000"]);
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev, "--mode", "native"], &[dev]);
    assert!(err.contains("native unsupported at this MTU") && err.contains("--skb-mode"), "{err}");
    assert_eq!(xdpctl(&["load", "--dev", dev]).status.code(), Some(30), "the attach exit code");

    // Native while generic is attached: the generic one is named.
    xdpctl_ok(&["load", "--dev", dev, "--skb-mode"]);
    let id = lab.attached()[0]["prog_id"].as_u64().unwrap().to_string();
    refused(&["load", "--dev", dev, "--native-mode"], &[dev, "xdp_pass", &id, "skb mode"]);
}

#[test]
fn c11_a_stale_pinned_map_of_another_layout_with_reuse_maps() {
    let _s = serial();
    let lab = Lab::new();
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("xdp_stats_map");
    let stale_s = stale.to_str().unwrap();
    common::run(
        "bpftool",
        &[
            "map", "create", stale_s, "type", "hash", "key", "4", "value", "8", "entries", "7",
            "name", "stale",
        ],
    );
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev, "--reuse-maps"], &[stale_s, "--reuse-maps"]);
    for diff in ["type Hash, not PercpuArray", "value 8 B, not 16 B", "7 entries, not 5"] {
        assert!(err.contains(diff), "lists {diff}: {err}");
    }
    assert!(!err.contains("key"), "only the differences: {err}");
}

#[test]
fn c12_stats_on_a_pin_that_is_not_a_stats_map() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xstats"));
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    let dir_s = dir.to_str().unwrap();
    let stats = ["stats", "--dev", &lab.outer, "--pin-dir", dir_s, "-c", "1", "-i", "0.01"];
    let err = refused(&stats, &[dir_s, "xdpctl load"]);
    assert!(err.contains("no xdp_stats_map"), "{err}");

    std::fs::create_dir(&pin).unwrap();
    refused(&stats, &[pin_s, "is a directory, not a pinned map"]);
    std::fs::remove_dir(&pin).unwrap();

    let obj = common::build_bpf(&tmp.0, "prog", XDP_PASS_SRC);
    common::run("bpftool", &["prog", "load", obj.to_str().unwrap(), pin_s]);
    refused(&stats, &[pin_s, "not a pinned map"]);
    std::fs::remove_file(&pin).unwrap();

    common::run(
        "bpftool",
        &[
            "map", "create", pin_s, "type", "hash", "key", "4", "value", "8", "entries", "7",
            "name", "stale",
        ],
    );
    refused(&stats, &[pin_s, "not a stats map"]);
}

#[test]
fn c13_missing_capabilities_are_named() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for (args, caps) in [
        (&["load", "--dev", dev][..], &["CAP_BPF", "CAP_NET_ADMIN"][..]),
        (&["unload", "--dev", dev], &["CAP_BPF", "CAP_NET_ADMIN"]),
        (&["stats", "--dev", dev], &["CAP_BPF"]),
        (&["sample", "--dev", dev, "-w", "-"], &["CAP_BPF", "CAP_NET_ADMIN"]),
        (&["afxdp", "--dev", dev], &["CAP_NET_RAW"]),
        (&["trafficgen", "--dev", dev], &["CAP_SYS_ADMIN"]),
        (&["trace", "-c", "1"], &["CAP_BPF", "CAP_PERFMON"]),
        (&["redirect", "--dev", dev, "--redirect-dev", dev], &["CAP_NET_ADMIN"]),
    ] {
        let before = System::settled();
        let out = Command::new("setpriv")
            .args(["--inh-caps=-all", "--bounding-set=-all", common::XDPCTL])
            .args(args)
            .output()
            .unwrap();
        let err = one_line(&out, caps);
        assert!(err.contains("run it as root"), "hint: {err}");
        before.assert_unchanged(&args.join(" "));
    }
}

/// Each call (syscall, k-th) of `syscalls` that `xdpctl args` makes, every
/// `stride`-th of each, from a run under strace.
fn steps(args: &[&str], syscalls: &[&str], stride: usize) -> Vec<(String, usize)> {
    let tmp = common::TempDir::new();
    let log = tmp.0.join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", log.to_str().unwrap(), "-e"])
        .arg(format!("trace={}", syscalls.join(",")))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(&log).unwrap();
    syscalls
        .iter()
        .flat_map(|sc| {
            let call = format!(" {sc}(");
            let n = log.lines().filter(|l| l.contains(&call)).count();
            (1..=n).step_by(stride).map(|k| (sc.to_string(), k))
        })
        .collect()
}

/// `xdpctl args`, sent `sig` as it enters its `k`-th call of `syscall`. A run
/// that hangs is killed after 30 s, and fails.
fn signalled_at(args: &[&str], syscall: &str, k: usize, sig: &str) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", "30", "strace", "-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal={sig}:when={k}"))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap()
}

/// The system calls by which load and unload change things: pin directory,
/// pins and BPF objects, the netlink attach, the record.
const CHANGING: [&str; 6] = ["mkdir", "mkdirat", "bpf", "sendto", "rename", "unlink"];

/// SIGINT or SIGTERM as load or unload enters each system call that changes
/// something: afterwards all of it is done (and the exit is 0) or none.
#[test]
fn c14_sigint_and_sigterm_at_each_step_of_load_and_unload() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let clean = System::settled();
    let load = ["-q", "load", "--dev", dev, "--progname", "xdp_drop"];
    let unload = ["-q", "unload", "--dev", dev];
    let complete = |what: &str| {
        let attached = lab.attached();
        assert_eq!(attached.len(), 1, "{what}: {attached:?}");
        assert_eq!(attached[0]["pin_dir"], lab.pin_dir().to_str().unwrap(), "{what}: record");
        let pins: Vec<_> = std::fs::read_dir(lab.pin_dir()).unwrap().flatten().collect();
        assert_eq!(pins.len(), 1, "{what}: only xdp_stats_map: {pins:?}");
    };
    let (mut done, mut none) = (0, 0);
    let load_steps = steps(&load, &CHANGING, 1);
    xdpctl_ok(&unload);
    for (syscall, k) in load_steps {
        let sig = if k % 2 == 0 { "INT" } else { "TERM" };
        let what = format!("load, SIG{sig} at {syscall} #{k}");
        let out = signalled_at(&load, &syscall, k, sig);
        if out.status.success() {
            complete(&what);
            done += 1;
            xdpctl_ok(&unload);
        } else {
            assert!(out.status.code().is_none(), "{what}: killed by it: {out:?}");
            none += 1;
        }
        clean.assert_unchanged(&what);
    }
    xdpctl_ok(&load);
    for (syscall, k) in steps(&unload, &CHANGING, 1) {
        xdpctl_ok(&load);
        let loaded = System::settled();
        let what = format!("unload, SIGINT at {syscall} #{k}");
        let out = signalled_at(&unload, &syscall, k, "INT");
        if out.status.success() {
            clean.assert_unchanged(&what);
        } else {
            assert!(out.status.code().is_none(), "{what}: killed by it: {out:?}");
            complete(&what);
            loaded.assert_unchanged(&what);
            xdpctl_ok(&unload);
        }
    }
    no_lock_left();
    eprintln!("load: {done} finished, {none} stopped before changing anything");
    assert!(done > 0 && none > 0, "the signals came only before or only after: {done} {none}");
    clean.assert_unchanged("interrupted loads and unloads, then unload");
}

/// SIGKILL as load enters each system call that changes something. Whatever
/// it left half done, `status` reports and `unload` clears.
#[test]
fn c14_sigkill_at_each_step_of_load_is_reported_and_cleared() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let clean = System::settled();
    let load = ["-q", "load", "--dev", dev, "--progname", "xdp_drop"];
    let (mut half, mut none) = (0, 0);
    let load_steps = steps(&load, &CHANGING, 1);
    xdpctl_ok(&["-q", "unload", "--dev", dev]);
    for (syscall, k) in load_steps {
        let what = format!("load, SIGKILL at {syscall} #{k}");
        let out = signalled_at(&load, &syscall, k, "KILL");
        assert!(!out.status.success(), "{what}: {out:?}");
        // An empty pin directory (killed between making it and pinning)
        // holds nothing to report; unload removes it.
        let empty = std::fs::read_dir(lab.pin_dir()).map_or(true, |mut d| d.next().is_none());
        let untouched = lab.attached().is_empty() && empty;
        let status = xdpctl(&["status", "--dev", dev]);
        let notes = stderr(&status);
        if untouched {
            assert_eq!(notes, "", "{what}: nothing to report");
            none += 1;
        } else {
            let line = one_line_note(&status, &["leftovers", dev, "killed", "unload --dev"]);
            assert!(status.status.success(), "{what}: {line}");
            half += 1;
        }
        let out = xdpctl(&["unload", "--dev", dev]);
        assert!(out.status.success(), "{what}: unload: {}", stderr(&out));
        clean.assert_unchanged(&what);
    }
    no_lock_left();
    eprintln!("SIGKILL: {half} left things half done, {none} nothing");
    assert!(half > 0 && none > 0, "no kill left anything half done: {half} {none}");
}

/// SIGINT or SIGTERM as sample, afxdp and trace enter each call that sets
/// them up or takes them down: each exits 0 or dies of the signal, and either
/// way leaves nothing behind (its programs hang on bpf_links and perf events,
/// which go with the process). Stride: every n-th call, for trace monitor's
/// hundreds of bpf calls.
#[test]
fn c14_signals_at_each_step_of_sample_afxdp_and_trace() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    // `sample -c 1` ends at the first frame: keep frames coming.
    let _ping = KillOnDrop(
        lab.outer_command("ping")
            .args(["-6", "-q", "-i", "0.02", &lab.inner_ip])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let clean = System::settled();
    let cases: [(&[&str], &[&str], usize); 4] = [
        (&["sample", "--dev", dev, "-w", "/dev/null", "-c", "1"], &["bpf", "rt_sigaction"], 1),
        (
            &["afxdp", "--dev", dev, "--count", "1", "--interval", "0.2"],
            &["bpf", "bind", "setsockopt", "rt_sigaction"],
            1,
        ),
        (&["trace", "-c", "1", "-i", "0.2"], &["bpf", "perf_event_open", "rt_sigaction"], 1),
        (&["trace", "monitor", "-c", "1", "-i", "0.2"], &["bpf", "perf_event_open"], 7),
    ];
    let (mut finished, mut died) = (0, 0);
    for (args, syscalls, stride) in cases {
        let args: Vec<&str> = ["-q"].iter().chain(args).copied().collect();
        for (syscall, k) in steps(&args, syscalls, stride) {
            let sig = if k % 2 == 0 { "INT" } else { "TERM" };
            let what = format!("{}, SIG{sig} at {syscall} #{k}", args[1..].join(" "));
            let out = signalled_at(&args, &syscall, k, sig);
            match out.status.code() {
                Some(0) => finished += 1,
                None => died += 1,
                Some(_) => panic!("{what}: {out:?}"),
            }
            clean.assert_unchanged(&what);
        }
    }
    eprintln!("{finished} stopped cleanly, {died} died of the signal");
    assert!(finished > 0 && died > 0, "{finished} {died}");
}

#[test]
fn c15_racing_loads_one_wins_the_rest_are_told_why() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for force in [false, true] {
        let mut args = vec!["load", "--dev", dev];
        if force {
            args.push("--force");
        }
        let children: Vec<_> = (0..20)
            .map(|_| {
                Command::new(common::XDPCTL)
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> =
            children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        if force {
            assert!(won >= 1, "with --force at least one succeeds");
        } else {
            assert_eq!(won, 1, "exactly one wins");
        }
        let mut busy = 0;
        for out in outs.iter().filter(|o| !o.status.success()) {
            let err = one_line(out, &[dev]);
            assert!(err.contains("busy") || err.contains("already has an XDP program"), "{err}");
            busy += usize::from(err.contains("busy"));
        }
        eprintln!("force={force}: {won} won, {busy} busy");
        // One program, its pins, nothing staged or orphaned.
        assert_eq!(lab.attached().len(), 1);
        let pins: Vec<String> = std::fs::read_dir(lab.pin_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(pins, ["xdp_stats_map"], "no staged or orphan pins");
        no_lock_left();
    }
    xdpctl_ok(&["unload", "--dev", dev]);
    no_lock_left();
}

#[test]
fn c16_an_interface_deleted_while_attached_then_made_again() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.clone();
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &dev]);
    let pins = lab.pin_dir();
    common::run("ip", &["link", "del", "dev", &dev]);
    assert!(pins.join("xdp_stats_map").exists(), "the kernel leaves pins alone");

    // Gone: status says what it left and how to clear it.
    let out = xdpctl(&["status", "--dev", &dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = one_line_note(&out, &[&dev, "interface was deleted", "xdp_stats_map"]);
    assert!(err.contains(&format!("xdpctl unload --dev {dev}")), "hint: {err}");

    // A new interface of the same name: reported again, and unload clears
    // the old pins without touching it.
    let peer = unique("xq");
    common::run("ip", &["link", "add", &dev, "type", "veth", "peer", "name", &peer]);
    let _gone = DelLink(dev.clone());
    let out = xdpctl(&["status", "--dev", &dev]);
    one_line_note(&out, &[&dev, "interface was deleted"]);
    let out = xdpctl_ok(&["unload", "--dev", &dev]);
    assert!(out.contains("leftovers"), "{out}");
    assert!(!pins.exists(), "stale pins removed");
    assert!(nix::net::if_::if_nametoindex(dev.as_str()).is_ok(), "the new interface stays");
    let out = xdpctl(&["status", "--dev", &dev]);
    assert!(stderr(&out).is_empty(), "nothing left to report: {}", stderr(&out));
    before.assert_unchanged("load, delete, re-create and unload");

    // Gone for good: unload by name clears what it left, exit 0.
    xdpctl_ok(&["load", "--dev", &dev, "--mode", "skb"]);
    common::run("ip", &["link", "del", "dev", &dev]);
    let out = xdpctl_ok(&["unload", "--dev", &dev]);
    assert!(out.contains("Removed leftovers") && out.contains("nothing to detach"), "{out}");
    assert!(!pins.exists());
    before.assert_unchanged("load, delete and unload by name");
}

/// `redirect` with malformed MACs or an unknown interface: one line each, and
/// neither the system nor the program's tx_port map changes.
#[test]
fn c17_redirect_refuses_malformed_macs_and_unknown_interfaces() {
    let _s = serial();
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", "xdp_redirect_map"]);
    let tx_port = left.pin_dir().join("tx_port");
    let dump = || common::run("bpftool", &["map", "dump", "pinned", tx_port.to_str().unwrap()]);
    let before = dump();
    for flag in ["--src-mac", "--dest-mac"] {
        for bad in
            ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "0xa:b:c:d:e:f", "aa:bb:cc:dd:ee:ffjunk", ""]
        {
            let args =
                ["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer, flag, bad];
            let err = refused(&args, &[&format!("{flag}: {bad:?}")]);
            assert!(err.contains("six two-digit hex octets"), "hint: {err}");
        }
    }
    let nowhere = unique("xnone");
    refused(
        &["redirect", "--dev", &left.outer, "--redirect-dev", &nowhere],
        &[&format!("--redirect-dev {nowhere}")],
    );
    assert_eq!(before.stdout, dump().stdout, "tx_port is as before");
    // No redirect program loaded on the right lab: nothing to write into.
    refused(
        &["redirect", "--dev", &right.outer, "--redirect-dev", &left.outer],
        &[&right.outer, "xdp_redirect_map"],
    );
    xdpctl_ok(&["-q", "unload", "--dev", &left.outer]);
}

/// A note on stderr, one line, that names each of `names`.
fn one_line_note(out: &Output, names: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for name in names {
        assert!(err.contains(name), "names {name:?}: {err}");
    }
    err
}

#[test]
fn c18_afxdp_queue_out_of_range() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    refused(&["afxdp", "--dev", dev, "--queue", "5"], &["--queue 5", dev, "ethtool -l"]);
    refused(&["afxdp", "--dev", dev, "--queue", "64"], &["64"]);
}

#[test]
fn c19_sample_to_a_full_disk_and_bad_snaplens() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for snaplen in ["65536", "-1", "many"] {
        refused(&["sample", "--dev", dev, "-w", "/dev/null", "--snaplen", snaplen], &[snaplen]);
    }
    // /dev/full: the first write fails; the sampler goes with its error.
    let before = System::settled();
    let mut child = Command::new(common::XDPCTL)
        .args(["-q", "sample", "--dev", dev, "-w", "/dev/full", "-m", "skb"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        lab.ping(1);
    }
    let out = child.wait_with_output().unwrap();
    let err = one_line(&out, &["/dev/full", "No space left on device"]);
    assert!(err.contains("disk full"), "{err}");
    before.assert_unchanged("sample to /dev/full");
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
#[test]
fn c20_trace_without_some_tracepoints() {
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
        .find(|d| d["dev"] == dev)
        .unwrap_or_else(|| panic!("{dev} missing: {sample}"))
        .clone();
    assert!(ours["rx_packets"].as_u64().unwrap() >= 5, "{ours}");
    assert_eq!(ours["tx_packets"], 0, "{ours}");
    before.assert_unchanged("trace netdev without net:net_dev_queue");
}

/// Random arguments through the real parser: errors, never a panic.
#[test]
fn random_arguments_never_panic_the_parser() {
    let words = [
        "load",
        "unload",
        "status",
        "list",
        "stats",
        "redirect",
        "trace",
        "sample",
        "afxdp",
        "trafficgen",
        "printk",
        "netdev",
        "monitor",
        "--dev",
        "-d",
        "--progname",
        "--obj",
        "--mode",
        "native",
        "skb",
        "hw",
        "auto",
        "-N",
        "-S",
        "-A",
        "--force",
        "-F",
        "-M",
        "--pin-dir",
        "--id",
        "-i",
        "--interval",
        "-c",
        "--count",
        "-w",
        "-s",
        "--snaplen",
        "-f",
        "pcapng",
        "-B",
        "--queue",
        "-Q",
        "--zero-copy",
        "--copy",
        "--frames",
        "--batch",
        "-r",
        "--rate",
        "-n",
        "-t",
        "--duration",
        "--size",
        "--udp-dst",
        "--dst-mac",
        "--src-ip",
        "0",
        "-1",
        "65536",
        "1e309",
        "NaN",
        "inf",
        "5000-4000",
        "0-65535",
        "aa:bb",
        "::1",
        "",
        "-",
        "--",
        "lo",
        "é",
        "\u{0}",
        "--json",
        "-q",
        "-v",
        "99999999999999999999",
    ];
    // A fixed-seed xorshift: the same sequence every run, reproducible.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50_000 {
        let n = (next() % 8) as usize;
        let args: Vec<&str> = std::iter::once("xdpctl")
            .chain((0..n).map(|_| words[(next() % words.len() as u64) as usize]))
            .collect();
        let parsed = std::panic::catch_unwind(|| {
            if let Ok(cli) = xdpctl::cli::Cli::try_parse_from(&args) {
                let _ = cli.command.needs();
            }
        });
        assert!(parsed.is_ok(), "the parser panicked on {args:?}");
    }
}

struct DelLink(String);

impl Drop for DelLink {
    fn drop(&mut self) {
        let _ = Command::new(common::XDPCTL)
            .args(["-q", "unload", "--force", "--dev", &self.0])
            .output();
        let _ = Command::new("ip").args(["link", "del", "dev", &self.0]).output();
    }
}

/// A helper process, killed at the end of the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct RemoveFile(PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// Issue 16, item 7: untrusted names

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
fn as_nobody(unshare: bool, script: &str, args: &[&str]) -> (common::Streaming, KillGroup) {
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
#[test]
fn s07_hostile_interface_names_are_escaped() {
    let _s = serial();
    let lab = Lab::new();
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_printk"]);

    // The device `x ESC [2J` and a peer in a second namespace, pinged.
    let (hostile, _group) = as_nobody(
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
    assert!(devices.iter().any(|d| d["dev"] == "x\u{1b}[2J"), "{sample}");

    // A task named `p ESC [2J` (a link to ping) pings the lab, whose
    // xdp_printk logs each reply under the task's name.
    let tmp = common::TempDir::new();
    let plant = tmp.0.join("plant");
    std::fs::create_dir(&plant).unwrap();
    common::run("chown", &["nobody:nogroup", plant.to_str().unwrap()]);
    let (_pinger, _pinger_group) = as_nobody(
        false,
        r#"cd "$1" && t=$(printf 'p\033[2J') && ln -s /bin/ping "$t" && exec "./$t" -6 -n -i 0.2 "$2""#,
        &[plant.to_str().unwrap(), &lab.inner_ip],
    );
    let reader = common::Streaming::spawn(&["trace", "printk"]);
    let lines = std::cell::RefCell::new(Vec::new());
    reader.wait_for("the hostile task's line", |l| {
        lines.borrow_mut().push(l.to_string());
        l.contains(r"p\x1b[2J-") && l.contains("bpf_trace_printk: src: ")
    });
    let (status, err) = reader.interrupt();
    assert!(status.success(), "{err}");
    assert_no_control("trace printk", lines.borrow().join("\n").as_bytes());

    drop((hostile, _group, _pinger, _pinger_group));
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    before.assert_unchanged("tracing hostile names");
}

/// Interface indexes repeat across namespaces: aborts on a lab's veth0 whose
/// index is that of another lab's interface here show under that lab's
/// namespace, never under this namespace's interface.
#[test]
fn s07_trace_keys_exceptions_per_namespace() {
    let _s = serial();
    let host = Lab::new();
    let index = xdpctl::iface::resolve(&host.outer).unwrap().index;
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
    let want = format!("veth0 in netns {} (3) XDP_ABORTED", other.ns);
    let seen = std::cell::RefCell::new(Vec::new());
    trace.wait_for(&want, |l| {
        seen.borrow_mut().push(l.to_string());
        l == want
    });
    let seen = seen.into_inner();
    assert!(!seen.iter().any(|l| l.contains(&host.outer)), "{seen:?}");
    let (status, err) = trace.interrupt();
    assert!(status.success(), "{err}");

    common::run("nsenter", &[&netns, common::XDPCTL, "unload", "--dev", "veth0"]);
    before.assert_unchanged("trace across namespaces");
}
