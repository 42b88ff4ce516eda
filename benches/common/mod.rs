//! Shared by the benchmark drivers; each uses part of it. The lab, the crowd,
//! the frame builder and the swaps under traffic are the tests' own.
#![allow(dead_code)]

#[path = "../../tests/common/crowd.rs"]
pub mod crowd;
#[path = "../../tests/common/frame.rs"]
pub mod frame;
#[path = "../../tests/common/lab.rs"]
pub mod lab;
#[path = "../../tests/common/swaps.rs"]
pub mod swaps;

use std::io::{BufRead, BufReader, Read};
use std::mem::MaybeUninit;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xdpctl::io::trafficgen::{Generator, Setup};
use xdpctl::net::iface::Iface;

/// The xdpctl under test: `$XDPCTL` (as `make bench` sets it), else the
/// one cargo built beside this bench.
pub fn xdpctl() -> String {
    std::env::var("XDPCTL").unwrap_or_else(|_| lab::XDPCTL.into())
}

/// Mean and its standard error.
pub struct Mean {
    pub mean: f64,
    pub stderr: f64,
}

impl Mean {
    pub fn of(values: impl Iterator<Item = f64>) -> Mean {
        let v: Vec<f64> = values.collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Mean { mean, stderr: (var / n).sqrt() }
    }
}

/// Run `cmd`; its stderr becomes the error if it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Result<()> {
    lab::sh(cmd, args).map(drop)
}

pub fn ip(args: &[&str]) -> Result<()> {
    sh("ip", args)
}

/// Pin this process (the live-frames sender) to `cpu`; the tools under test
/// run on the other one.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(cpu).context("CPU set")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
        .with_context(|| format!("pinning the sender to CPU {cpu} (the benchmark needs 2 CPUs)"))
}

/// The programs of the object at `path`, loaded for the life of the process
/// (benchmarks use them throughout); `take` hands them out by name.
pub struct Programs {
    path: String,
    progs: Vec<libbpf_rs::ProgramMut<'static>>,
}

impl Programs {
    pub fn load(path: &str) -> Result<Programs> {
        let object: &'static mut libbpf_rs::Object = Box::leak(Box::new(
            libbpf_rs::ObjectBuilder::default()
                .open_file(path)
                .with_context(|| format!("opening {path}"))?
                .load()
                .with_context(|| format!("loading {path}"))?,
        ));
        Ok(Programs { path: path.to_string(), progs: object.progs_mut().collect() })
    }

    pub fn take(&mut self, name: &str) -> Result<libbpf_rs::ProgramMut<'static>> {
        let at = self
            .progs
            .iter()
            .position(|p| p.name() == name)
            .with_context(|| format!("{name} in {}", self.path))?;
        Ok(self.progs.swap_remove(at))
    }
}

/// `xdpctl trafficgen`'s generator, sending `frame` out of `dev` as it is
/// (one fixed port: the program leaves the frame alone), for the life of the
/// process.
pub fn generator(dev: &str, frame: &[u8]) -> Result<Generator<'static>> {
    let index = nix::net::if_::if_nametoindex(dev).with_context(|| format!("ifindex of {dev}"))?;
    let dev = Iface { name: dev.to_string(), index };
    let setup = Setup { dev: &dev, frame, udp_offset: 0, dst_ports: (0, 0) };
    Generator::new(&setup, Box::leak(Box::new(MaybeUninit::uninit())))
}

/// A tool under test running on a CPU of its own, its stderr read on a
/// thread so it never blocks.
pub struct Proc {
    child: Child,
    stderr: Receiver<String>,
}

impl Proc {
    /// Start `args` on `cpu` and wait (10 s at most) until a line of its
    /// stderr contains `ready`. The error carries what it printed instead.
    pub fn start(cpu: &str, args: &[&str], ready: &str) -> Result<Proc> {
        let mut child = Command::new("taskset")
            .args(["-c", cpu])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", args[0]))?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(ready) => return Ok(Proc { child, stderr: rx }),
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{} did not start: {}", args[0], seen.join("\n"));
                }
            }
        }
    }

    /// Ctrl-C; then how it exited, its stdout and the rest of its stderr.
    pub fn stop(&mut self) -> Result<(ExitStatus, String, String)> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).context("SIGINT")?;
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).context("reading stdout")?;
        }
        let status = self.child.wait().context("waiting for the tool")?;
        let err: Vec<String> = self.stderr.try_iter().collect();
        Ok((status, out, err.join("\n")))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a ratio (xdpctl / peer) should stay below or reach its goal.
#[derive(Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// Reported, no goal.
    None,
}

/// One line of benches/results.json: xdpctl's figure beside the peer's from
/// the same run, and their ratio.
#[derive(serde::Serialize)]
pub struct Row {
    pub benchmark: &'static str,
    pub case: String,
    pub unit: &'static str,
    pub xdpctl: f64,
    pub peer_name: String,
    pub peer: f64,
    pub ratio: f64,
    pub goal: Goal,
    pub met: Option<bool>,
    /// Runs of each side (alternating).
    pub runs: usize,
}

impl Row {
    pub fn new(benchmark: &'static str, case: impl Into<String>, unit: &'static str) -> Row {
        Row {
            benchmark,
            case: case.into(),
            unit,
            xdpctl: 0.0,
            peer_name: String::new(),
            peer: 0.0,
            ratio: 0.0,
            goal: Goal::None,
            met: None,
            runs: 0,
        }
    }

    /// The figures, with the ratio taken from them.
    pub fn figures(self, xdpctl: f64, peer_name: impl Into<String>, peer: f64) -> Row {
        Row { xdpctl, peer_name: peer_name.into(), peer, ratio: xdpctl / peer, ..self }
    }

    /// A ratio computed otherwise (say, the mean of paired ratios).
    pub fn ratio(self, ratio: f64) -> Row {
        Row { ratio, ..self }
    }

    pub fn goal(self, goal: Goal, runs: usize) -> Row {
        let met = match goal {
            Goal::AtMost(g) => Some(self.ratio <= g),
            Goal::AtLeast(g) => Some(self.ratio >= g),
            Goal::None => None,
        };
        Row { goal, met, runs, ..self }
    }
}

/// Write `rows` to $XDPCTL_BENCH_JSON/`name`.json, where benches/run.sh
/// gathers them into benches/results.json; nothing if that is unset.
pub fn record(name: &str, rows: &[Row]) -> Result<()> {
    let Ok(dir) = std::env::var("XDPCTL_BENCH_JSON") else { return Ok(()) };
    let path = std::path::Path::new(&dir).join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(rows).context("encoding rows")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The median of `values` (the upper one of an even count).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What `ip ... obj` and xdp-loader create under bpffs on first use:
/// symlinks first, directories last.
const TOOL_BPFFS_ENTRIES: [&str; 4] =
    ["/sys/fs/bpf/ip", "/sys/fs/bpf/xdp", "/sys/fs/bpf/tc/globals", "/sys/fs/bpf/tc"];

/// Removes, when dropped, those of TOOL_BPFFS_ENTRIES that did not exist
/// when it was made: the peers' leftovers, never the user's.
pub struct ToolDirs(Vec<&'static str>);

impl ToolDirs {
    pub fn snapshot() -> ToolDirs {
        ToolDirs(
            TOOL_BPFFS_ENTRIES
                .into_iter()
                .filter(|e| std::fs::symlink_metadata(e).is_err())
                .collect(),
        )
    }
}

impl Drop for ToolDirs {
    fn drop(&mut self) {
        for entry in &self.0 {
            let _ = std::fs::remove_file(entry).or_else(|_| std::fs::remove_dir_all(entry));
        }
    }
}
