//! The lab shared by tests and benches: network namespaces and veth pairs
//! with unique names, each an RAII guard that removes what it made when
//! dropped (also when a test panics), and `Lab`, the tests' usual pair (a
//! namespace with `veth0` inside, its peer outside). Benches include this
//! file with `#[path]`; testenv/testenv.sh is the same lab for people.
#![allow(dead_code)] // each test binary and bench uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

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
    sh(cmd, args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Run a command; its stderr becomes the error if it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Moves the calling thread (and the commands it spawns from then on) into
/// a network namespace of its own, which goes when they all have: nothing
/// made in it outlives the test or bench. `ipv6: false` turns IPv6 off on
/// every interface made afterwards, so only the frames sent flow.
pub fn private_netns(ipv6: bool) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .context("unshare(CLONE_NEWNET) for a private lab (root needed)")?;
    if !ipv6 {
        std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
            .context("turning IPv6 off in the lab")?;
    }
    Ok(())
}

/// A network namespace, deleted when dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn add(name: &str) -> Result<Netns> {
        sh("ip", &["netns", "add", name])?;
        Ok(Netns(name.to_string()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A veth pair: `name` in namespace `ns` (None: this one), `peer` in
/// `peer_ns` (None: beside it). `add` makes it; `add_up` also brings both
/// ends up and returns a guard that deletes the pair when dropped.
#[derive(Default)]
pub struct Veth<'a> {
    pub ns: Option<&'a str>,
    pub name: &'a str,
    pub mac: Option<&'a str>,
    pub peer: &'a str,
    pub peer_mac: Option<&'a str>,
    pub peer_ns: Option<&'a str>,
}

impl Veth<'_> {
    /// `ip` in the namespace of end `name`.
    fn ip(&self, args: &[&str]) -> Result<Output> {
        match self.ns {
            None => sh("ip", args),
            Some(ns) => sh("ip", &[&["-n", ns], args].concat()),
        }
    }

    pub fn add(&self) -> Result<()> {
        let mut args = vec!["link", "add", self.name];
        if let Some(mac) = self.mac {
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", self.peer]);
        if let Some(mac) = self.peer_mac {
            args.extend(["address", mac]);
        }
        if let Some(ns) = self.peer_ns {
            args.extend(["netns", ns]);
        }
        self.ip(&args).map(drop)
    }

    pub fn add_up(&self) -> Result<LinkGuard> {
        self.add()?;
        let link = LinkGuard { ns: self.ns.map(str::to_string), name: self.name.to_string() };
        self.ip(&["link", "set", "dev", self.name, "up"])?;
        let peer_ns = self.peer_ns.or(self.ns);
        match peer_ns {
            None => sh("ip", &["link", "set", "dev", self.peer, "up"])?,
            Some(ns) => sh("ip", &["-n", ns, "link", "set", "dev", self.peer, "up"])?,
        };
        Ok(link)
    }
}

/// An interface (with a veth, the pair), deleted when dropped.
pub struct LinkGuard {
    pub ns: Option<String>,
    pub name: String,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.ns {
            cmd.args(["-n", ns]);
        }
        let _ = cmd.args(["link", "del", "dev", &self.name]).output();
    }
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
            None => Veth {
                ns: self.outer_ns.as_deref(),
                name: out,
                mac: Some(&self.outer_mac),
                peer: "veth0",
                peer_mac: Some(&self.inner_mac),
                peer_ns: Some(ns),
            }
            .add()
            .expect("the lab's veth pair"),
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
