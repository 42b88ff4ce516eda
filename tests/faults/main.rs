//! Issue 7: every bad input and fault ends in one clear line on stderr that
//! names the input or the cause with a hint, a non-zero exit, and a system
//! exactly as before: the same BPF programs, maps and links, the same XDP
//! attachments and the same pins (`System`, the one snapshot every case
//! compares). Each case builds its own lab. The cases run one at a time (the
//! system-wide counts must not see another case's work). Grouped by the
//! resource they attack, one module each; a comment keeps each case's id
//! from issues 7 and 16 (cNN, sNN). Needs root.

#[path = "../common/mod.rs"]
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

mod capabilities;
mod echo;
mod files;
mod input;
mod interfaces;
mod locks;
mod names;
mod namespaces;
mod objects;
mod other_tools;
mod pins;
mod signals;
mod state;
mod tracing;
mod trafficgen;

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

/// The failure is one line that names each of `names`; a usage error (exit
/// 2) may follow it with clap's tip and usage, indented. Returns that line.
fn one_line(out: &Output, names: &[&str]) -> String {
    let all = stderr(out);
    assert!(!out.status.success(), "must fail; stderr: {all}");
    let mut lines = all.lines();
    let err = format!("{}\n", lines.next().unwrap_or_default());
    for more in lines {
        let clap = ["  tip: ", "  usage: ", "         "].iter().any(|p| more.starts_with(p));
        assert!(out.status.code() == Some(2) && clap, "one line: {all}");
    }
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

const XDP_PASS_SRC: &str = "#include <linux/bpf.h>\n\
    __attribute__((section(\"xdp\"), used)) int foreign(struct xdp_md *ctx) { return 2; }\n\
    char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// Attaches `obj`'s program `foreign` to `dev` the way another tool would.
fn ip_link_attach(dev: &str, obj: &Path) {
    common::run(
        "ip",
        &["link", "set", "dev", dev, "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"],
    );
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

// renamed interfaces, capabilities, and map sizes it did not choose
/// `sh -c script` run as nobody, with `args` as $1...
fn as_nobody(script: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script, "sh"])
        .args(args)
        .output()
        .unwrap()
}

fn ifindex(dev: &str) -> u32 {
    nix::net::if_::if_nametoindex(dev).unwrap()
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

fn map_id_of(pin: &Path) -> u32 {
    use libbpf_rs::MapCore;
    libbpf_rs::MapHandle::from_pinned_path(pin).unwrap().info().unwrap().info.id
}

fn packets(report: &serde_json::Value, field: &str) -> u64 {
    report[field]["packets"].as_u64().unwrap_or_else(|| panic!("no {field}.packets in {report}"))
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

fn spawn_xdpctl(args: &[&str]) -> std::process::Child {
    Command::new(common::XDPCTL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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

/// The error is a single line that names `input`.
fn one_line_naming(out: &Output, code: i32, input: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {}", stderr(out));
    one_line(out, &[input])
}

fn nothing_left(lab: &Lab) {
    assert!(lab.attached().is_empty(), "nothing attached to {}", lab.outer);
    assert!(!lab.pin_dir().exists(), "nothing pinned in {}", lab.pin_dir().display());
}
