//! `xdpctl stats`: per-action packets, pps, bytes and Mbit/s read from the pinned
//! `xdp_stats_map` by a separate process (basic03-04), following reloads.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::cmd::stats_all::{self, Fields};
use crate::escape;
use crate::net::iface;
use crate::obj::statsmap::{StatsMap, MAP_NAME};
use crate::output::Output;
use crate::sampler::{self, si, Rate, Tick};
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
    let mut view = View { out, drawn: 0 };
    // The totals at once; rates from the next sample on.
    let (_, totals) = prev.rates_since(&prev);
    if out.json {
        let actions = totals.into_iter().collect();
        let fields = Fields { ifname: &dev.name, ifindex: dev.index, map_id: map.id, actions };
        out.json(&sampler::Sample::new(0.0, fields))?;
    } else {
        view.show(&table(None, &totals))?;
    }
    let rest =
        sampler::Args { count: args.sampling.count.map(|n| n.saturating_sub(1)), ..args.sampling };
    let mut waiting = false;
    rest.run(&stop, |_| {
        // Pins outlive a deleted interface, and its map then reads the
        // same forever: the end of these stats, which the exit status tells.
        if !iface::exists(dev.index)? {
            bail!(
                "{} (ifindex {}) is gone: deleted, or moved to another namespace; its stats \
                 end here",
                escape::text(&dev.name),
                dev.index
            );
        }
        // Re-open every time: a reload pins a new map under the same name.
        match StatsMap::open(&path) {
            Ok(fresh) if fresh.id != map.id => {
                view.note(&format!(
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
                    view.note(&format!(
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
            view.show(&table(Some(period), &rows))?;
        }
        prev = cur;
        Ok(Tick::Printed)
    })
}

/// Where the tables go: on a terminal each replaces the last in place; in
/// a pipe they follow one another, a blank line apart.
struct View {
    out: Output,
    /// Lines of the table on screen, to go back up over.
    drawn: usize,
}

impl View {
    fn show(&mut self, table: &str) -> Result<()> {
        if self.out.live() {
            self.out.redraw(table, self.drawn)?;
            self.drawn = table.lines().count();
            Ok(())
        } else {
            self.out.print(&format!("{table}\n"))
        }
    }

    /// A note between tables: it stays, the next table goes below it.
    fn note(&mut self, msg: &str) {
        self.out.note(msg);
        self.drawn = 0;
    }
}

/// The tutorial's table, for people: totals, rates over the period (None:
/// the first sample, totals only), the period once in the header, units
/// humanised to fit 80 columns.
fn table(period: Option<f64>, rows: &[(String, Rate)]) -> String {
    let when = period.map_or_else(|| "totals only".to_string(), |p| format!("period {p:.2} s"));
    let mut text = format!(
        "{:<12} {:>9} {:>11} {:>10} {:>13}   {when}\n",
        "XDP-action", "packets", "rate", "bytes", "bandwidth"
    );
    for (action, r) in rows {
        let (pps, bps) = match period {
            Some(_) => (format!("{} pps", si(r.pps)), format!("{} bit/s", si(r.bps))),
            None => ("-".to_string(), "-".to_string()),
        };
        let (packets, bytes) = (si(r.packets as f64), format!("{} B", si(r.bytes as f64)));
        text.push_str(&format!("{action:<12} {packets:>9} {pps:>11} {bytes:>10} {bps:>13}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_fits_80_columns_with_the_period_once() {
        let big =
            Rate { packets: 123_456_789_012, bytes: 987_654_321_098_765, pps: 1.5e7, bps: 9.9e10 };
        let small = Rate { packets: 5, bytes: 520, pps: 2.0, bps: 2080.0 };
        let rows = vec![("XDP_REDIRECT".to_string(), big), ("XDP_PASS".to_string(), small)];
        let text = table(Some(2.0), &rows);
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert_eq!(text.matches("period").count(), 1, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("period 2.00 s"), "{text}");
        assert!(lines[1].contains(" 123G ") && lines[1].contains(" 15.0M pps "), "{text}");
        assert!(lines[1].ends_with(" 99.0G bit/s"), "{text}");
        assert!(lines[2].contains(" 5 ") && lines[2].contains(" 520 B "), "{text}");
        assert!(lines[2].contains(" 2 pps") && lines[2].ends_with(" 2.08K bit/s"), "{text}");

        // The first sample: totals, no rates yet.
        let text = table(None, &rows);
        assert!(text.lines().next().unwrap().ends_with("totals only"), "{text}");
        assert!(text.lines().nth(2).unwrap().contains(" 520 B "), "{text}");
        assert!(!text.contains("pps") && !text.contains("bit/s"), "{text}");
    }
}
