//! `xdpctl stats`: per-action packets, pps, bytes and Mbit/s read from the pinned
//! `xdp_stats_map` by a separate process (basic03-04), following reloads.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::cmd::stats_all::{self, Fields};
use crate::escape;
use crate::net::iface;
use crate::obj::statsmap::{StatsMap, MAP_NAME};
use crate::output::Output;
use crate::sampler::{self, Rate, Tick};
use crate::stop::Stop;
use crate::xdp::bpffs;
use crate::xdp::ifstate::IfState;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface whose pinned stats to read
    #[arg(short, long, value_name = "IF", required_unless_present = "all")]
    pub dev: Option<String>,
    /// Every interface running a program xdpctl loaded: one table (NDJSON
    /// with --json: one object per interface per sample)
    #[arg(long, conflicts_with_all = ["dev", "pin_dir"])]
    pub all: bool,
    #[command(flatten)]
    pub sampling: sampler::Args,
    /// Read the map pinned here instead of where `load` pinned it
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let Some(dev) = args.dev.as_deref().filter(|_| !args.all) else {
        return stats_all::run(&args.sampling, out);
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
    let mut prev = map.reading()?;
    let mut waiting = false;
    args.sampling.run(&stop, |_| {
        // Re-open every time: a reload pins a new map under the same name.
        match StatsMap::open(&path) {
            Ok(fresh) if fresh.id != map.id => {
                out.note(&format!(
                    "{MAP_NAME} changed: map id {} -> {} (program reloaded); restarting counters",
                    map.id, fresh.id
                ));
                map = fresh;
                prev = map.reading()?;
                waiting = false;
                return Ok(Tick::Skipped);
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
                return Ok(Tick::Skipped);
            }
            Err(e) => return Err(e),
        }
        let cur = map.reading()?;
        let (period, rows) = cur.rates_since(&prev);
        if out.json {
            let actions = rows.into_iter().collect();
            let fields = Fields { ifname: &dev.name, ifindex: dev.index, map_id: map.id, actions };
            out.json(&sampler::Sample::new(period, fields))?;
        } else {
            out.print(&table(period, &rows))?;
        }
        prev = cur;
        Ok(Tick::Printed)
    })
}

/// The tutorial's table: totals, rates over the period, and the period itself.
fn table(period: f64, rows: &[(String, Rate)]) -> String {
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
