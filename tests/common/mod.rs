//! Shared by the integration tests: a private lab (network namespace + veth
//! pair) that removes everything it made when dropped, and xdpctl runners.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde_json::Value;
use xdpctl::skel::xdp_prog::{XdpProgKernSkel, XdpProgKernSkelBuilder};

pub const XDPCTL: &str = env!("CARGO_BIN_EXE_xdpctl");

/// A number no other lab of this process has; with the pid it makes names
/// nobody else uses (test binaries run concurrently, tests in threads).
fn next() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn pid() -> u32 {
    std::process::id() & 0xffff
}

/// An interface or namespace name of at most 15 characters.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:x}x{}", pid(), next())
}

/// Run a command that must succeed; panics with its stderr otherwise.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

/// A netns with `veth0` inside and its peer (the one XDP runs on) outside, on a
/// /64 of its own, with static neighbours and no link-local autoconfiguration:
/// the only packets that arrive outside are the ones a test sends.
///
/// "Outside" is this namespace, or with `Lab::isolated` a namespace of its
/// own, for tests that change per-namespace settings the host must keep.
pub struct Lab {
    pub ns: String,
    pub outer: String,
    /// The namespace of the outer end; None: this one.
    pub outer_ns: Option<String>,
    pub outer_ip: String,
    pub inner_ip: String,
    /// Unique per lab, so that tests joining labs can tell frames apart.
    pub outer_mac: String,
    pub inner_mac: String,
    /// The index `veth0` must have in its namespace; None: the kernel's pick.
    inner_index: Option<u32>,
    /// The MTU of both ends; None: the kernel's 1500.
    mtu: Option<u32>,
    created: bool,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::build(false, None, None)
    }

    /// A lab whose outer end lives in a namespace of its own too.
    pub fn isolated() -> Lab {
        Lab::build(true, None, None)
    }

    /// A lab whose `veth0` has interface index `index` in its namespace (an
    /// index that means another interface here).
    pub fn with_inner_index(index: u32) -> Lab {
        Lab::build(false, Some(index), None)
    }

    /// A lab with both ends at MTU `mtu`, set before they come up.
    pub fn with_mtu(mtu: u32) -> Lab {
        Lab::build(false, None, Some(mtu))
    }

    fn build(isolated: bool, inner_index: Option<u32>, mtu: Option<u32>) -> Lab {
        let (pid, n) = (pid(), next());
        let mut lab = Lab {
            ns: format!("xn{pid:x}x{n}"),
            outer: format!("xo{pid:x}x{n}"),
            outer_ns: isolated.then(|| format!("xm{pid:x}x{n}")),
            outer_ip: canonical(&format!("fd78:{pid:x}:{n:x}::1")),
            inner_ip: canonical(&format!("fd78:{pid:x}:{n:x}::2")),
            outer_mac: mac(pid, n, 1),
            inner_mac: mac(pid, n, 2),
            inner_index,
            mtu,
            created: false,
        };
        lab.create();
        lab
    }

    fn create(&mut self) {
        // Marked first: from here on Drop removes whatever exists.
        self.created = true;
        let (ns, out) = (self.ns.as_str(), self.outer.as_str());
        run("ip", &["netns", "add", ns]);
        if let Some(outer_ns) = &self.outer_ns {
            run("ip", &["netns", "add", outer_ns]);
        }
        match self.inner_index {
            None => self.outer_ip_cmd(&[
                "link",
                "add",
                out,
                "address",
                &self.outer_mac,
                "type",
                "veth",
                "peer",
                "name",
                "veth0",
                "address",
                &self.inner_mac,
                "netns",
                ns,
            ]),
            Some(index) => {
                // ip sets no index on a veth's peer: the pair is made inside
                // the namespace, and the outer end moved out to this one.
                assert!(self.outer_ns.is_none(), "an isolated lab with an inner index");
                run(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "link",
                        "add",
                        "veth0",
                        "index",
                        &index.to_string(),
                        "address",
                        &self.inner_mac,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        out,
                        "address",
                        &self.outer_mac,
                    ],
                );
                let here = std::process::id().to_string();
                run("ip", &["-n", ns, "link", "set", "dev", out, "netns", &here]);
            }
        }
        self.outer_ip_cmd(&["link", "set", "dev", out, "addrgenmode", "none"]);
        run("ip", &["-n", ns, "link", "set", "dev", "veth0", "addrgenmode", "none"]);
        if let Some(mtu) = self.mtu.map(|m| m.to_string()) {
            self.outer_ip_cmd(&["link", "set", "dev", out, "mtu", &mtu]);
            run("ip", &["-n", ns, "link", "set", "dev", "veth0", "mtu", &mtu]);
        }
        // MLD reports cannot be turned off; make them all go out at once.
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.veth0.mldv2_unsolicited_report_interval=1",
                "net.ipv6.conf.veth0.mldv1_unsolicited_report_interval=1",
            ],
        );
        // The same for the outer end, whose reports tracers of it see.
        self.outer_run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{out}.mldv2_unsolicited_report_interval=1"),
            &format!("net.ipv6.conf.{out}.mldv1_unsolicited_report_interval=1"),
        ]);
        self.outer_ip_cmd(&["addr", "add", &format!("{}/64", self.outer_ip), "dev", out, "nodad"]);
        run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{}/64", self.inner_ip), "dev", "veth0", "nodad"],
        );
        self.outer_ip_cmd(&[
            "neigh",
            "add",
            &self.inner_ip,
            "lladdr",
            &self.inner_mac,
            "dev",
            out,
            "nud",
            "permanent",
        ]);
        run(
            "ip",
            &[
                "-n",
                ns,
                "neigh",
                "add",
                &self.outer_ip,
                "lladdr",
                &self.outer_mac,
                "dev",
                "veth0",
                "nud",
                "permanent",
            ],
        );
        self.outer_ip_cmd(&["link", "set", "dev", out, "up"]);
        run("ip", &["-n", ns, "link", "set", "dev", "veth0", "up"]);
        self.settle();
    }

    /// `cmd` as run in the outer end's namespace.
    pub fn outer_command(&self, cmd: &str) -> Command {
        match &self.outer_ns {
            None => Command::new(cmd),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, cmd]);
                c
            }
        }
    }

    /// Run a command in the outer end's namespace; it must succeed.
    pub fn outer_run(&self, cmd: &[&str]) -> Output {
        let out = self.outer_command(cmd[0]).args(&cmd[1..]).output().expect("running a command");
        assert!(
            out.status.success(),
            "{} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn outer_ip_cmd(&self, args: &[&str]) {
        match &self.outer_ns {
            None => run("ip", args),
            Some(ns) => run("ip", &[&["-n", ns.as_str()], args].concat()),
        };
    }

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

    /// Wait until the start-up MLD reports are through (rx and tx counts steady).
    fn settle(&self) {
        let read = || {
            let out = self
                .outer_command("cat")
                .args(
                    ["rx_packets", "tx_packets"]
                        .map(|c| format!("/sys/class/net/{}/statistics/{c}", self.outer)),
                )
                .output()
                .expect("reading interface counters");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut last, mut since) = (read(), Instant::now());
        while Instant::now() < deadline && since.elapsed() < Duration::from_millis(200) {
            sleep(Duration::from_millis(10));
            let now = read();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }

    /// Ping the inner end from outside: replies arrive on the XDP interface.
    pub fn ping(&self, count: u32) -> bool {
        self.outer_command("ping")
            .args([
                "-6",
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.05",
                "-W",
                "1",
                &self.inner_ip,
            ])
            .output()
            .expect("running ping")
            .status
            .success()
    }

    /// Run a command inside the lab's namespace; it must succeed.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.ns];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Ping `target` from inside the lab; returns how many replies came back.
    pub fn ping_from_inside(&self, target: &str, count: u32) -> u32 {
        let count = count.to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-n", "-q", "-c", &count])
            .args(["-i", "0.05", "-W", "1", target])
            .output()
            .expect("running ping");
        received(&String::from_utf8_lossy(&out.stdout))
    }

    pub fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf").join(&self.outer)
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

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        // A program a test loaded inside takes its record and pins along
        // only through unload; the namespace's end goes with it either way.
        // (nsenter: under `ip netns exec` xdpctl refuses, bpffs being private.)
        let unload = |ns: &str, dev: &str| {
            let _ = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{ns}"))
                .args([XDPCTL, "-q", "unload", "--force", "--dev", dev])
                .output();
        };
        unload(&self.ns, "veth0");
        if let Some(outer_ns) = &self.outer_ns {
            unload(outer_ns, &self.outer);
            let _ = Command::new("ip").args(["netns", "del", outer_ns]).output();
            let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
            return;
        }
        let _ = Command::new(XDPCTL).args(["-q", "unload", "--dev", &self.outer]).output();
        let _ = std::fs::remove_dir_all(self.pin_dir());
        let _ = Command::new("ip").args(["link", "del", "dev", &self.outer]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// An IPv6 address as tools print it (RFC 5952): `fd78:1a:0::2` is `fd78:1a::2`.
fn canonical(addr: &str) -> String {
    addr.parse::<std::net::Ipv6Addr>().expect("an IPv6 address").to_string()
}

/// A locally administered MAC of lab `n` of process `pid`; `end` 1 outside, 2 inside.
fn mac(pid: u32, n: u32, end: u8) -> String {
    let [_, _, p1, p0] = pid.to_be_bytes();
    let [_, _, n1, n0] = n.to_be_bytes();
    format!("02:{p1:02x}:{p0:02x}:{n1:02x}:{n0:02x}:{end:02x}")
}

/// Replies counted in ping's summary ("10 packets transmitted, 5 received").
pub fn received(summary: &str) -> u32 {
    summary
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary in:\n{summary}"))
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

/// Removes a directory (pins, say) when dropped, also when a test fails.
pub struct RemoveDir<'a>(pub &'a Path);

impl Drop for RemoveDir<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

/// A scratch directory of this test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(unique("xdpctl-test-"));
        std::fs::create_dir_all(&dir).expect("creating a scratch dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

/// One's complement sum (RFC 1071) of `data` as big-endian 16-bit words, an
/// odd last byte padded with zero: the tests' own, independent of the BPF side.
/// A checksum is its complement; data that carries a valid one sums to 0xffff.
pub fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
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
