//! `xdpctl stats --all`: the per-action counters of every interface running
//! a program xdpctl loaded, in one table per sample (NDJSON with --json: one
//! object per interface per sample). The interfaces come from one snapshot
//! of the namespace, so a sample costs one map read per interface.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::escape;
use crate::net::iface::Iface;
use crate::obj::statsmap::{Reading, StatsMap, MAP_NAME};
use crate::output::Output;
use crate::sampler::{self, Rate, Tick};
use crate::stop::Stop;
use crate::xdp::bpffs;
use crate::xdp::ifstate::Namespace;

/// One interface's stats map and its last reading.
struct Source {
    dev: Iface,
    path: PathBuf,
    map: StatsMap,
    prev: Reading,
}

/// One interface's fields in the sampler's envelope, for `stats` and
/// `stats --all` alike.
#[derive(Serialize)]
pub(crate) struct Fields<'a> {
    pub ifname: &'a str,
    pub ifindex: u32,
    pub map_id: u32,
    pub actions: BTreeMap<String, Rate>,
}

pub fn run(sampling: &sampler::Args, out: Output) -> Result<()> {
    bpffs::ensure_mounted()?;
    let mut sources = open_all(&Namespace::read(true)?, out)?;
    if sources.is_empty() {
        bail!(
            "no interface here runs a program xdpctl loaded with {MAP_NAME} pinned; \
             `xdpctl status` shows what runs where, `xdpctl load --dev IF` loads one"
        );
    }
    let stop = Stop::install()?;
    out.info(format!("Collecting stats from {} interfaces; Ctrl-C stops", sources.len()));
    sampling.run(&stop, |_| {
        let mut text = table_header();
        for s in &mut sources {
            // A reload pins a new map under the same name: start over there.
            match StatsMap::open_fitting(&s.path) {
                Ok(Ok(fresh)) if fresh.id != s.map.id => {
                    out.note(&format!(
                        "{}: {MAP_NAME} changed: map id {} -> {} (program reloaded); \
                         restarting its counters",
                        escape::text(&s.dev.name),
                        s.map.id,
                        fresh.id
                    ));
                    s.map = fresh;
                    s.prev = s.map.reading()?;
                    continue;
                }
                Ok(Ok(_)) => {}
                // Reloaded from an object whose map of that name is no stats
                // map: nothing to show for it.
                Ok(Err(_)) => continue,
                // Unloaded meanwhile: nothing to show for it this time.
                Err(_) if !s.path.exists() => continue,
                Err(e) => return Err(e),
            }
            let cur = s.map.reading()?;
            let (period, rows) = cur.rates_since(&s.prev);
            if out.json {
                let fields = Fields {
                    ifname: &s.dev.name,
                    ifindex: s.dev.index,
                    map_id: s.map.id,
                    actions: rows.into_iter().collect(),
                };
                out.json(&sampler::Sample::new(period, fields))?;
            } else {
                text.push_str(&table_rows(&s.dev.name, period, &rows));
            }
            s.prev = cur;
        }
        if !out.json {
            text.push('\n');
            out.print(&text)?;
        }
        Ok(Tick::Printed)
    })
}

/// The stats maps of the interfaces whose recorded program runs there;
/// one whose map of that name has another layout is skipped, with a note.
fn open_all(ns: &Namespace, out: Output) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for state in &ns.ifaces {
        let Some(rec) =
            state.rec.as_ref().filter(|_| state.attached.iter().any(|a| state.recorded(*a)))
        else {
            continue;
        };
        let path = rec.pin_dir.join(MAP_NAME);
        // A program that keeps no stats has nothing to show.
        if !path.exists() {
            continue;
        }
        let mut map = match StatsMap::open_fitting(&path)? {
            Ok(map) => map,
            Err(misfit) => {
                out.warn(&format!(
                    "note: {}: skipped: {}",
                    escape::text(&state.dev.name),
                    escape::text(&misfit.0)
                ));
                continue;
            }
        };
        let prev = map.reading()?;
        sources.push(Source { dev: state.dev.clone(), path, map, prev });
    }
    Ok(sources)
}

fn table_header() -> String {
    format!(
        "{:<16} {:<12} {:>11} {:>12} {:>13} {:>10}  PERIOD\n",
        "INTERFACE", "XDP-ACTION", "PKTS", "PPS", "KBYTES", "MBIT/S"
    )
}

/// One row per action of one interface, with the figures `stats` shows.
fn table_rows(ifname: &str, period: f64, rows: &[(String, Rate)]) -> String {
    let mut text = String::new();
    for (action, r) in rows {
        text.push_str(&format!(
            "{:<16} {action:<12} {:>11} {:>12.0} {:>13.0} {:>10.0}  {period:.6}\n",
            escape::text(ifname),
            r.packets,
            r.pps,
            r.bytes as f64 / 1000.0,
            r.bps / 1e6,
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_action_under_the_header() {
        let rows = vec![
            ("XDP_DROP".to_string(), Rate { packets: 3, bytes: 180, pps: 1.5, bps: 720.0 }),
            ("XDP_PASS".to_string(), Rate { packets: 9, bytes: 900, pps: 4.5, bps: 3600.0 }),
        ];
        let text = table_rows("veth7", 2.0, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("veth7") && lines[0].contains("XDP_DROP"), "{text}");
        assert!(lines[1].contains(" 9 ") && lines[1].ends_with("2.000000"), "{text}");
        let header = table_header();
        assert!(header.starts_with("INTERFACE") && header.contains("PPS"), "{header}");
    }
}
