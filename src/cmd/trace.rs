//! `xdpctl trace`: XDP exceptions (aborted packets, bad verdicts) per
//! interface and action, counted on the xdp:xdp_exception tracepoint
//! (tracing01). Runs until Ctrl-C or --count; the tracepoint goes with it.

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use serde::Serialize;

use crate::cmd::{parse_interval, trace_monitor, trace_netdev, trace_printk};
use crate::iface;
use crate::logging;
use crate::object;
use crate::output::{unix_time, Output};
use crate::skel::trace_prog::{OpenTraceProgKernSkel, TraceProgKernSkelBuilder};
use crate::skel::ExceptionKey;
use crate::statsmap::action_name;
use crate::stop::Stop;
use crate::tracefs;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub what: Option<What>,
    #[command(flatten)]
    pub sampling: Sampling,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Read the trace buffer, decoding the lines of xdp_printk (tracing03)
    Printk(trace_printk::Args),
    /// Packets and bytes each device sends and receives (net:net_dev_queue,
    /// net:netif_receive_skb)
    Netdev(trace_netdev::Args),
    /// Every xdp tracepoint: redirects and their errors, exceptions, cpumap
    /// and devmap, per CPU (tracing02)
    Monitor(trace_monitor::Args),
}

/// How `trace` (exceptions) samples.
#[derive(clap::Args, Debug)]
pub struct Sampling {
    /// Seconds between samples
    #[arg(short, long, default_value_t = 2.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print this many samples, then exit
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,
}

/// Events of one interface and action since tracing began.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct Row {
    ifindex: i32,
    /// `ifindex N` if no interface of this namespace has that index (any more).
    ifname: String,
    action: String,
    count: u64,
    /// Events per second over the last period.
    rate: f64,
}

#[derive(Serialize)]
struct JsonSample<'a> {
    time: f64,
    period: f64,
    exceptions: &'a [Row],
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    match &args.what {
        Some(What::Printk(a)) => trace_printk::run(a, out),
        Some(What::Netdev(a)) => trace_netdev::run(a, out),
        Some(What::Monitor(a)) => trace_monitor::run(a, out),
        None => exceptions(&args.sampling, out),
    }
}

fn exceptions(args: &Sampling, out: Output) -> Result<()> {
    tracefs::ensure_mounted()?;
    tracefs::present("xdp", &["xdp_exception"], "trace", |n| out.note(n))?;
    let mut storage = MaybeUninit::uninit();
    let mut open = TraceProgKernSkelBuilder::default()
        .open(&mut storage)
        .context("opening the shipped trace_prog_kern object")?;
    only(&mut open, &["trace_xdp_exception"], &["exceptions"])?;
    let skel = logging::load("the xdp:xdp_exception counter", || open.load())?;
    let _link = skel
        .progs
        .trace_xdp_exception
        .attach()
        .context("attaching to the xdp:xdp_exception tracepoint")?;
    let stop = Stop::install()?;
    out.info("Counting xdp:xdp_exception events per interface and action; Ctrl-C stops");

    let mut prev: HashMap<(i32, u32), u64> = HashMap::new();
    stop.every(args.interval, args.count, |period| {
        let counts = read_counts(&skel.maps.exceptions)?;
        let rows = rows(&counts, &prev, period, &names()?);
        prev = counts;
        if out.json {
            return out.json(&JsonSample { time: unix_time(), period, exceptions: &rows });
        }
        let text: String =
            rows.iter().map(|r| format!("{} ({}) {}\n", r.ifname, r.count, r.action)).collect();
        out.print(&text)
    })
}

/// Load only the programs `progs` of the tracing object and create only the
/// maps `maps`: each command uses its own part of it.
pub(crate) fn only(open: &mut OpenTraceProgKernSkel, progs: &[&str], maps: &[&str]) -> Result<()> {
    for mut prog in open.open_object_mut().progs_mut() {
        let keep = progs.iter().any(|p| prog.name() == *p);
        prog.set_autoload(keep);
    }
    object::keep_maps(open.open_object_mut(), maps)
}

/// Every key's count, summed over CPUs.
pub(crate) fn read_counts(map: &impl MapCore) -> Result<HashMap<(i32, u32), u64>> {
    let mut counts = HashMap::new();
    for raw_key in map.keys() {
        let mut key = ExceptionKey::default();
        plain::copy_from_bytes(&mut key, &raw_key)
            .map_err(|e| anyhow::anyhow!("exceptions map key of {} bytes: {e:?}", raw_key.len()))?;
        // An entry can go between listing and lookup only if the map is
        // cleared, which nothing does; skip it rather than fail.
        let Some(per_cpu) =
            map.lookup_percpu(&raw_key, MapFlags::ANY).context("reading the exceptions map")?
        else {
            continue;
        };
        let total = per_cpu
            .iter()
            .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
            .sum();
        counts.insert((key.ifindex, key.action), total);
    }
    Ok(counts)
}

/// Interface names of this namespace by index.
fn names() -> Result<HashMap<i32, String>> {
    Ok(iface::all()?
        .into_iter()
        .filter_map(|i| Some((i32::try_from(i.index).ok()?, i.name)))
        .collect())
}

/// Rows ordered by interface index and action.
fn rows(
    counts: &HashMap<(i32, u32), u64>,
    prev: &HashMap<(i32, u32), u64>,
    period: f64,
    names: &HashMap<i32, String>,
) -> Vec<Row> {
    let sorted: BTreeMap<_, _> = counts.iter().collect();
    sorted
        .into_iter()
        .map(|(&(ifindex, action), &count)| {
            let before = prev.get(&(ifindex, action)).copied().unwrap_or(0);
            let rate =
                if period > 0.0 { count.saturating_sub(before) as f64 / period } else { 0.0 };
            Row {
                ifindex,
                ifname: names
                    .get(&ifindex)
                    .cloned()
                    .unwrap_or_else(|| format!("ifindex {ifindex}")),
                action: action_name(action),
                count,
                rate,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_interfaces_and_actions_and_rate_the_period() {
        let names = HashMap::from([(1, "lo".to_string())]);
        let prev = HashMap::from([((1, 0), 4)]);
        let counts = HashMap::from([((7, 2), 3), ((1, 0), 10), ((1, 9), 1)]);
        let got = rows(&counts, &prev, 2.0, &names);
        let want = [
            (1, "lo", "XDP_ABORTED", 10, 3.0),
            (1, "lo", "XDP_ACTION_9", 1, 0.5),
            (7, "ifindex 7", "XDP_PASS", 3, 1.5),
        ];
        assert_eq!(got.len(), want.len());
        for (row, (ifindex, ifname, action, count, rate)) in got.iter().zip(want) {
            assert_eq!(
                (row.ifindex, row.ifname.as_str(), row.action.as_str(), row.count, row.rate),
                (ifindex, ifname, action, count, rate)
            );
        }
    }
}
