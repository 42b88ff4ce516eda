//! Shared by the integration tests: the lab (lab.rs), the crowd of many
//! interfaces (crowd.rs), the frame builder (frame.rs) and program swaps
//! under traffic (swaps.rs), which the benches share too, and xdpctl runners.
#![allow(dead_code)] // each test binary uses its own subset

pub mod crowd;
pub mod frame;
pub mod lab;
pub mod swaps;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde_json::Value;
use xdpctl::obj::skel::xdp_prog::{XdpProgKernSkel, XdpProgKernSkelBuilder};

#[allow(unused_imports)] // each test binary uses its own subset
pub use frame::ones_sum;
#[allow(unused_imports)]
pub use lab::{received, run, unique, Lab, RemoveDir, TempDir, XDPCTL};

/// Pins a new map at `pin` as another tool would (`bpftool map create`):
/// 4-byte keys, `value`-byte values.
pub fn pin_map(pin: &Path, kind: &str, value: u32, entries: u32, name: &str) {
    let (value, entries) = (value.to_string(), entries.to_string());
    let pin = pin.to_str().expect("UTF-8 pin path");
    let args =
        ["map", "create", pin, "type", kind, "key", "4", "value", &value, "entries", &entries];
    run("bpftool", &[&args[..], &["name", name]].concat());
}

pub fn xdpctl(args: &[&str]) -> Output {
    Command::new(XDPCTL).args(args).output().expect("running xdpctl")
}

/// xdpctl that must succeed.
pub fn xdpctl_ok(args: &[&str]) -> String {
    let out = xdpctl(args);
    assert!(
        out.status.success(),
        "xdpctl {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// xdpctl where a lab's outer end is.
impl Lab {
    /// xdpctl run where the outer end is.
    pub fn xdpctl(&self, args: &[&str]) -> Output {
        self.outer_command(XDPCTL).args(args).output().expect("running xdpctl")
    }

    /// A long-running xdpctl where the outer end is.
    pub fn spawn_xdpctl(&self, args: &[&str]) -> Streaming {
        let mut cmd = self.outer_command(XDPCTL);
        cmd.args(args);
        Streaming::spawn_command(cmd)
    }

    /// XDP programs attached to the outer end, from `xdpctl --json status`.
    pub fn attached(&self) -> Vec<Value> {
        let out = self.xdpctl(&["--json", "status", "--dev", &self.outer]);
        assert!(out.status.success(), "xdpctl status: {}", stderr(&out));
        let out = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<Value>(&out)
            .expect("status JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Counters of the outer end, read by a separate `xdpctl stats` process.
    pub fn stats(&self) -> Stats {
        let out = xdpctl_ok(&[
            "--json",
            "stats",
            "--dev",
            &self.outer,
            "--count",
            "1",
            "--interval",
            "0.05",
        ]);
        let line = out.lines().last().expect("one stats sample");
        Stats(serde_json::from_str(line).expect("stats JSON"))
    }
}

/// One `xdpctl --json stats` sample.
pub struct Stats(pub Value);

impl Stats {
    pub fn packets(&self, action: &str) -> u64 {
        self.0["actions"][action]["packets"].as_u64().expect("packets")
    }
    pub fn bytes(&self, action: &str) -> u64 {
        self.0["actions"][action]["bytes"].as_u64().expect("bytes")
    }
    pub fn map_id(&self) -> u64 {
        self.0["map_id"].as_u64().expect("map_id")
    }
}

/// Ethernet + IPv6 + ICMPv6 echo reply with ping's default 56 data bytes.
pub const PING6_REPLY_BYTES: u64 = 14 + 40 + 8 + 56;

/// A long-running xdpctl whose stdout lines arrive as they are printed.
pub struct Streaming {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Streaming {
    pub fn spawn(args: &[&str]) -> Streaming {
        let mut cmd = Command::new(XDPCTL);
        cmd.args(args);
        Streaming::spawn_command(cmd)
    }

    /// Start `cmd` (one that ends up as xdpctl in the same process, such as
    /// `ip netns exec NS xdpctl ...`).
    pub fn spawn_command(mut cmd: Command) -> Streaming {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning xdpctl");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line, or None if none came within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `want`; panics with what came instead.
    pub fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next_line(left) {
                Some(line) if want(&line) => return line,
                Some(line) => seen.push(line),
                None => break,
            }
        }
        panic!("no line with {what}; got:\n{}", seen.join("\n"));
    }

    /// Ctrl-C, then the exit status and everything written to stderr.
    pub fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        run("kill", &["-INT", &self.child.id().to_string()]);
        let status = self.child.wait().expect("waiting for xdpctl");
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut err).expect("reading stderr");
        }
        (status, err)
    }
}

/// How a stopped xdpctl ended, and what it printed after the lines read.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stderr: String,
    pub rest: Vec<String>,
}

impl Streaming {
    /// `kill -SIG`, then the exit status, stderr and the stdout lines not yet read.
    pub fn signal(mut self, sig: &str) -> Finished {
        use std::io::Read;
        run("kill", &[&format!("-{sig}"), &self.child.id().to_string()]);
        let status = self.child.wait().expect("waiting for xdpctl");
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_string(&mut stderr).expect("reading stderr");
        }
        // The reader thread ends at EOF, which closes the channel.
        let rest = std::iter::from_fn(|| self.next_line(Duration::from_secs(5))).collect();
        Finished { status, stderr, rest }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the BPF object `name.o` from C source `src` (the project's
/// include/ on the path) in `dir`; its path.
pub fn build_bpf(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.bpf.c"));
    std::fs::write(&c, src).expect("writing the BPF source");
    let obj = dir.join(format!("{name}.o"));
    run(
        "clang",
        &[
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I",
            concat!(env!("CARGO_MANIFEST_DIR"), "/include"),
            env!("XDPCTL_MULTIARCH_INCLUDE"),
            "-c",
            c.to_str().expect("a UTF-8 path"),
            "-o",
            obj.to_str().expect("a UTF-8 path"),
        ],
    );
    obj
}

/// Runs `test` with the shipped programs loaded (not attached) in a skeleton
/// of its own: for BPF_PROG_TEST_RUN.
pub fn with_skeleton(test: impl FnOnce(&XdpProgKernSkel<'_>)) {
    let mut storage = std::mem::MaybeUninit::uninit();
    let skel = XdpProgKernSkelBuilder::default()
        .open(&mut storage)
        .expect("open skeleton")
        .load()
        .expect("load skeleton (root needed)");
    test(&skel);
}

/// Whether the kernel lets go of BPF object `kind` ("prog", "map") `id`
/// within a few seconds: a program releases its maps after an RCU grace
/// period, not at once.
pub fn freed(kind: &str, id: u64) -> bool {
    let id = u32::try_from(id).expect("a 32-bit id");
    let exists = || match kind {
        "prog" => libbpf_rs::Program::fd_from_id(id).is_ok(),
        _ => libbpf_rs::MapHandle::from_map_id(id).is_ok(),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
