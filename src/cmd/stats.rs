//! `xdpctl stats`: per-action packets, pps, bytes and Mbit/s read from the pinned
//! `xdp_stats_map` by a separate process (basic03-04), following reloads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::bpffs;
use crate::cmd::{parse_interval, stats_all};
use crate::escape;
use crate::iface;
use crate::ifstate::IfState;
use crate::output::{unix_time, Output};
use crate::skel::DataRec;
use crate::statsmap::{action_name, StatsMap, MAP_NAME};
use crate::stop::Stop;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface whose pinned stats to read
    #[arg(short, long, value_name = "IF", required_unless_present = "all")]
    pub dev: Option<String>,
    /// Every interface running a program xdpctl loaded: one table (NDJSON
    /// with --json: one object per interface per sample)
    #[arg(long, conflicts_with_all = ["dev", "pin_dir"])]
    pub all: bool,
    /// Seconds between samples
    #[arg(short, long, default_value_t = 2.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print this many samples, then exit
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,
    /// Read the map pinned here instead of where `load` pinned it
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

/// One reading of every action slot.
pub(crate) struct Sample {
    pub at: Instant,
    pub recs: Vec<DataRec>,
}

#[derive(Serialize)]
pub(crate) struct ActionRate {
    pub packets: u64,
    pub bytes: u64,
    pub pps: f64,
    pub bps: f64,
}

#[derive(Serialize)]
struct JsonSample<'a> {
    dev: &'a str,
    map_id: u32,
    /// Unix time of the sample, seconds.
    time: f64,
    period: f64,
    actions: BTreeMap<String, ActionRate>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let Some(dev) = args.dev.as_deref().filter(|_| !args.all) else {
        return stats_all::run(args.interval, args.count, out);
    };
    let dev = iface::resolve(dev)?;
    bpffs::ensure_mounted()?;
    let state = IfState::read(&dev)?;
    let dir = state.pin_dir(args.pin_dir.as_deref())?;
    let path = dir.join(MAP_NAME);
    if let (false, Some(att)) = (path.exists(), state.attached.first()) {
        bail!(
            "{} runs {} (id {}, {} mode), which keeps no stats: it has no {MAP_NAME} pinned \
             in {}; load a program that counts per action (the shipped ones do), or give \
             --pin-dir where its maps are pinned",
            dev.name,
            state.name_of(att.prog_id),
            att.prog_id,
            att.mode,
            dir.display()
        );
    }
    if !path.exists() {
        bail!(
            "no {MAP_NAME} pinned in {}; load a program first: `xdpctl load --dev {}`",
            dir.display(),
            dev.name
        );
    }
    let mut map = StatsMap::open(&path)?;

    let stop = Stop::install()?;

    out.info(format!(
        "Collecting stats from {} (map id {}); Ctrl-C stops",
        escape::path(&path),
        map.id
    ));
    let interval = Duration::from_secs_f64(args.interval);
    let mut prev = Sample { at: Instant::now(), recs: map.read()? };
    let mut printed = 0u64;
    let mut waiting = false;
    while args.count.is_none_or(|n| printed < n) {
        if !stop.sleep(interval) {
            break;
        }
        // Re-open every time: a reload pins a new map under the same name.
        match StatsMap::open(&path) {
            Ok(fresh) if fresh.id != map.id => {
                out.note(&format!(
                    "{MAP_NAME} changed: map id {} -> {} (program reloaded); restarting counters",
                    map.id, fresh.id
                ));
                map = fresh;
                prev = Sample { at: Instant::now(), recs: map.read()? };
                waiting = false;
                continue;
            }
            Ok(_) => waiting = false,
            Err(_) if !path.exists() => {
                if !waiting {
                    out.note(&format!(
                        "{} is gone (program unloaded?); waiting for it",
                        escape::path(&path)
                    ));
                    waiting = true;
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let cur = Sample { at: Instant::now(), recs: map.read()? };
        let (period, rows) = rates(&prev, &cur);
        if out.json {
            out.json(&json_sample(&dev.name, map.id, period, rows))?;
        } else {
            out.print(&table(period, &rows))?;
        }
        prev = cur;
        printed += 1;
    }
    Ok(())
}

fn rate(prev: u64, cur: u64, period: f64) -> f64 {
    if period > 0.0 {
        cur.saturating_sub(prev) as f64 / period
    } else {
        0.0
    }
}

/// Each action's totals and its rates over the period between two samples.
pub(crate) fn rates(prev: &Sample, cur: &Sample) -> (f64, Vec<(String, ActionRate)>) {
    let period = cur.at.duration_since(prev.at).as_secs_f64();
    let rows = cur
        .recs
        .iter()
        .zip(&prev.recs)
        .enumerate()
        .map(|(key, (c, p))| {
            let r = ActionRate {
                packets: c.rx_packets,
                bytes: c.rx_bytes,
                pps: rate(p.rx_packets, c.rx_packets, period),
                bps: rate(p.rx_bytes, c.rx_bytes, period) * 8.0,
            };
            (action_name(key as u32), r)
        })
        .collect();
    (period, rows)
}

fn json_sample(
    dev: &str,
    map_id: u32,
    period: f64,
    rows: Vec<(String, ActionRate)>,
) -> JsonSample<'_> {
    let time = unix_time();
    JsonSample { dev, map_id, time, period, actions: rows.into_iter().collect() }
}

/// The tutorial's table: totals, rates over the period, and the period itself.
fn table(period: f64, rows: &[(String, ActionRate)]) -> String {
    let mut text = String::from("XDP-action\n");
    for (action, r) in rows {
        text.push_str(&format!(
            "{action:<12} {:>11} pkts ({:>10.0} pps) {:>11.0} Kbytes ({:>6.0} Mbits/s) period:{period:.6}\n",
            r.packets,
            r.pps,
            r.bytes as f64 / 1000.0,
            r.bps / 1e6,
        ));
    }
    text.push('\n');
    text
}
