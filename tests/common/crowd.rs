//! A crowd: one network namespace of ours with many veth pairs
//! `<name>a<i>`/`<name>b<i>`, for what xdpctl does on a host with many
//! interfaces. Shared by tests/scale.rs and benches/scale.rs (which include
//! this file with `#[path]`). Dropped, it deletes the namespace without
//! waiting for the kernel to free the devices, and removes xdpctl's pin
//! directories and records of them.
#![allow(dead_code)] // each test binary and bench uses its own subset

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

use super::lab::sh;

pub struct Crowd {
    pub name: String,
    /// The namespace's cookie: xdpctl's records of its interfaces are
    /// `/run/xdpctl/n<cookie>-i<ifindex>`.
    pub cookie: u64,
    ns: File,
    /// The namespace of the thread that made the crowd, where `within`
    /// returns to.
    home: File,
    pairs: Cell<usize>,
}

impl Crowd {
    /// The namespace `name` (the tests' `unique`, say), no pairs yet.
    pub fn new(name: &str) -> Result<Crowd> {
        let home =
            File::open("/proc/thread-self/ns/net").context("opening this network namespace")?;
        sh("ip", &["netns", "add", name])?;
        let opened = File::open(format!("/run/netns/{name}"))
            .context("opening the crowd namespace")
            .and_then(|ns| Ok((xdpctl::net::netns::cookie_of(&ns)?, ns)));
        let (cookie, ns) = match opened {
            Ok(it) => it,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
                return Err(e);
            }
        };
        let crowd = Crowd { name: name.to_string(), cookie, ns, home, pairs: Cell::new(0) };
        Ok(crowd)
    }

    /// Where xdpctl pins for `dev` of the crowd by default: a namespace
    /// other than the initial one has a directory of its own, by cookie.
    pub fn pin_dir(&self, dev: &str) -> std::path::PathBuf {
        Path::new("/sys/fs/bpf").join(format!("xdpctl-netns-{}", self.cookie)).join(dev)
    }

    /// The `a` end of pair `i`.
    pub fn dev(&self, i: usize) -> String {
        format!("{}a{i}", self.name)
    }

    /// Pairs 0..`size`, those missing made in one `ip -batch`; the indices
    /// of the new ones.
    pub fn add_pairs(&self, size: usize) -> Result<Range<usize>> {
        let from = self.pairs.get();
        if size > from {
            // Up, as a host's interfaces are: a veth that never went up has
            // the noop qdisc, which answers tc's queries (bpftool net asks
            // them of every interface) with less than a host would.
            self.batch((from..size).flat_map(|i| {
                [
                    format!("link add {0}a{i} type veth peer name {0}b{i}", self.name),
                    format!("link set {0}a{i} up", self.name),
                    format!("link set {0}b{i} up", self.name),
                ]
            }))?;
            self.pairs.set(size);
        }
        Ok(from..size.max(from))
    }

    /// Pairs up to `size`, with `xdpctl` loading its default program
    /// (xdp_pass) in skb mode on each new `a` end.
    pub fn grow(&self, size: usize, xdpctl: &str) -> Result<()> {
        let new = self.add_pairs(size)?;
        self.within(|| {
            for i in new {
                sh(xdpctl, &["-q", "load", "--dev", &self.dev(i), "--skb-mode"])?;
            }
            Ok(())
        })
    }

    /// One more pair, `<name>s`/`<name>t`, apart from the numbered ones;
    /// the name of its `s` end.
    pub fn spare(&self) -> Result<String> {
        self.batch(std::iter::once(format!("link add {0}s type veth peer name {0}t", self.name)))?;
        Ok(format!("{}s", self.name))
    }

    /// Run `f` with this thread (and the commands it starts) in the crowd's
    /// namespace; back home afterwards.
    pub fn within<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        setns(self.ns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering the crowd")?;
        let result = f();
        setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET).context("leaving the crowd")?;
        result
    }

    fn batch(&self, lines: impl Iterator<Item = String>) -> Result<()> {
        let text: String = lines.map(|l| l + "\n").collect();
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("running ip -batch")?;
        let mut stdin = child.stdin.take().context("ip's stdin")?;
        stdin.write_all(text.as_bytes()).context("writing to ip -batch")?;
        drop(stdin);
        let status = child.wait().context("waiting for ip -batch")?;
        if !status.success() {
            bail!("ip -batch failed: {status}");
        }
        Ok(())
    }

    /// Whether `entry` (a name under /sys/fs/bpf) is the pin directory of
    /// one of our `a` ends or the spare.
    fn pins_of_ours(&self, entry: &str) -> bool {
        entry.strip_prefix(self.name.as_str()).is_some_and(|rest| {
            rest == "s"
                || rest
                    .strip_prefix('a')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        // Deleting the namespace returns at once; its devices (and the
        // programs attached to them) go in the background.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        if let Some(home) = self.pin_dir("x").parent() {
            let _ = std::fs::remove_dir_all(home);
        }
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
            for e in entries.flatten() {
                if self.pins_of_ours(&e.file_name().to_string_lossy()) {
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
