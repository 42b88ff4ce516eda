//! `xdpctl trace monitor`: every xdp tracepoint this kernel has, per CPU and
//! in total (tracing02, xdp-monitor). A tracepoint the kernel lacks is
//! skipped with one notice: 6.x removed xdp_redirect_map(_err), which is why
//! xdp-tools' monitor fails here.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore};
use nix::errno::Errno;
use serde::Serialize;

use super::prog::{only, read_counts};
use crate::obj::logging;
use crate::obj::maps::{self, Counters};
use crate::obj::skel::trace_prog::{TraceProgKernMaps, TraceProgKernSkelBuilder};
use crate::obj::skel::{MonitorRec, MonitorSource};
use crate::obj::statsmap::action_name;
use crate::obj::tracefs;
use crate::output::Output;
use crate::sampler::{self, per_second, Sample, Tick};
use crate::stop::Stop;

/// Each tracepoint and the program that counts it.
const TRACEPOINTS: [(&str, &str); 8] = [
    ("xdp_redirect", "trace_xdp_redirect"),
    ("xdp_redirect_err", "trace_xdp_redirect_err"),
    ("xdp_redirect_map", "trace_xdp_redirect_map"),
    ("xdp_redirect_map_err", "trace_xdp_redirect_map_err"),
    ("xdp_exception", "trace_xdp_exception"),
    ("xdp_cpumap_enqueue", "trace_xdp_cpumap_enqueue"),
    ("xdp_cpumap_kthread", "trace_xdp_cpumap_kthread"),
    ("xdp_devmap_xmit", "trace_xdp_devmap_xmit"),
];

const MAPS: [&str; 8] = [
    "generator_dev",
    "redirect_ok",
    "redirect_err",
    "redirect_errno",
    "exceptions",
    "cpumap_enqueue",
    "cpumap_kthread",
    "devmap_xmit",
];

/// One line of the table: an event on one CPU (or all), since the start and
/// per second over the last period.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct Row {
    event: String,
    /// A CPU number, or "total".
    cpu: String,
    packets: u64,
    drops: u64,
    pps: f64,
    drop_pps: f64,
    /// What else the event tells: bulk average, reschedules, driver errors.
    #[serde(skip_serializing_if = "String::is_empty")]
    info: String,
}

/// A sample's own fields, in the sampler's envelope.
#[derive(Serialize)]
struct Fields<'a> {
    events: &'a [Row],
    /// Redirect errors by errno name, since the start.
    errors: &'a BTreeMap<String, u64>,
    /// Those of xdpctl trafficgen's own frames.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trafficgen_errors: &'a BTreeMap<String, u64>,
}

/// Whose events a slot of redirect_ok, redirect_err, devmap_xmit and
/// redirect_errno holds, and the suffix that labels them.
const SOURCES: [(MonitorSource, &str); 2] =
    [(MonitorSource::MONITOR_OTHERS, ""), (MonitorSource::MONITOR_GENERATOR, " (trafficgen)")];

/// Cumulative per-CPU records of every event, keyed by event name.
type Snapshot = BTreeMap<String, Vec<MonitorRec>>;

pub fn run(args: &sampler::Args, out: Output) -> Result<()> {
    tracefs::ensure_mounted()?;
    let mut storage = MaybeUninit::uninit();
    let mut open = TraceProgKernSkelBuilder::default()
        .open(&mut storage)
        .context("opening the shipped trace_prog_kern object")?;
    let names: Vec<&str> = TRACEPOINTS.iter().map(|(t, _)| *t).collect();
    let have = tracefs::present("xdp", &names, "trace monitor", |n| out.note(n))?;
    let present: Vec<&str> =
        TRACEPOINTS.iter().filter(|(t, _)| have.contains(t)).map(|(_, p)| *p).collect();
    only(&mut open, &present, &MAPS)?;
    let mut skel = logging::load("the xdp monitor", || open.load())?;
    let links: Vec<Link> = skel
        .object_mut()
        .progs_mut()
        .filter(|p| present.iter().any(|name| p.name() == *name))
        .map(|p| p.attach().with_context(|| format!("attaching {}", p.name().to_string_lossy())))
        .collect::<Result<_>>()?;
    let stop = Stop::install()?;
    out.info(format!("Monitoring {} xdp tracepoints; Ctrl-C stops", links.len()));

    let mut prev = snapshot(&skel.maps)?;
    args.run(&stop, |period| {
        let cur = snapshot(&skel.maps)?;
        let rows = rows(&prev, &cur, period);
        prev = cur;
        let errno = &skel.maps.redirect_errno;
        let errors = errno_counts(errno, MonitorSource::MONITOR_OTHERS)?;
        let generator = errno_counts(errno, MonitorSource::MONITOR_GENERATOR)?;
        if out.json {
            let fields = Fields { events: &rows, errors: &errors, trafficgen_errors: &generator };
            out.json(&Sample::new(period, fields))?;
        } else {
            out.print(&table(&rows, &errors, &generator))?;
        }
        Ok(Tick::Printed)
    })
}

/// Per-CPU records of slot `key` of a per-CPU array of monitor_rec.
fn per_cpu(map: &impl MapCore, key: u32) -> Result<Vec<MonitorRec>> {
    maps::per_cpu(map, &key.to_ne_bytes(), "a monitor map")
}

fn snapshot(maps: &TraceProgKernMaps<'_>) -> Result<Snapshot> {
    let mut snap = Snapshot::new();
    for (slot, label) in SOURCES {
        snap.insert(format!("redirect{label}"), per_cpu(&maps.redirect_ok, slot.0)?);
        snap.insert(format!("redirect_err{label}"), per_cpu(&maps.redirect_err, slot.0)?);
        snap.insert(format!("devmap_xmit{label}"), per_cpu(&maps.devmap_xmit, slot.0)?);
    }
    snap.insert("cpumap_kthread".into(), per_cpu(&maps.cpumap_kthread, 0)?);
    // Enqueues by target CPU, for the CPUs there are (not all slots); only
    // the targets that saw any.
    let cpus = maps::possible_cpus()?;
    let slots = maps.cpumap_enqueue.max_entries().min(u32::try_from(cpus).unwrap_or(u32::MAX));
    for to_cpu in 0..slots {
        let recs = per_cpu(&maps.cpumap_enqueue, to_cpu)?;
        if recs.iter().any(|r| r.processed + r.dropped > 0) {
            snap.insert(format!("cpumap_enqueue to {to_cpu}"), recs);
        }
    }
    // Exceptions per action, all interfaces together; all of them drops.
    let mut by_action: BTreeMap<u32, u64> = BTreeMap::new();
    for ((_, _, action), counted) in read_counts(&maps.exceptions)? {
        *by_action.entry(action).or_default() += counted.count;
    }
    for (action, count) in by_action {
        let rec = MonitorRec { dropped: count, ..Default::default() };
        snap.insert(format!("exception {}", action_name(action)), vec![rec]);
    }
    Ok(snap)
}

/// What the info column says for `event` over the period, from the change in
/// its record.
fn info(event: &str, prev: &MonitorRec, cur: &MonitorRec) -> String {
    let d = |f: fn(&MonitorRec) -> u64| f(cur).saturating_sub(f(prev));
    let bulk = |sent: u64, bulks: u64| if bulks > 0 { sent as f64 / bulks as f64 } else { 0.0 };
    let devmap = event.starts_with("devmap_xmit");
    if event.starts_with("cpumap_enqueue") || devmap {
        let mut s = format!("bulk-average {:.2}", bulk(d(|r| r.processed), d(|r| r.info)));
        if devmap {
            s.push_str(&format!(" drv-err {}", d(|r| r.err)));
        }
        s
    } else if event == "cpumap_kthread" {
        format!("sched {}", d(|r| r.info))
    } else {
        String::new()
    }
}

/// Rows for every CPU that saw something in the period, and a total per event
/// that ever saw something.
fn rows(prev: &Snapshot, cur: &Snapshot, period: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    for (event, recs) in cur {
        let before = prev.get(event);
        let zero = MonitorRec::default();
        let mut total = (MonitorRec::default(), MonitorRec::default());
        for (cpu, rec) in recs.iter().enumerate() {
            let old = before.and_then(|b| b.get(cpu)).unwrap_or(&zero);
            total.0.add(old);
            total.1.add(rec);
            if rec.processed == old.processed && rec.dropped == old.dropped {
                continue;
            }
            rows.push(row(event, cpu.to_string(), old, rec, period));
        }
        if total.1.processed + total.1.dropped > 0 {
            rows.push(row(event, "total".into(), &total.0, &total.1, period));
        }
    }
    rows
}

fn row(event: &str, cpu: String, old: &MonitorRec, rec: &MonitorRec, period: f64) -> Row {
    Row {
        event: event.to_string(),
        cpu,
        packets: rec.processed,
        drops: rec.dropped,
        pps: per_second(old.processed, rec.processed, period),
        drop_pps: per_second(old.dropped, rec.dropped, period),
        info: info(event, old, rec),
    }
}

/// Redirect errors of `source` since the start by errno name ("EINVAL"),
/// summed over CPUs.
fn errno_counts(map: &impl MapCore, source: MonitorSource) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    // Each source has its share of the slots, in order.
    let each = map.max_entries() / MonitorSource::MONITOR_SOURCES.0;
    let first = source.0 * each;
    for slot in 0..each {
        let total: u64 = maps::sum(map, &(first + slot).to_ne_bytes(), "redirect_errno")?;
        if total > 0 {
            let name = match slot {
                0 => "unknown".to_string(),
                n => format!("{:?}", Errno::from_raw(n as i32)),
            };
            counts.insert(name, total);
        }
    }
    Ok(counts)
}

fn table(
    rows: &[Row],
    errors: &BTreeMap<String, u64>,
    generator: &BTreeMap<String, u64>,
) -> String {
    let mut text = format!(
        "{:<28} {:>6} {:>12} {:>12}  {}\n",
        "XDP-event", "CPU", "pps", "drop-pps", "extra-info"
    );
    for r in rows {
        text.push_str(&format!(
            "{:<28} {:>6} {:>12.0} {:>12.0}  {}\n",
            r.event, r.cpu, r.pps, r.drop_pps, r.info
        ));
    }
    for (name, count) in errors {
        text.push_str(&format!("redirect errors {name}: {count}\n"));
    }
    for (name, count) in generator {
        text.push_str(&format!("redirect errors (trafficgen) {name}: {count}\n"));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(processed: u64, dropped: u64, info: u64) -> MonitorRec {
        MonitorRec { processed, dropped, info, err: 0 }
    }

    #[test]
    fn rows_per_active_cpu_and_a_total_with_rates() {
        let prev = Snapshot::from([("devmap_xmit".into(), vec![rec(10, 0, 5), rec(0, 0, 0)])]);
        let cur = Snapshot::from([
            ("devmap_xmit".into(), vec![rec(30, 2, 9), rec(0, 0, 0)]),
            ("redirect".into(), vec![rec(0, 0, 0), rec(0, 0, 0)]),
        ]);
        let got = rows(&prev, &cur, 2.0);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!((got[0].cpu.as_str(), got[0].pps, got[0].drop_pps), ("0", 10.0, 1.0));
        assert_eq!(got[0].info, "bulk-average 5.00 drv-err 0");
        assert_eq!((got[1].cpu.as_str(), got[1].packets, got[1].drops), ("total", 30, 2));
    }
}
