//! Program swaps under traffic (issue 19, item 5), shared by tests/upgrade.rs
//! and benches/upgrade.rs: while `xdpctl trafficgen` sends at a fixed rate
//! from inside a lab, `xdpctl load --force` swaps xdp_pass and xdp_drop on
//! the outer end in turn; then the frames the interface received (its rx
//! counter) are set against what the programs counted (PASS + DROP in the
//! pinned stats map).
#![allow(dead_code)] // the test and the bench each use their own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::lab::{sh, Lab, TempDir, XDPCTL};

/// What to swap, how often, under how much traffic.
pub struct Plan<'a> {
    pub swaps: usize,
    /// Frames per second trafficgen sends.
    pub rate: u64,
    /// The modes of xdp_pass and of xdp_drop (`--native-mode`, `--skb-mode`).
    pub modes: (&'a str, &'a str),
    /// `--reuse-maps` on every swap; without, each swap's counters start at 0.
    pub reuse_maps: bool,
    /// How each swap is made.
    pub via: Via,
}

/// `xdpctl load --force`, or `xdpctl apply` of a file naming the other program.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Load,
    Apply,
}

/// One run: frames in, frames counted.
#[derive(Debug)]
pub struct Tally {
    /// Frames trafficgen sent and the outer end received, by trafficgen.
    pub sent: u64,
    /// The outer end's rx counter (netlink stats64), after minus before.
    pub received: u64,
    pub pass: u64,
    pub drop: u64,
    /// The stats map's id before and after: the same map when counters carry over.
    pub map_ids: (u64, u64),
    /// The rate trafficgen reached (frames per second over its run).
    pub pps: f64,
    /// Wall seconds of each `xdpctl load`.
    pub swap_secs: Vec<f64>,
}

impl Tally {
    pub fn counted(&self) -> u64 {
        self.pass + self.drop
    }

    /// Frames received that no program counted; negative: counted twice.
    pub fn uncounted(&self) -> i64 {
        self.received as i64 - self.counted() as i64
    }
}

/// Run `plan` on `lab`'s outer end, which must have nothing attached.
pub fn under_traffic(lab: &Lab, plan: &Plan) -> Result<Tally> {
    let dev = lab.outer.as_str();
    // With GRO on, the veth keeps taking frames while no program is
    // attached (it would drop them at the sender otherwise), so a moment
    // without one shows as frames received but not counted.
    sh("ethtool", &["-K", dev, "gro", "on"])?;
    let config = TempDir::new();
    load(dev, "xdp_pass", plan.modes.0, false)?;
    let (rx0, before) = (rx_packets(dev)?, stats(dev)?);
    let mut traffic = Traffic::start(lab, plan.rate)?;
    let mut swap_secs = Vec::with_capacity(plan.swaps);
    for i in 1..=plan.swaps {
        let (prog, mode) =
            if i % 2 == 1 { ("xdp_drop", plan.modes.1) } else { ("xdp_pass", plan.modes.0) };
        let start = Instant::now();
        match plan.via {
            Via::Load => load(dev, prog, mode, plan.reuse_maps)?,
            Via::Apply => apply(&config, dev, prog, mode, plan.reuse_maps)?,
        }
        swap_secs.push(start.elapsed().as_secs_f64());
    }
    let report = traffic.stop()?;
    let rx1 = settled_rx(dev)?;
    let after = stats(dev)?;
    let count = |v: &Value, path: &[&str]| -> Result<u64> {
        path.iter().fold(v, |v, k| &v[*k]).as_u64().with_context(|| format!("{path:?} in {v}"))
    };
    let packets = |v: &Value, action: &str| count(v, &["actions", action, "packets"]);
    let received = count(&report, &["received", "packets"])?;
    let sent = count(&report, &["sent", "packets"])?;
    if sent != received {
        bail!("trafficgen sent {sent} frames, {received} arrived: {report}");
    }
    let period = report["period"].as_f64().context("trafficgen's period")?;
    let map_ids = (count(&before, &["map_id"])?, count(&after, &["map_id"])?);
    // A new map counts from 0.
    let since = |action: &str| -> Result<u64> {
        let base = if map_ids.0 == map_ids.1 { packets(&before, action)? } else { 0 };
        Ok(packets(&after, action)?.saturating_sub(base))
    };
    Ok(Tally {
        sent,
        received: rx1 - rx0,
        pass: since("XDP_PASS")?,
        drop: since("XDP_DROP")?,
        map_ids,
        pps: sent as f64 / period,
        swap_secs,
    })
}

/// `xdpctl load` of `prog` on `dev`, in place of what is there.
fn load(dev: &str, prog: &str, mode: &str, reuse_maps: bool) -> Result<()> {
    let mut args = vec!["-q", "load", "--dev", dev, "--progname", prog, mode, "--force"];
    if reuse_maps {
        args.push("--reuse-maps");
    }
    sh(XDPCTL, &args).map(drop)
}

/// `xdpctl apply` of a file that wants `prog` on `dev`, written in `dir`.
fn apply(dir: &TempDir, dev: &str, prog: &str, mode: &str, reuse_maps: bool) -> Result<()> {
    let mode = mode.trim_start_matches("--").trim_end_matches("-mode");
    let file = dir.0.join("xdpctl.toml");
    let text = format!(
        "[[attach]]\ndev = \"{dev}\"\nprogram = \"{prog}\"\nmode = \"{mode}\"\nreuse_maps = {reuse_maps}\n"
    );
    std::fs::write(&file, text).context("writing the apply file")?;
    let file = file.to_str().context("the apply file's path")?;
    sh(XDPCTL, &["-q", "apply", "-f", file]).map(drop)
}

/// One `xdpctl --json stats` sample of `dev`.
fn stats(dev: &str) -> Result<Value> {
    let out = sh(XDPCTL, &["--json", "stats", "--dev", dev, "--count", "1", "--interval", "0.01"])?;
    let out = String::from_utf8_lossy(&out.stdout);
    let line = out.lines().last().context("no stats sample")?;
    serde_json::from_str(line).with_context(|| format!("stats JSON: {line}"))
}

/// `dev`'s received frames, from netlink's stats64 as `ip -s link` shows them.
pub fn rx_packets(dev: &str) -> Result<u64> {
    let out = sh("ip", &["-j", "-s", "link", "show", "dev", dev])?;
    let v: Value = serde_json::from_slice(&out.stdout).context("ip -j -s link JSON")?;
    v[0]["stats64"]["rx"]["packets"].as_u64().with_context(|| format!("rx packets of {dev}"))
}

/// The rx counter once the frames in flight are in: the same for 100 ms.
fn settled_rx(dev: &str) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = rx_packets(dev)?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(100) {
        if Instant::now() > deadline {
            bail!("the rx counter of {dev} did not settle after the traffic stopped");
        }
        sleep(Duration::from_millis(10));
        let now = rx_packets(dev)?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(last)
}

/// `xdpctl trafficgen` from inside the lab out of veth0, at a fixed rate
/// until stopped; killed when dropped.
struct Traffic {
    child: Child,
    lines: Receiver<String>,
}

impl Traffic {
    /// Start it and wait for its first progress line: frames are flowing.
    fn start(lab: &Lab, rate: u64) -> Result<Traffic> {
        let rate = rate.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns, XDPCTL, "--json", "trafficgen", "--dev", "veth0"])
            .args(["--rate", &rate, "--interval", "0.05"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting xdpctl trafficgen")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut traffic = Traffic { child, lines };
        match traffic.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(_) => Ok(traffic),
            Err(_) => {
                let _ = traffic.child.kill();
                let _ = traffic.child.wait();
                bail!("trafficgen sent nothing: {}", traffic.stderr())
            }
        }
    }

    /// Ctrl-C; its final report.
    fn stop(&mut self) -> Result<Value> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).context("SIGINT")?;
        let status = self.child.wait().context("waiting for trafficgen")?;
        // The reader thread ends at EOF, which closes the channel.
        let last = self.lines.iter().filter(|l| l.contains("\"final\":true")).last();
        match (status.success(), last) {
            (true, Some(line)) => serde_json::from_str(&line).context("trafficgen's report"),
            _ => bail!("trafficgen failed ({status}): {}", self.stderr()),
        }
    }

    /// What it wrote to stderr; only once it has exited (a read blocks before).
    fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut err = String::new();
        if let Some(e) = self.child.stderr.take() {
            let _ = e.take(64 * 1024).read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
