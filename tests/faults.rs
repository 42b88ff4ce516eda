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
use common::frame::{ping4, ping6};
use common::lab::Veth;
use common::{stderr, unique, xdpctl, xdpctl_ok, Lab};
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use xdpctl::obj::skel::xdp_prog::XdpProgKernSkelBuilder;

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
        for dev in xdpctl::net::iface::all().expect("listing interfaces") {
            for a in xdpctl::xdp::attach::query(dev.index).unwrap_or_default() {
                attached.insert((dev.name.clone(), a.prog_id, a.mode.to_string()));
            }
        }
        let mut pins = BTreeSet::new();
        walk(Path::new("/sys/fs/bpf"), &mut pins);
        walk(Path::new("/run/xdpctl"), &mut pins);
        // A lock directory stays when the process is killed before it lets
        // go; the next lock taken removes it (see `no_lock_left`).
        pins.retain(|p| !p.starts_with(xdpctl::xdp::lock::root()));
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
    let left: Vec<_> = std::fs::read_dir(xdpctl::xdp::lock::root())
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
#[test]
fn c02_an_interface_name_bpffs_cannot_hold() {
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
    // The shipped programs are frags-aware and attach here (tests/jumbo.rs);
    // a plain SEC("xdp") program is what the kernel refuses at this MTU.
    let tmp = common::TempDir::new();
    let plain = common::build_bpf(&tmp.0, "plain", XDP_PASS_SRC);
    let load = ["load", "--dev", dev, "--obj", plain.to_str().unwrap(), "--progname", "foreign"];
    let err = refused(&[&load[..], &["--mode", "native"]].concat(), &[dev]);
    assert!(err.contains("native unsupported at this MTU") && err.contains("--skb-mode"), "{err}");
    assert_eq!(xdpctl(&load).status.code(), Some(30), "the attach exit code");

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
        (&["load", "--dev", dev][..], &["CAP_NET_ADMIN", "CAP_SYS_ADMIN"][..]),
        (&["unload", "--dev", dev], &["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]),
        (&["sample", "--dev", dev, "-w", "-"], &["CAP_BPF", "CAP_NET_ADMIN"]),
        (&["afxdp", "--dev", dev], &["CAP_NET_RAW", "CAP_IPC_LOCK"]),
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
    let tmp = common::TempDir::new();
    let capture = tmp.0.join("c14.pcap");
    let capture = capture.to_str().unwrap();
    let clean = System::settled();
    let cases: [(&[&str], &[&str], usize); 4] = [
        (&["sample", "--dev", dev, "-w", capture, "-c", "1"], &["bpf", "rt_sigaction"], 1),
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
    let left: Vec<String> = listing(&tmp.0).into_iter().filter(|n| n != "c14.pcap").collect();
    assert!(left.is_empty(), "sample left temporary files: {left:?}");
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
        refused(&["sample", "--dev", dev, "-w", "-", "--snaplen", snaplen], &[snaplen]);
    }
    // A full disk: the first write fails; the sampler goes with its error.
    let disk = Tmpfs::new("64k");
    let filler = std::fs::write(disk.0 .0.join("filler"), vec![0u8; 1 << 17]).unwrap_err();
    assert_eq!(filler.raw_os_error(), Some(nix::errno::Errno::ENOSPC as i32), "full");
    let file = disk.0 .0.join("full.pcap");
    let file = file.to_str().unwrap();
    let before = System::settled();
    let mut child = Command::new(common::XDPCTL)
        .args(["-q", "sample", "--dev", dev, "-w", file, "-m", "skb"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        lab.ping(1);
    }
    let out = child.wait_with_output().unwrap();
    let err = one_line(&out, &[file, "No space left on device"]);
    assert!(err.contains("disk full"), "{err}");
    before.assert_unchanged("sample to a full disk");
}

/// A tmpfs of `size` mounted on a scratch directory, unmounted when dropped.
struct Tmpfs(common::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = common::TempDir::new();
        let at = dir.0.to_str().unwrap();
        common::run("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "xdpctl-test", at]);
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0 .0).output();
    }
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
        .find(|d| d["ifname"] == dev)
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
        "features",
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

// Issue 16, item 10: echo answers only unicast

/// An AF_PACKET socket on `veth0` inside a lab's namespace, as tcpdump opens
/// one: it sends whole frames and sees every frame veth0 sends or receives
/// (but its own).
struct Tap(std::os::fd::OwnedFd);

impl Tap {
    fn open(ns: &str) -> Tap {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
        use std::os::fd::AsRawFd;
        let netns = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // setns moves only the calling thread; the socket stays in the
        // namespace it was made in.
        let fd = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let fd = socket(
                    AddressFamily::Packet,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    SockProtocol::EthAll,
                )
                .unwrap();
                let ifindex = nix::net::if_::if_nametoindex("veth0").unwrap();
                // SAFETY: an all-zero sockaddr_ll is valid; the fields set are plain integers.
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
                addr.sll_ifindex = ifindex as i32;
                // SAFETY: `addr` is a live sockaddr_ll and the length is its size.
                let rc = unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                assert_eq!(rc, 0, "binding to veth0: {}", std::io::Error::last_os_error());
                fd
            })
            .join()
            .unwrap()
        });
        let timeout = nix::sys::time::TimeVal::new(0, 300_000);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .unwrap();
        let tap = Tap(fd);
        tap.frames(); // whatever came before the case
        tap
    }

    fn send(&self, frame: &[u8]) {
        use nix::sys::socket::{send, MsgFlags};
        use std::os::fd::AsRawFd;
        let sent = send(self.0.as_raw_fd(), frame, MsgFlags::empty()).unwrap();
        assert_eq!(sent, frame.len());
    }

    /// The frames seen since the last call, until none came for 300 ms.
    fn frames(&self) -> Vec<Vec<u8>> {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => frames.push(buf[..n].to_vec()),
                Err(nix::errno::Errno::EAGAIN) => return frames,
                Err(e) => panic!("reading the tap: {e}"),
            }
        }
    }
}

fn mac_of(text: &str) -> [u8; 6] {
    text.parse::<xdpctl::net::mac::Mac>().unwrap().0
}

/// The I/G bit: multicast and broadcast MACs have it.
fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 0x01 != 0
}

/// An ICMPv6 echo request from `src` to `dst` (seq `seq`, 16 data bytes),
/// checksum computed by the frame builder; `macs` is (destination, source).
fn echo6(macs: ([u8; 6], [u8; 6]), src: &str, dst: &str, seq: u16) -> Vec<u8> {
    let addr = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    ping6(seq)
        .src6(addr(src))
        .dst6(addr(dst))
        .payload(vec![0x5a; 16])
        .dst_mac(macs.0)
        .src_mac(macs.1)
        .bytes()
}

/// An ICMP echo request from `src` to `dst`, checksums computed by the
/// frame builder; `macs` is (destination, source).
fn echo4(macs: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    ping4(seq).src4(src).dst4(dst).payload(vec![0x5a; 16]).dst_mac(macs.0).src_mac(macs.1).bytes()
}

/// Echo requests from inside the lab to a group MAC: IPv6 to the outer
/// end's address and to ff02::1, and IPv4 as `ping -b` sends them, to a
/// subnet's broadcast address, or to 224.0.0.1. Each with a destination MAC
/// whose I/G bit is set.
fn group_requests(lab: &Lab) -> Vec<(String, Vec<u8>)> {
    let inner = mac_of(&lab.inner_mac);
    let (bcast, all_nodes, all_hosts) =
        ([0xff; 6], [0x33, 0x33, 0, 0, 0, 1], [0x01, 0x00, 0x5e, 0, 0, 1]);
    let (src4, subnet_bcast) = ([192, 0, 2, 2], [192, 0, 2, 255]);
    let mut out = Vec::new();
    for (i, (what, mac)) in
        [("broadcast", bcast), ("33:33:00:00:00:01", all_nodes), ("01:00:5e:00:00:01", all_hosts)]
            .into_iter()
            .enumerate()
    {
        let seq = 10 * i as u16;
        let v6 = |dst: &str, n| echo6((mac, inner), &lab.inner_ip, dst, seq + n);
        out.push((format!("IPv6 to {} at {what}", lab.outer_ip), v6(&lab.outer_ip, 1)));
        out.push((format!("IPv6 to ff02::1 at {what}"), v6("ff02::1", 2)));
        let v4 = |dst, n| echo4((mac, inner), src4, dst, seq + n);
        out.push((format!("IPv4 to 192.0.2.255 at {what}"), v4(subnet_bcast, 3)));
        out.push((format!("IPv4 to 224.0.0.1 at {what}"), v4([224, 0, 0, 1], 4)));
    }
    out
}

/// No frame on the wire carries a group source MAC.
fn assert_no_group_source(frames: &[Vec<u8>], what: &str) {
    for f in frames {
        let src = xdpctl::net::mac::Mac(f[6..12].try_into().unwrap());
        assert!(!is_group(src.0), "{what}: a frame from {src}: {f:02x?}");
    }
}

/// Frames from `from` to `to` carrying an ICMPv6 echo reply.
fn echo6_replies(frames: &[Vec<u8>], from: [u8; 6], to: [u8; 6]) -> usize {
    let reply =
        |f: &Vec<u8>| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 129;
    frames.iter().filter(|f| f[..6] == to && f[6..12] == from && reply(f)).count()
}

#[test]
fn s10_xdp_icmp_echo_answers_only_unicast() {
    let _s = serial();
    let pins = Path::new("/sys/fs/bpf").join(unique("xs10"));
    let _rm = common::RemoveDir(&pins); // after the lab's own cleanup
    let lab = Lab::new();
    // XDP_TX out of a veth reaches its peer only while the peer runs NAPI,
    // which an XDP program there gives it.
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let pin_dir = pins.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "-q", "load", "--dev", "veth0", "--pin-dir", pin_dir],
    );
    let (outer, inner) = (mac_of(&lab.outer_mac), mac_of(&lab.inner_mac));
    let tap = Tap::open(&lab.ns);
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_icmp_echo"]);

    let requests = group_requests(&lab);
    for (_, frame) in &requests {
        tap.send(frame);
    }
    // And ping's own way to the all-nodes group.
    let ping = lab.exec(&["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", "ff02::1%veth0"]);
    let frames = tap.frames();
    let what: Vec<&str> = requests.iter().map(|(w, _)| w.as_str()).collect();
    assert_no_group_source(&frames, &format!("{what:#?}"));
    let stats = lab.stats();
    assert_eq!(stats.packets("XDP_TX"), 0, "requests to a group MAC answered in XDP");
    assert!(stats.packets("XDP_PASS") >= requests.len() as u64 + 2, "{:?}", stats.0);
    // The kernel decided; its replies (ping's among them) come from the
    // outer end's own MAC.
    assert!(common::received(&String::from_utf8_lossy(&ping.stdout)) > 0, "{ping:?}");
    assert!(echo6_replies(&frames, outer, inner) > 0, "no reply from the kernel");

    // A unicast request is still answered in XDP, and the tap sees it.
    tap.send(&echo6((outer, inner), &lab.inner_ip, &lab.outer_ip, 99));
    let frames = tap.frames();
    assert_eq!(echo6_replies(&frames, outer, inner), 1, "{frames:02x?}");
    assert_eq!(lab.stats().packets("XDP_TX"), 1);

    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    before.assert_unchanged("xdp_icmp_echo under group-addressed pings");
}

#[test]
fn s10_afxdp_echo_answers_only_unicast() {
    let _s = serial();
    let lab = Lab::new();
    let (outer, inner) = (mac_of(&lab.outer_mac), mac_of(&lab.inner_mac));
    let tap = Tap::open(&lab.ns);
    let before = System::settled();
    let x = lab.spawn_xdpctl(&["--json", "afxdp", "--dev", &lab.outer, "-i", "0.2", "--poll"]);
    x.wait_for("a first report", |l| l.contains("\"rx\""));

    let requests = group_requests(&lab);
    for (_, frame) in &requests {
        tap.send(frame);
    }
    let frames = tap.frames();
    let what: Vec<&str> = requests.iter().map(|(w, _)| w.as_str()).collect();
    assert_no_group_source(&frames, &format!("{what:#?}"));
    assert_eq!(echo6_replies(&frames, outer, inner), 0, "{frames:02x?}");

    // A unicast request is still answered from user space.
    tap.send(&echo6((outer, inner), &lab.inner_ip, &lab.outer_ip, 99));
    let frames = tap.frames();
    assert_eq!(echo6_replies(&frames, outer, inner), 1, "{frames:02x?}");

    let f = x.signal("INT");
    assert!(f.status.success(), "{}", f.stderr);
    let line = f.rest.iter().rev().find(|l| l.contains("\"final\":true")).expect("final report");
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    // Received and recycled, as every frame it does not answer.
    assert_eq!(report["tx"]["packets"], 1, "{report}");
    assert!(report["rx"]["packets"].as_u64().unwrap() > requests.len() as u64, "{report}");
    before.assert_unchanged("xdpctl afxdp under group-addressed pings");
}

// Issue 16, items 2-6 and 8: xdpctl's state, namespaces, pin directories,
// renamed interfaces, capabilities, and map sizes it did not choose

/// `sh -c script` run as nobody, with `args` as $1...
fn as_nobody(script: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script, "sh"])
        .args(args)
        .output()
        .unwrap()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode()
        & 0o7777
}

fn ifindex(dev: &str) -> u32 {
    nix::net::if_::if_nametoindex(dev).unwrap()
}

/// Sets a path's mode when dropped.
struct RestoreMode(PathBuf, u32);

impl Drop for RestoreMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

/// Where an older xdpctl, or one run under `umask 000`, left /run/xdpctl
/// writable by all, another user plants a record naming another tool's
/// program and pin, and a `.tmp` symlink where root writes a record first.
/// Root's `unload` ignores the record (a warning names it) and refuses the
/// program; root's `load` under `umask 000` writes nothing through the
/// symlink, and what it makes is root's alone.
#[test]
fn s02_state_other_users_planted_is_not_trusted() {
    let _s = serial();
    let (mine, theirs) = (Lab::new(), Lab::new());
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "foreign", XDP_PASS_SRC);
    ip_link_attach(&theirs.outer, &obj);
    let their_id = theirs.attached()[0]["prog_id"].as_u64().unwrap();
    let victim_dir = Path::new("/sys/fs/bpf").join(unique("xvictim"));
    let _rm = common::RemoveDir(&victim_dir);
    std::fs::create_dir(&victim_dir).unwrap();
    let victim = victim_dir.join("their_map");
    common::run(
        "bpftool",
        &[
            "map",
            "create",
            victim.to_str().unwrap(),
            "type",
            "array",
            "key",
            "4",
            "value",
            "8",
            "entries",
            "1",
            "name",
            "their_map",
        ],
    );
    let precious = tmp.0.join("precious");
    std::fs::write(&precious, "root's own\n").unwrap();

    let run_dir = Path::new("/run/xdpctl");
    std::fs::create_dir_all(run_dir).unwrap();
    let _restore = RestoreMode(run_dir.to_path_buf(), 0o700);
    let before = System::settled();
    common::run("chmod", &["0777", "/run/xdpctl"]);
    let (cookie, ino) =
        (xdpctl::net::netns::cookie().unwrap(), xdpctl::net::netns::inode().unwrap());
    let (their_if, my_if) = (ifindex(&theirs.outer), ifindex(&mine.outer));
    let forged = serde_json::json!({
        "ifname": theirs.outer, "prog_id": their_id, "prog_name": "xdp_pass",
        "pin_dir": victim_dir, "pins": ["their_map"], "netns_inode": ino,
    })
    .to_string();
    // Under the names this xdpctl and the one before it read and write.
    let planted = [
        format!("n{cookie}-i{their_if}.json"),
        format!("{ino}-{their_if}.json"),
        format!("n{cookie}-i{my_if}.json.tmp"),
        format!("{ino}-{my_if}.tmp"),
    ];
    let _gone: Vec<RemoveFile> = planted.iter().map(|p| RemoveFile(run_dir.join(p))).collect();
    let precious_s = precious.to_str().unwrap();
    for name in &planted[..2] {
        let out =
            as_nobody("printf %s \"$1\" > \"$2\"", &[&forged, &format!("/run/xdpctl/{name}")]);
        assert!(out.status.success(), "planting: {}", stderr(&out));
    }
    for name in &planted[2..] {
        let out = as_nobody("ln -s \"$1\" \"$2\"", &[precious_s, &format!("/run/xdpctl/{name}")]);
        assert!(out.status.success(), "planting: {}", stderr(&out));
    }

    let out = xdpctl(&["unload", "--dev", &theirs.outer]);
    let err = stderr(&out);
    assert!(!out.status.success(), "another tool's program detached: {err}");
    assert!(err.contains("not loaded by xdpctl"), "{err}");
    assert!(err.contains("ignoring") && err.contains(&planted[0]), "a warning names it: {err}");
    assert_eq!(theirs.attached()[0]["prog_id"].as_u64(), Some(their_id));
    assert!(victim.exists(), "another tool's pin removed");

    let out = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" -q load --dev \"$1\"", common::XDPCTL, &mine.outer])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's own\n");
    assert_eq!(mode_of(run_dir), 0o700, "/run/xdpctl");
    let record = run_dir.join(format!("n{cookie}-i{my_if}.json"));
    assert_eq!(mode_of(&record), 0o600, "{}", record.display());
    assert!(!run_dir.join(&planted[2]).exists(), "the planted .tmp went, not through");
    assert_eq!(mode_of(&xdpctl::xdp::lock::root()), 0o700, "the lock root");
    assert_eq!(mode_of(&mine.pin_dir()), 0o700, "the pin directory");
    assert_eq!(mode_of(&mine.pin_dir().join("xdp_stats_map")), 0o600);

    xdpctl_ok(&["-q", "unload", "--dev", &mine.outer]);
    drop(_gone);
    before.assert_unchanged("planted records, then load and unload");
}

/// A reader program of `xdp_stats_map`'s layout, as another tool that
/// shares xdpctl's pinned map would load it.
const STATS_READER_SRC: &str = "#include <linux/bpf.h>\n\
    #include <bpf/bpf_helpers.h>\n\
    #include \"common_kern_user.h\"\n\
    struct {\n\
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);\n\
        __type(key, __u32);\n\
        __type(value, struct datarec);\n\
        __uint(max_entries, XDP_ACTION_MAX);\n\
    } xdp_stats_map SEC(\".maps\");\n\
    SEC(\"xdp\") int reader(struct xdp_md *ctx)\n\
    {\n\
        __u32 key = XDP_PASS;\n\
        struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &key);\n\
        if (rec)\n\
            rec->rx_packets++;\n\
        return XDP_PASS;\n\
    }\n\
    char LICENSE[] SEC(\"license\") = \"GPL\";\n";

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

fn xdpctl_in(ns: &str, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap()
}

fn map_id_of(pin: &Path) -> u32 {
    use libbpf_rs::MapCore;
    libbpf_rs::MapHandle::from_pinned_path(pin).unwrap().info().unwrap().info.id
}

/// A namespace deleted with xdpctl's program attached; its pinned map is
/// shared by another tool's live program. A new namespace gets the dead
/// one's inode number (the kernel hands it on at once) and an interface of
/// the same name and ifindex. It inherits nothing: the old record goes with
/// the next command that looks, and no unload anywhere removes the pin the
/// live program uses.
#[test]
fn s03_a_dead_namespace_leaves_nothing_to_inherit() {
    let _s = serial();
    let tmp = common::TempDir::new();
    let (dev, peer) = (unique("xd"), unique("xe"));
    let pins = Path::new("/sys/fs/bpf").join(&dev);
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm_pins, _rm_other) = (common::RemoveDir(&pins), common::RemoveDir(&other));
    let before = System::settled();

    let ns_a = unique("xa");
    let guard_a = netns_with_veth(&ns_a, &dev, &peer);
    let out = xdpctl_in(&ns_a, &["--json", "load", "--dev", &dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let prog_a = loaded["prog_id"].as_u64().unwrap();
    let cookie_a = {
        let file = std::fs::File::open(format!("/run/netns/{ns_a}")).unwrap();
        xdpctl::net::netns::cookie_of(&file).unwrap()
    };
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

/// A pin in the interface's directory whose map another tool's live program
/// uses: load refuses to replace it (naming the program), `--reuse-maps`
/// shares the map, and unload leaves the pin to its other user.
#[test]
fn s03_a_pin_another_program_uses_is_never_replaced() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dir = lab.pin_dir();
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm, _rm_other) = (common::RemoveDir(&dir), common::RemoveDir(&other));
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&other).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    common::run(
        "bpftool",
        &[
            "map",
            "create",
            pin_s,
            "type",
            "percpu_array",
            "key",
            "4",
            "value",
            "16",
            "entries",
            "5",
            "name",
            "xdp_stats_map",
        ],
    );
    let obj = common::build_bpf(&tmp.0, "reader", STATS_READER_SRC);
    let reader = other.join("reader");
    common::run(
        "bpftool",
        &[
            "prog",
            "load",
            obj.to_str().unwrap(),
            reader.to_str().unwrap(),
            "map",
            "name",
            "xdp_stats_map",
            "pinned",
            pin_s,
        ],
    );
    let theirs = map_id_of(&pin);
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev], &[pin_s, "program id", "--reuse-maps"]);
    assert!(err.contains("did not load here"), "{err}");
    assert_eq!(map_id_of(&pin), theirs);

    let before = System::settled();
    xdpctl_ok(&["-q", "load", "--dev", dev, "--reuse-maps"]);
    assert_eq!(map_id_of(&pin), theirs, "shared, not replaced");
    let out = xdpctl(&["unload", "--dev", dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stays"), "a warning says why: {}", stderr(&out));
    assert_eq!(map_id_of(&pin), theirs, "left to its other user");
    before.assert_unchanged("load --reuse-maps and unload beside another tool");
    std::fs::remove_file(&reader).unwrap();
}

/// Two interfaces loaded into one --pin-dir at the same moment: one wins;
/// the other is told the directory is busy or holds the winner's pins. The
/// pinned map is the winner's, whose record says so.
#[test]
fn s04_two_interfaces_racing_into_one_pin_dir() {
    use libbpf_rs::Program;
    let _s = serial();
    let (a, b) = (Lab::new(), Lab::new());
    let dir = Path::new("/sys/fs/bpf").join(unique("xshared"));
    let _rm = common::RemoveDir(&dir);
    let dir_s = dir.to_str().unwrap();
    let before = System::settled();
    for round in 0..10 {
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|lab| {
                Command::new(common::XDPCTL)
                    .args(["-q", "load", "--dev", &lab.outer, "--pin-dir", dir_s])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> =
            children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let won: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one wins: {outs:?}");
        let (winner, loser) = if won[0] == 0 { (&a, 1) } else { (&b, 0) };
        let err = one_line(&outs[loser], &[dir_s]);
        assert!(err.contains("busy") || err.contains("holds the pins"), "{err}");
        let status = winner.attached();
        assert_eq!(status[0]["pin_dir"], dir_s, "round {round}: {status:?}");
        let prog = status[0]["prog_id"].as_u64().unwrap() as u32;
        let fd = Program::fd_from_id(prog).unwrap();
        let maps = xdpctl::obj::object::maps_used_by(std::os::fd::AsFd::as_fd(&fd)).unwrap();
        assert!(maps.contains(&map_id_of(&dir.join("xdp_stats_map"))), "round {round}");
        xdpctl_ok(&["-q", "unload", "--dev", &winner.outer]);
    }
    no_lock_left();
    before.assert_unchanged("ten races into one pin directory");
}

/// An interface renamed under its running program: status notes the
/// rename, `unload` by the old name points at the new one and removes
/// nothing, and `unload` by the new name needs no --force.
#[test]
fn s05_a_renamed_interface_keeps_its_program() {
    let _s = serial();
    let lab = Lab::new();
    let (old, new) = (lab.outer.clone(), unique("xr"));
    let _back = DelLink(new.clone());
    let before = System::settled();
    xdpctl_ok(&["-q", "load", "--dev", &old]);
    let pin = lab.pin_dir().join("xdp_stats_map");
    for args in [["link", "set", &old, "down"], ["link", "set", &old, "name"]] {
        let mut args = args.to_vec();
        if args[3] == "name" {
            args.push(&new);
        }
        common::run("ip", &args);
    }
    common::run("ip", &["link", "set", &new, "up"]);

    let out = xdpctl(&["--json", "status", "--dev", &new]);
    let note = one_line_note(&out, &[&old, "renamed", &new, "xdp_pass"]);
    assert!(!note.contains("leftovers"), "{note}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["pin_dir"], lab.pin_dir().to_str().unwrap(), "{rows}");

    let held = System::settled();
    refused(&["unload", "--dev", &old], &[&old, &format!("xdpctl unload --dev {new}")]);
    held.assert_unchanged("unload by the old name");
    assert!(pin.exists());

    let out = xdpctl_ok(&["unload", "--dev", &new]);
    assert!(out.contains("Detached xdp_pass"), "{out}");
    assert!(!pin.exists(), "its pins went with it");
    common::run("ip", &["link", "set", &new, "down"]);
    common::run("ip", &["link", "set", &new, "name", &old]);
    common::run("ip", &["link", "set", &old, "up"]);
    before.assert_unchanged("load, rename, unload");
}

/// setpriv's name of a capability.
fn setpriv_name(cap: xdpctl::caps::Cap) -> String {
    cap.to_string().trim_start_matches("CAP_").to_lowercase()
}

/// `xdpctl args` with exactly the capabilities `caps` (and root's uid); a
/// command that runs until stopped gets SIGINT after `run_for`.
fn with_caps(caps: &[String], args: &[&str], run_for: Option<&str>) -> Output {
    let bounding: String = caps.iter().map(|c| format!(",+{c}")).collect();
    let mut cmd = Command::new("timeout");
    cmd.args(["--preserve-status", "-s", "INT", run_for.unwrap_or("20")]);
    cmd.args(["setpriv", "--inh-caps=-all", &format!("--bounding-set=-all{bounding}")]);
    cmd.arg(common::XDPCTL).args(args).output().unwrap()
}

/// Each command works with exactly the capabilities it names, and without
/// any one of them is refused up front with one line naming it: the set is
/// what the kernel asks, not a guess. `status` works for a normal user.
#[test]
fn s06_each_command_works_with_exactly_the_capabilities_it_names() {
    let _s = serial();
    let (lab, other) = (Lab::new(), Lab::new());
    let dev = lab.outer.as_str();
    // trafficgen sends to the lab's inner end, which must take the frames.
    lab.exec(&["ethtool", "-K", "veth0", "gro", "on"]);
    let load = |args: &[&str]| xdpctl_ok(&[&["-q", "load", "--dev", dev][..], args].concat());
    let unload = || xdpctl_ok(&["-q", "unload", "--dev", dev, "--force"]);
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let nothing: Setup = Box::new(|| {});
    let xdpctl_prog: Setup = Box::new(|| {
        load(&[]);
    });
    let redirect_prog: Setup = Box::new(|| {
        load(&["--progname", "xdp_redirect_map"]);
    });
    let cases: Vec<(Vec<&str>, &Setup, Option<&str>)> = vec![
        (vec!["load", "--dev", dev, "--progname", "xdp_parser"], &nothing, None),
        (vec!["load", "--dev", dev, "--force"], &xdpctl_prog, None),
        (vec!["unload", "--dev", dev], &xdpctl_prog, None),
        (vec!["stats", "--dev", dev, "-c", "1", "-i", "0.05"], &xdpctl_prog, None),
        (vec!["redirect", "--dev", dev, "--redirect-dev", &other.outer], &redirect_prog, None),
        (vec!["sample", "--dev", dev, "-w", "-"], &nothing, Some("1")),
        (vec!["afxdp", "--dev", dev], &nothing, Some("1")),
        (vec!["trafficgen", "--dev", dev, "-n", "100"], &nothing, None),
        (vec!["trace", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["trace", "monitor", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["trace", "netdev", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["status"], &xdpctl_prog, None),
        (vec!["features", "--dev", dev], &xdpctl_prog, None),
    ];
    for (args, setup, run_for) in cases {
        let cli = xdpctl::cli::Cli::try_parse_from([&["xdpctl"][..], &args].concat()).unwrap();
        let needed: Vec<String> = cli.command.needs().1.iter().map(|c| setpriv_name(*c)).collect();
        let what = format!("xdpctl {} with {needed:?}", args.join(" "));
        setup();
        let out = with_caps(&needed, &args, run_for);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        unload();
        for drop in &needed {
            setup();
            let fewer: Vec<String> = needed.iter().filter(|c| *c != drop).cloned().collect();
            let before = System::settled();
            let out = with_caps(&fewer, &args, run_for);
            let err = one_line(&out, &[&format!("CAP_{}", drop.to_uppercase())]);
            assert!(err.contains("run it as root"), "{what} without {drop}: {err}");
            before.assert_unchanged(&format!("{what} without {drop}"));
            unload();
        }
    }

    // A normal user sees what netlink tells: the program, not its name.
    load(&[]);
    let id = lab.attached()[0]["prog_id"].clone();
    let out = as_nobody("exec \"$1\" --json status --dev \"$2\"", &[common::XDPCTL, dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["prog_id"], id, "{rows}");
    assert_eq!(rows[0]["name"], serde_json::Value::Null, "{rows}");
    one_line_note(&out, &["not root", "netlink"]);
    unload();
}

/// A pinned map with more entries than there are XDP actions is no stats
/// map, and stats does not allocate or print by its size.
#[test]
fn s08_stats_refuses_a_map_larger_than_the_actions() {
    let _s = serial();
    let lab = Lab::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xbig"));
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    common::run(
        "bpftool",
        &[
            "map",
            "create",
            pin_s,
            "type",
            "percpu_array",
            "key",
            "4",
            "value",
            "16",
            "entries",
            "65536",
            "name",
            "big",
        ],
    );
    let dir_s = dir.to_str().unwrap();
    let stats = ["stats", "--dev", &lab.outer, "--pin-dir", dir_s, "-c", "1", "-i", "0.01"];
    let err = refused(&stats, &[pin_s, "65536 entries"]);
    assert!(err.contains("not a stats map"), "{err}");
}

// Issue 16, item 11: trafficgen

/// `xdpctl --json trafficgen --dev veth0 args` run inside `lab`.
fn trafficgen_in(lab: &Lab) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns, common::XDPCTL, "--json", "trafficgen", "--dev", "veth0"]);
    cmd
}

/// The final JSON report among a run's stdout lines.
fn final_report<'a>(lines: impl IntoIterator<Item = &'a str>) -> serde_json::Value {
    let line = lines.into_iter().find(|l| l.contains("\"final\":true")).expect("a final report");
    serde_json::from_str(line).expect("report JSON")
}

fn packets(report: &serde_json::Value, field: &str) -> u64 {
    report[field]["packets"].as_u64().unwrap_or_else(|| panic!("no {field}.packets in {report}"))
}

/// veth0's transmitted-frames counter, as `ip -s` reads it.
fn lab_tx(lab: &Lab) -> u64 {
    let out = common::run("ip", &["-n", &lab.ns, "-j", "-s", "link", "show", "veth0"]);
    let link: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    link[0]["stats64"]["tx"]["packets"].as_u64().expect("tx packets")
}

/// tcpdump on the lab's outer end, writing the UDP frames that `filter`
/// takes to a file until it has `count`.
struct Capture {
    child: KillOnDrop,
    file: RemoveFile,
}

impl Capture {
    fn start(lab: &Lab, count: u32, filter: &str) -> Capture {
        use std::io::BufRead;
        let file = RemoveFile(std::env::temp_dir().join(format!("{}.pcap", unique("s11"))));
        let mut child = Command::new("tcpdump")
            .args(["-i", &lab.outer, "-n", "-U", "-c", &count.to_string(), "-w"])
            .arg(&file.0)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump: {line}");
        Capture { child: KillOnDrop(child), file }
    }

    /// Each frame's arrival time (Unix seconds) and UDP destination port,
    /// once tcpdump has its count or 5 s have passed.
    fn frames(mut self) -> Vec<(f64, u16)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        // -U: what it caught so far is in the file.
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let path = self.file.0.to_str().unwrap();
        let out = common::run(
            "tshark",
            &["-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport"],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (time, port) = l.split_once('\t').expect("two fields");
                (time.parse().unwrap(), port.parse().unwrap())
            })
            .collect()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `--rate 10`: frames leave one at a time, a tenth of a second apart from
/// the start, not after a wait for a batch of 64 (or the count) to fall due.
#[test]
fn s11_trafficgen_paces_low_rates() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();
    let cap = Capture::start(&lab, 20, "udp");
    let started = unix_now();
    let out = trafficgen_in(&lab).args(["--rate", "10", "--count", "20"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let frames = cap.frames();
    assert_eq!(frames.len(), 20, "{frames:?}");
    let first = frames[0].0;
    // Start-up (load, the private namespace) takes well under a second.
    assert!(first - started < 1.0, "the first frame came {:.2} s after the start", first - started);
    // Frame i at i/10 s after the first, give or take scheduling noise.
    let late: Vec<String> = frames
        .iter()
        .enumerate()
        .filter(|(i, (t, _))| (t - first - *i as f64 / 10.0).abs() > 0.25)
        .map(|(i, (t, _))| format!("frame {i} at {:.3} s", t - first))
        .collect();
    assert!(late.is_empty(), "not at 10 per second: {late:?}");
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), 20, "{report}");
    before.assert_unchanged("trafficgen --rate 10");
}

/// "sent" is what the interface transmitted by its own counter; runs it did
/// not transmit are "not_sent": all sent while the peer takes them, and the
/// rest not sent once it drops them (GRO off, no XDP program: a veth then
/// drops XDP frames without counting them).
#[test]
fn s11_trafficgen_reports_what_the_device_sent() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();

    let tx = lab_tx(&lab);
    let out = trafficgen_in(&lab).args(["--rate", "5000", "--count", "500"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), lab_tx(&lab) - tx, "{report}");
    assert_eq!(packets(&report, "sent"), 500, "{report}");
    assert_eq!(packets(&report, "runs"), 500, "{report}");
    assert_eq!(packets(&report, "not_sent"), 0, "{report}");
    assert_eq!(packets(&report, "received"), 500, "{report}");

    // The peer stops taking frames in the middle of a run.
    let tx = lab_tx(&lab);
    let mut cmd = trafficgen_in(&lab);
    cmd.args(["--rate", "200", "--count", "300", "--interval", "0.2"]);
    let run = common::Streaming::spawn_command(cmd);
    run.wait_for("frames sent", |l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|r| r["sent"]["packets"] != 0)
    });
    common::run("ethtool", &["-K", &lab.outer, "gro", "off"]);
    let last = run.wait_for("the final report", |l| l.contains("\"final\":true"));
    let report = final_report([last.as_str()]);
    let (sent, runs) = (packets(&report, "sent"), packets(&report, "runs"));
    assert_eq!(sent, lab_tx(&lab) - tx, "sent is veth0's tx counter: {report}");
    assert_eq!(runs, 300, "{report}");
    assert!(sent > 0 && sent < runs, "some before GRO went off, not all: {report}");
    assert_eq!(packets(&report, "not_sent"), runs - sent, "{report}");
    assert_eq!(packets(&report, "received"), sent, "{report}");
    before.assert_unchanged("trafficgen into a peer that stops taking frames");
}

/// `--udp-dst 0-65535` is 65536 ports: the 65536th frame goes to 65535, and
/// the next one to 0 again.
#[test]
fn s11_trafficgen_port_range_includes_last() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();
    let cap = Capture::start(&lab, 3, "udp and (dst port 0 or dst port 65535)");
    let out = trafficgen_in(&lab)
        .args(["--udp-dst", "0-65535", "--count", "65537", "--rate", "300000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), 65537, "every frame went out: {report}");
    let ports: Vec<u16> = cap.frames().iter().map(|(_, port)| *port).collect();
    assert_eq!(ports, [0, 65535, 0]);
    before.assert_unchanged("trafficgen --udp-dst 0-65535");
}

/// A group address (multicast, broadcast) is no frame's source: refused in
/// one line that names it, exit 2 as for the other malformed option values.
/// As a destination it is fine.
#[test]
fn s11_trafficgen_refuses_a_group_source_mac() {
    let _s = serial();
    let lab = Lab::new();
    // veth0 takes XDP frames: the outer end could send.
    lab.exec(&["ethtool", "-K", "veth0", "gro", "on"]);
    let dev = lab.outer.as_str();
    for mac in ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "03:00:00:00:00:00"]
    {
        let args = ["trafficgen", "--dev", dev, "-n", "5", "--src-mac", mac];
        let err = refused(&args, &["--src-mac", &format!("{mac:?}"), "group", "unicast MAC"]);
        assert!(err.contains("xdpctl --help"), "{err}");
        assert_eq!(xdpctl(&args).status.code(), Some(2), "{mac}");
    }
    let bad_range = xdpctl(&["trafficgen", "--dev", dev, "-n", "5", "--udp-dst", "10-5"]);
    assert_eq!(bad_range.status.code(), Some(2), "the other malformed values exit 2 too");

    let before = System::settled();
    let args = ["--json", "trafficgen", "--dev", dev, "-n", "3", "--dst-mac", "ff:ff:ff:ff:ff:ff"];
    let out = xdpctl_ok(&args);
    let report = final_report(out.lines());
    assert_eq!(packets(&report, "sent"), 3, "{report}");
    assert_eq!(packets(&report, "received"), 3, "{report}");
    let out = xdpctl_ok(&[
        "--json",
        "trafficgen",
        "--dev",
        dev,
        "-n",
        "3",
        "--src-mac",
        "02:00:5e:10:00:01",
    ]);
    assert_eq!(packets(&final_report(out.lines()), "sent"), 3);
    before.assert_unchanged("trafficgen to a broadcast MAC");
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
#[test]
fn s07_hostile_interface_names_are_escaped() {
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

// Issue 16, items 1, 4 and 9: sample's output

/// `args` run by nobody; they must succeed.
fn run_as_nobody(args: &[&str]) {
    let nobody = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];
    common::run("setpriv", &[&nobody[..], args].concat());
}

/// A scratch directory anyone may write to, sticky, like /tmp.
fn shared_dir() -> common::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::TempDir::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A child's output, killed (and the test failed) if it runs past `secs`.
fn output_within(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: still running after {secs} s; stderr: {}", stderr(&out));
        }
        sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn spawn_xdpctl(args: &[&str]) -> std::process::Child {
    Command::new(common::XDPCTL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Like `refused`, for commands that would otherwise run until stopped.
fn refused_at_once(args: &[&str], names: &[&str]) -> String {
    let before = System::settled();
    let out = output_within(spawn_xdpctl(args), 10, "refusing");
    let err = one_line(&out, names);
    before.assert_unchanged(&format!("xdpctl {}", args.join(" ")));
    err
}

fn wait_attached(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.attached().is_empty() {
        assert!(Instant::now() < deadline, "the sampler never attached");
        sleep(Duration::from_millis(20));
    }
}

/// Complete records in a pcap stream, read from the format's definition: a
/// 24-byte header, then records of a 16-byte header (incl_len at 8..12) and
/// incl_len bytes. A record cut short at the end is not counted.
fn pcap_records(data: &[u8]) -> usize {
    assert!(data.len() >= 24, "no pcap header: {} bytes", data.len());
    let u32_at = |at: usize| u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xa1b2_3c4d, "nanosecond pcap magic");
    let (mut at, mut n) = (24, 0);
    while at + 16 <= data.len() {
        let next = at + 16 + u32_at(at + 8) as usize;
        if next > data.len() {
            break;
        }
        (at, n) = (next, n + 1);
    }
    n
}

/// The frames tcpdump reads from `file`.
fn tcpdump_count(file: &Path) -> usize {
    let out = common::run("tcpdump", &["-r", file.to_str().unwrap(), "-n"]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The numbers of sample's summary line: (written, seen).
fn summary(err: &str) -> (u64, u64) {
    let line = err.lines().find(|l| l.contains("samples written to")).expect("a summary");
    let words: Vec<&str> = line.split_whitespace().collect();
    let seen = words.iter().position(|w| *w == "packets").unwrap() - 1;
    (words[0].parse().unwrap(), words[seen].parse().unwrap())
}

/// Whatever nobody plants at the capture's path, root's `sample -w` never
/// writes through it nor into it; a new capture is private; a failed start
/// leaves the file there as it was.
#[test]
fn s01_sample_writes_only_its_own_new_file() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let shared = shared_dir();
    let private = common::TempDir::new();
    std::fs::set_permissions(&private.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = private.0.join("secret");
    std::fs::write(&secret, b"root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let at = |name: &str| shared.0.join(name).to_str().unwrap().to_string();

    // (a) A symlink to root's file.
    let (a, secret_s) = (at("a.pcap"), secret.to_str().unwrap());
    run_as_nobody(&["ln", "-s", secret_s, &a]);
    refused_at_once(&["sample", "--dev", dev, "-w", &a], &[&a, "symlink", "nobody", "remove it"]);
    assert_eq!(std::fs::read(&secret).unwrap(), b"root's secret\n", "the victim is untouched");

    // (b) A dangling symlink into root's directory.
    let (b, planted) = (at("b.pcap"), private.0.join("planted"));
    run_as_nobody(&["ln", "-s", planted.to_str().unwrap(), &b]);
    refused_at_once(&["sample", "--dev", dev, "-w", &b], &[&b, "symlink"]);
    assert!(!planted.exists(), "nothing created through the link");

    // (c) A file nobody made for root to fill, readable by all.
    let c = at("c.pcap");
    run_as_nobody(&["sh", "-c", "printf 'nobody was here' > \"$1\"; chmod 666 \"$1\"", "sh", &c]);
    refused_at_once(&["sample", "--dev", dev, "-w", &c], &[&c, "nobody", "remove it"]);
    assert_eq!(std::fs::read(&c).unwrap(), b"nobody was here");
    let planted = ["a.pcap", "b.pcap", "c.pcap"];
    assert_eq!(listing(&shared.0), planted, "no temporary file left");

    // (d) A new capture is root's and private, whatever the umask.
    let d = at("d.pcap");
    let script = format!("umask 000; exec {} sample --dev {dev} -w {d} -c 3", common::XDPCTL);
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_attached(&lab);
    assert!(lab.ping(3), "the pings come back");
    let out = output_within(child, 10, "sample -c 3");
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(&d).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0), "mode and owner");
    assert_eq!(tcpdump_count(Path::new(&d)), 3);
    assert!(lab.attached().is_empty(), "detached on exit");

    // (e) A start that fails leaves root's earlier capture as it was. A
    // bridge has no native XDP, which only the attach finds out (the
    // sampler, frags-aware, attaches to a veth at any MTU).
    let e = at("e.pcap");
    std::fs::write(&e, b"an earlier capture").unwrap();
    let bridge = unique("xbr");
    common::run("ip", &["link", "add", &bridge, "type", "bridge"]);
    let _gone = DelLink(bridge.clone());
    let out = refused(&["sample", "--dev", &bridge, "-m", "native", "-w", &e], &[&bridge]);
    assert!(out.contains("no native XDP support"), "{out}");
    assert_eq!(std::fs::read(&e).unwrap(), b"an earlier capture");
    assert_eq!(listing(&shared.0), [&planted[..], &["d.pcap", "e.pcap"]].concat());

    // (f) stdout as before.
    let child = spawn_xdpctl(&["sample", "--dev", dev, "-w", "-", "-c", "2"]);
    wait_attached(&lab);
    assert!(lab.ping(2), "the pings come back");
    let out = output_within(child, 10, "sample -w - -c 2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pcap_records(&out.stdout), 2);
    assert!(stderr(&out).contains("2 samples written to stdout"), "{}", stderr(&out));
}

/// Two samplers started at once on one interface and one file: one runs,
/// the other is refused and leaves the winner's capture alone.
#[test]
fn s04_two_samplers_racing_for_one_file() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let dir = common::TempDir::new();
    let file = dir.0.join("race.pcap");
    let path = file.to_str().unwrap();
    let before = System::settled();
    for round in 0..3 {
        let args = ["sample", "--dev", dev, "-w", path, "-c", "4"];
        let mut racers = [spawn_xdpctl(&args), spawn_xdpctl(&args)];
        let deadline = Instant::now() + Duration::from_secs(10);
        let lost = loop {
            if let Some(i) = (0..2).find(|&i| racers[i].try_wait().unwrap().is_some()) {
                break i;
            }
            assert!(Instant::now() < deadline, "round {round}: both still run");
            sleep(Duration::from_millis(10));
        };
        let [first, second] = racers;
        let (loser, winner) = if lost == 0 { (first, second) } else { (second, first) };
        let out = loser.wait_with_output().unwrap();
        let err = one_line(&out, &[dev]);
        assert!(
            err.contains("already has an XDP program") || err.contains("another XDP program"),
            "round {round}: {err}"
        );
        wait_attached(&lab);
        assert!(lab.ping(4), "the pings come back");
        let out = output_within(winner, 10, "the winner");
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        assert_eq!(tcpdump_count(&file), 4, "round {round}: the winner's capture");
        assert_eq!(listing(&dir.0), ["race.pcap"], "round {round}: no temporary file");
    }
    before.assert_unchanged("racing samplers");
}

/// A reader that never reads: a signal still ends `sample -w -` within a
/// second, detached, and it counts only the records that went into the pipe.
#[test]
fn s09_a_stalled_pipe_does_not_hold_up_a_stop() {
    use nix::sys::signal::{kill, Signal};
    use std::io::Read;
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let before = System::settled();
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut child = Command::new(common::XDPCTL)
            .args(["sample", "--dev", dev, "-w", "-"])
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_attached(&lab);
        // 200 replies of 1462 bytes: far more than the pipe's 64 KiB.
        let flood = ["-6", "-q", "-f", "-c", "200", "-s", "1400", &lab.inner_ip];
        let ping = lab.outer_command("ping").args(flood).output().unwrap();
        assert!(ping.status.success(), "{}", stderr(&ping));
        sleep(Duration::from_millis(300));

        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let signalled = Instant::now();
        kill(pid, sig).unwrap();
        let deadline = signalled + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{sig}: sample still runs 5 s after the signal");
            }
            sleep(Duration::from_millis(5));
        }
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(1), "{sig}: exited {took:?} after the signal");
        assert!(lab.attached().is_empty(), "{sig}: detached");
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{sig}: {err}");
        let mut data = Vec::new();
        std::fs::File::from(read).read_to_end(&mut data).unwrap();
        let (written, seen) = summary(&err);
        assert!(written < seen, "{sig}: the pipe stalled: {err}");
        assert_eq!(pcap_records(&data) as u64, written, "{sig}: {err}");
        eprintln!("{sig}: exited {took:?} after it; {written} of {seen} written");
    }
    before.assert_unchanged("samplers stopped on a stalled pipe");
}

// Issue 17, item 8: features

/// `features` only asks: on a veth with and without a program on its peer,
/// from either end, and on a bridge, it attaches, loads and pins nothing.
#[test]
fn f01_features_changes_nothing() {
    let _s = serial();
    let lab = Lab::new();
    let br = DelLink(unique("xfbr"));
    common::run("ip", &["link", "add", &br.0, "type", "bridge"]);
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let features = |cmd: &mut Command, dev: &str| {
        let out = cmd.args([common::XDPCTL, "features", "--dev", dev]).output().unwrap();
        assert!(out.status.success(), "features --dev {dev}: {}", stderr(&out));
    };
    let check = |what: &str| {
        let before = System::settled();
        features(&mut Command::new("env"), &lab.outer);
        features(Command::new("nsenter").arg(&netns), "veth0");
        features(&mut Command::new("env"), &br.0);
        before.assert_unchanged(what);
    };
    check("features of a veth pair and a bridge");
    let pins = Path::new("/sys/fs/bpf").join(unique("xf01"));
    let _rm = common::RemoveDir(&pins); // after the lab's own cleanup
    let pin_dir = pins.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "-q", "load", "--dev", "veth0", "--pin-dir", pin_dir],
    );
    check("features with a program on the peer");
    common::run("nsenter", &[&netns, common::XDPCTL, "-q", "unload", "--dev", "veth0"]);
}

// Issue 17, items 5-6: hw mode, libxdp's dispatcher

/// `--mode hw` on a device that does not offload (a veth; this VM has no
/// netdevsim) is refused in one line before anything is loaded: exit 1, where
/// an attach refused after loading exits 30.
#[test]
fn i17_hw_mode_without_offload_is_refused_up_front() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let features =
        xdpctl::xdp::attach::features(ifindex(dev)).unwrap().expect("6.18 announces features");
    assert_eq!(features & xdpctl::net::features::HW_OFFLOAD, 0, "a veth offloads nothing");
    let names = [dev, "--mode hw", "no XDP hardware offload", "--mode native", "--mode skb"];
    for args in [
        &["load", "--dev", dev, "--mode", "hw"][..],
        &["load", "--dev", dev, "--progname", "xdp_drop", "--mode", "hw", "--force"],
    ] {
        refused(args, &names);
        assert_eq!(xdpctl(args).status.code(), Some(1), "refused before loading");
    }
    // A program running in another mode stays as it is.
    xdpctl_ok(&["load", "--dev", dev, "--mode", "skb"]);
    refused(&["load", "--dev", dev, "--mode", "hw", "--force"], &names);
    xdpctl_ok(&["unload", "--dev", dev]);
}

/// libxdp's dispatcher object as Debian's libxdp1 ships it.
fn libxdp_dispatcher() -> PathBuf {
    let out = common::run("dpkg", &["-L", "libxdp1"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/bpf/xdp-dispatcher.o"))
        .map(PathBuf::from)
        .expect("libxdp1 ships bpf/xdp-dispatcher.o (make deps installs it)")
}

/// Attaches libxdp's own dispatcher to the lab the way another tool would,
/// with `ip link` (its config all zeros: no programs enabled); its id.
fn ip_link_dispatcher(lab: &Lab) -> String {
    let obj = libxdp_dispatcher();
    common::run(
        "ip",
        &[
            "link",
            "set",
            "dev",
            &lab.outer,
            "xdpgeneric",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "xdp",
            "program",
            "xdp_dispatcher",
        ],
    );
    let rows = lab.attached();
    assert_eq!(rows[0]["name"], "xdp_dispatcher", "{rows:?}");
    rows[0]["prog_id"].as_u64().unwrap().to_string()
}

/// libxdp's dispatcher: `status` names it, and `load` and `unload` leave it
/// alone even with --force, naming libxdp's own command and
/// --force-dispatcher, which takes it off knowingly.
#[test]
fn i17_libxdp_dispatcher_is_named_and_left_to_libxdp() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let id = ip_link_dispatcher(&lab);
    let state = format!("/sys/fs/bpf/xdp/dispatch-{}-{id}", ifindex(dev));

    let text = xdpctl_ok(&["status", "--dev", dev]);
    assert!(text.contains("libxdp's dispatcher, version 2, 0 programs behind it"), "{text}");
    assert!(text.contains(&format!("no libxdp state pinned in {state}")), "{text}");
    let rows = lab.attached();
    let libxdp = &rows[0]["libxdp"];
    assert_eq!(libxdp["version"], 2, "{rows:?}");
    assert_eq!(libxdp["state_dir"], state.as_str(), "{rows:?}");
    assert_eq!(libxdp["state_pinned"], false, "{rows:?}");
    assert_eq!(libxdp["programs"], serde_json::json!([]), "{rows:?}");

    let hint = format!("`xdp-loader unload --all {dev}`");
    for args in [
        &["load", "--dev", dev][..],
        &["load", "--dev", dev, "--force"],
        &["load", "--dev", dev, "--force", "--mode", "skb"],
        &["unload", "--dev", dev],
        &["unload", "--dev", dev, "--force"],
        &["unload", "--dev", dev, "--force", "--id", &id],
    ] {
        let err = refused(args, &[dev, &id, "libxdp's dispatcher", &hint, "--force-dispatcher"]);
        assert!(err.contains("stops every program behind it"), "{err}");
    }

    let out = xdpctl(&["unload", "--dev", dev, "--force-dispatcher"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("took libxdp's dispatcher (id {id}) off {dev}")), "{err}");
    assert!(err.contains("libxdp had no state pinned for it"), "{err}");
    assert!(lab.attached().is_empty());

    let id = ip_link_dispatcher(&lab);
    let out = xdpctl_ok(&["load", "--dev", dev, "--force-dispatcher", "--mode", "skb"]);
    assert!(out.contains(&format!("replaced program id {id}")), "{out}");
    assert_eq!(lab.attached()[0]["name"], "xdp_pass");
    xdpctl_ok(&["unload", "--dev", dev]);
}

/// libxdp's state for a dispatcher running one program, built as libxdp
/// 1.3.1 builds it: its own dispatcher object with the config in .rodata
/// (laid out as the object's BTF says), attached in skb mode, and the
/// program pinned as `/sys/fs/bpf/xdp/dispatch-<ifindex>-<id>/prog0-prog`.
/// Only the freplace link that would run that program is missing: this
/// kernel refuses freplace, so libxdp never gets this far here itself.
struct LibxdpState {
    dispatcher: u32,
    component: u32,
    dir: PathBuf,
    /// /sys/fs/bpf/xdp, when this test made it.
    made_root: Option<PathBuf>,
}

impl LibxdpState {
    fn build(dev: &str, prio: u32, component: &Path) -> LibxdpState {
        use libbpf_rs::btf::types::{MemberAttr, Struct};
        use libbpf_rs::{HasSize, ObjectBuilder, Program, Xdp, XdpFlags};
        use std::os::fd::AsFd;
        use std::os::unix::fs::DirBuilderExt;

        let obj = libxdp_dispatcher();
        let btf = libbpf_rs::Btf::from_path(&obj).unwrap();
        let conf: Struct<'_> = btf.type_by_name("xdp_dispatcher_config").unwrap();
        let at = |name: &str| {
            let m = conf.iter().find(|m| m.name == Some(std::ffi::OsStr::new(name))).unwrap();
            match m.attr {
                MemberAttr::Normal { offset } => offset as usize / 8,
                MemberAttr::BitField { .. } => panic!("{name} is a bitfield"),
            }
        };
        let mut value = vec![0u8; conf.size()];
        // XDP_DISPATCHER_MAGIC and XDP_DISPATCHER_VERSION of libxdp 1.3.1.
        value[at("magic")] = 236;
        value[at("dispatcher_version")] = 2;
        value[at("num_progs_enabled")] = 1;
        // Chain on XDP_PASS, plus the bit libxdp always sets (XDP_DISPATCHER_RETVAL).
        let chain = at("chain_call_actions");
        value[chain..chain + 4].copy_from_slice(&((1u32 << 2) | (1 << 31)).to_ne_bytes());
        let prios = at("run_prios");
        value[prios..prios + 4].copy_from_slice(&prio.to_ne_bytes());

        let mut open = ObjectBuilder::default().open_file(&obj).unwrap();
        for mut p in open.progs_mut() {
            let keep = p.name() == "xdp_dispatcher";
            p.set_autoload(keep);
        }
        let mut rodata =
            open.maps_mut().find(|m| m.name().to_string_lossy().ends_with(".rodata")).unwrap();
        rodata.set_initial_value(&value).unwrap();
        let loaded = open.load().unwrap();
        let prog = loaded.progs().find(|p| p.name() == "xdp_dispatcher").unwrap();
        let dispatcher = Program::id_from_fd(prog.as_fd()).unwrap();

        let mut state = LibxdpState {
            dispatcher,
            component: 0,
            dir: PathBuf::from(format!("/sys/fs/bpf/xdp/dispatch-{}-{dispatcher}", ifindex(dev))),
            made_root: None,
        };
        let root = Path::new("/sys/fs/bpf/xdp");
        let mut mkdir = std::fs::DirBuilder::new();
        mkdir.mode(0o700);
        if !root.exists() {
            mkdir.create(root).unwrap();
            state.made_root = Some(root.to_path_buf());
        }
        mkdir.create(&state.dir).unwrap();
        let comp = ObjectBuilder::default().open_file(component).unwrap().load().unwrap();
        let mut cprog = comp.progs_mut().next().unwrap();
        state.component = Program::id_from_fd(cprog.as_fd()).unwrap();
        cprog.pin(state.dir.join("prog0-prog")).unwrap();
        Xdp::new(prog.as_fd()).attach(ifindex(dev) as i32, XdpFlags::SKB_MODE).unwrap();
        state
    }
}

impl Drop for LibxdpState {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("prog0-prog"));
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(root) = &self.made_root {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// `status` lists what libxdp's pinned state says the dispatcher runs, as
/// libxdp's own `xdp-loader status` reads the same state; `--force-dispatcher`
/// leaves that state to libxdp, whose `xdp-loader clean` (which xdpctl names)
/// removes it.
#[test]
fn i17_status_lists_what_libxdps_state_says_the_dispatcher_runs() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let tmp = common::TempDir::new();
    let comp = common::build_bpf(&tmp.0, "component", XDP_PASS_SRC);
    let before = System::settled();
    let state = LibxdpState::build(dev, 42, &comp);
    let (id, cid, dir) = (state.dispatcher, state.component, state.dir.display().to_string());

    // libxdp's reading: " =>  <prio>  <name>  <id>  <tag>  <chain-call actions>"
    let reference = common::run("xdp-loader", &["status", dev]);
    let reference = String::from_utf8_lossy(&reference.stdout).into_owned();
    let line = reference.lines().find(|l| l.trim_start().starts_with("=>")).expect(&reference);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1..4], ["42", "foreign", &cid.to_string()], "{reference}");
    assert_eq!(words.last(), Some(&"XDP_PASS"), "{reference}");

    let text = xdpctl_ok(&["status", "--dev", dev]);
    assert!(text.contains("libxdp's dispatcher, version 2, 1 program behind it"), "{text}");
    assert!(text.contains(&format!("libxdp's state in {dir}")), "{text}");
    assert!(text.contains(&format!("=> prio 42     foreign (id {cid})")), "{text}");
    assert!(text.contains("chain-call actions: XDP_PASS"), "{text}");
    let rows = lab.attached();
    assert_eq!(rows[0]["prog_id"], id, "{rows:?}");
    assert_eq!(
        rows[0]["libxdp"],
        serde_json::json!({
            "version": 2,
            "state_dir": dir,
            "state_pinned": true,
            "programs": [{
                "slot": 0,
                "priority": 42,
                "chain_call_actions": ["XDP_PASS"],
                "prog_id": cid,
                "name": "foreign",
            }],
        }),
    );

    let hint = format!("`xdp-loader unload --all {dev}`");
    let err = refused(
        &["unload", "--dev", dev, "--force"],
        &[dev, "1 program behind it", &dir, &hint, "--force-dispatcher"],
    );
    assert!(err.contains(&format!("leaves libxdp's state in {dir}")), "{err}");

    let out = xdpctl(&["unload", "--dev", dev, "--force-dispatcher"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("libxdp's state in {dir} stays")), "{err}");
    assert!(err.contains(&format!("`xdp-loader clean {dev}`")), "{err}");
    assert!(lab.attached().is_empty());
    assert!(state.dir.join("prog0-prog").exists(), "libxdp's state is libxdp's");
    common::run("xdp-loader", &["clean", dev]);
    assert!(!state.dir.exists(), "xdp-loader clean removed what the dispatcher left");
    drop(state);
    before.assert_unchanged("libxdp's state, once libxdp cleaned it");
}

/// Handing an interface over, as README says: libxdp's dispatcher goes with
/// the command xdpctl names, then xdpctl loads; xdpctl's program goes with
/// `xdpctl unload`, then `xdp-loader load` works (before, libxdp says
/// "Existing program is not using a dispatcher").
#[test]
fn i17_handing_an_interface_over_between_libxdp_and_xdpctl() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let tmp = common::TempDir::new();
    let comp = common::build_bpf(&tmp.0, "component", XDP_PASS_SRC);
    let comp = comp.to_str().unwrap();
    ip_link_dispatcher(&lab);

    let err = stderr(&xdpctl(&["load", "--dev", dev, "--mode", "skb"]));
    let named = err.split('`').find(|s| s.starts_with("xdp-loader ")).expect(&err);
    let words: Vec<&str> = named.split_whitespace().collect();
    common::run(words[0], &words[1..]);
    assert!(lab.attached().is_empty(), "{named} took the dispatcher off");
    xdpctl_ok(&["load", "--dev", dev, "--mode", "skb"]);

    let libxdp_load = || Command::new("xdp-loader").args(["load", "-m", "skb", dev, comp]).output();
    let out = libxdp_load().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Existing program is not using a dispatcher"),
        "{}",
        stderr(&out)
    );
    xdpctl_ok(&["unload", "--dev", dev]);
    let out = libxdp_load().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.attached()[0]["name"], "foreign");
    common::run("xdp-loader", &["unload", "--all", dev]);
    assert!(lab.attached().is_empty());
}

// Issue 17, item 1: pin-by-name maps

/// A stats map pinned by name, as the tutorial's common/xdp_stats_kern.h
/// declares it; `LAYOUT` is its type, key, value and entries.
const PIN_BY_NAME_SRC: &str = "#include <linux/bpf.h>\n\
    #include <bpf/bpf_helpers.h>\n\
    #include \"common_kern_user.h\"\n\
    struct {\n\
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);\n\
        __type(key, __u32);\n\
        __type(value, struct datarec);\n\
        __uint(max_entries, XDP_ACTION_MAX);\n\
        __uint(pinning, LIBBPF_PIN_BY_NAME);\n\
    } xdp_stats_map SEC(\".maps\");\n\
    SEC(\"xdp\") int by_name(struct xdp_md *ctx)\n\
    {\n\
        __u32 key = XDP_PASS;\n\
        struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &key);\n\
        if (!rec)\n\
            return XDP_ABORTED;\n\
        rec->rx_packets++;\n\
        return XDP_PASS;\n\
    }\n\
    char LICENSE[] SEC(\"license\") = \"GPL\";\n";

const LAYOUT: [&str; 8] = ["type", "percpu_array", "key", "4", "value", "16", "entries", "5"];

/// Pins a new map at `pin` with `layout`, as another tool would.
fn bpftool_map(pin: &Path, layout: &[&str]) {
    let mut args = vec!["map", "create", pin.to_str().unwrap()];
    args.extend_from_slice(layout);
    args.extend_from_slice(&["name", "xdp_stats_map"]);
    common::run("bpftool", &args);
}

/// Loads that fail after the map exists (the attach refused at this MTU)
/// leave no pin anywhere: not in the interface's directory, not at
/// libbpf's default /sys/fs/bpf/xdp_stats_map. A pin of that name another
/// program shares stays as it was.
#[test]
fn s17_a_failed_load_leaves_no_pin_of_a_map_pinned_by_name() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let obj = obj.to_str().unwrap();
    common::run("ip", &["link", "set", "dev", &lab.outer, "mtu", "9000"]);
    common::run("ip", &["-n", &lab.ns, "link", "set", "dev", "veth0", "mtu", "9000"]);
    let dev = lab.outer.as_str();
    let load = ["load", "--dev", dev, "--obj", obj, "--progname", "by_name", "--mode", "native"];
    let err = refused(&load, &[dev, "native unsupported at this MTU"]);
    assert!(!err.contains("pinning"), "{err}");
    assert_eq!(xdpctl(&load).status.code(), Some(30), "the attach exit code");

    // Already pinned there, and used by another tool's live program.
    let dir = lab.pin_dir();
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm, _rm_other) = (common::RemoveDir(&dir), common::RemoveDir(&other));
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&other).unwrap();
    let pin = dir.join("xdp_stats_map");
    bpftool_map(&pin, &LAYOUT);
    let reader = common::build_bpf(&tmp.0, "reader", STATS_READER_SRC);
    let reader_pin = other.join("reader");
    let (reader, reader_pin) = (reader.to_str().unwrap(), reader_pin.to_str().unwrap());
    let shared = ["map", "name", "xdp_stats_map", "pinned", pin.to_str().unwrap()];
    common::run("bpftool", &[&["prog", "load", reader, reader_pin][..], &shared].concat());
    let theirs = map_id_of(&pin);
    refused(&load, &[dev, "native unsupported at this MTU"]);
    assert_eq!(map_id_of(&pin), theirs, "shared, never replaced");
}

/// A map of that name pinned there with another layout: refused before
/// anything is loaded, naming the pin and each difference; the pin stays.
#[test]
fn s17_a_pin_by_name_of_another_layout_is_refused() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    bpftool_map(&pin, &["type", "hash", "key", "4", "value", "8", "entries", "7"]);
    let stale = map_id_of(&pin);
    let dev = lab.outer.as_str();
    let err = refused(
        &["load", "--dev", dev, "--obj", obj.to_str().unwrap(), "--progname", "by_name"],
        &[pin_s, "LIBBPF_PIN_BY_NAME", "--pin-dir"],
    );
    for diff in ["type Hash, not PercpuArray", "value 8 B, not 16 B", "7 entries, not 5"] {
        assert!(err.contains(diff), "lists {diff}: {err}");
    }
    assert!(!err.contains("key"), "only the differences: {err}");
    assert_eq!(map_id_of(&pin), stale, "left alone");
}

/// A map of that name pinned by another tool while the load runs (held up
/// by strace just before its pin goes into place, the program already
/// attached): that pin is never replaced; the load fails and undoes itself.
#[test]
fn s17_a_pin_by_name_made_meanwhile_is_never_replaced() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    let pin = dir.join("xdp_stats_map");
    let before = System::settled();
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=renameat2"])
        .args(["-e", "inject=renameat2:delay_enter=2000000:when=1", common::XDPCTL, "load"])
        .args(["--dev", &lab.outer, "--obj", obj.to_str().unwrap(), "--progname", "by_name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while xdpctl::xdp::attach::query(ifindex(&lab.outer)).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the load never attached");
        sleep(Duration::from_millis(10));
    }
    bpftool_map(&pin, &LAYOUT);
    let theirs = map_id_of(&pin);
    let out = child.wait_with_output().unwrap();
    let err = one_line(&out, &[pin.to_str().unwrap(), "someone else", "load again"]);
    assert_eq!(map_id_of(&pin), theirs, "their pin stays: {err}");
    // Their pin kept the directory; with it gone, all is as before.
    std::fs::remove_file(&pin).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    before.assert_unchanged("a load that lost its pin by name");
}
