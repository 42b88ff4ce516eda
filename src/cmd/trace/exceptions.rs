//! `xdpctl trace` without a subcommand: XDP exceptions (aborted packets, bad
//! verdicts) per interface and action, counted on the xdp_exception
//! tracepoint (tracing01), per network namespace: interface indexes repeat
//! across namespaces. Runs until Ctrl-C or --count; the tracepoint goes with
//! it. Each interval prints a table with a header, or while there has been
//! no exception at all one line saying so: silence would look like a hang.

use std::collections::{BTreeMap, HashMap};
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde::Serialize;

use super::prog::{only, read_counts, Counted, Key};
use crate::escape;
use crate::net::iface;
use crate::net::netns::{Names, Netns};
use crate::obj::logging;
use crate::obj::skel::trace_prog::TraceProgKernSkelBuilder;
use crate::obj::statsmap::action_name;
use crate::obj::tracefs;
use crate::output::Output;
use crate::sampler::{self, per_second, Sample, Tick};
use crate::stop::Stop;

/// Events of one interface and action since tracing began.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct Row {
    ifindex: i32,
    /// The interface's name (in this namespace looked up by index, in another
    /// as it was at its first event); `ifindex N` if neither is known.
    ifname: String,
    /// The namespace the interface lives in.
    netns: Netns,
    action: String,
    count: u64,
    /// Events per second over the last period.
    rate: f64,
    /// The interface for text, escaped.
    #[serde(skip)]
    shown: String,
    /// For text: the namespace unless it is ours.
    #[serde(skip)]
    shown_netns: Option<String>,
}

/// A sample's own fields, in the sampler's envelope.
#[derive(Serialize)]
struct Fields<'a> {
    /// The namespace xdpctl runs in.
    netns: Netns,
    exceptions: &'a [Row],
}

pub fn run(args: &sampler::Args, out: Output) -> Result<()> {
    tracefs::ensure_mounted()?;
    // The raw tracepoint exists exactly where the classic one does.
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
        .context("attaching to the xdp_exception raw tracepoint")?;
    let mut namespaces = Names::new()?;
    let stop = Stop::install()?;
    out.info("Counting xdp:xdp_exception events per interface and action; Ctrl-C stops");

    let mut prev: HashMap<Key, Counted> = HashMap::new();
    let start = std::time::Instant::now();
    args.run(&stop, |period| {
        let counts = read_counts(&skel.maps.exceptions)?;
        namespaces.learn(counts.keys().map(|k| k.0), |n| out.note(n));
        let rows = rows(&counts, &prev, period, &names()?, &namespaces);
        prev = counts;
        if out.json {
            let netns = namespaces.json(namespaces.own());
            out.json(&Sample::new(period, Fields { netns, exceptions: &rows }))?;
        } else {
            out.print(&table(&rows, start.elapsed().as_secs_f64()))?;
        }
        Ok(Tick::Printed)
    })
}

/// Interface names of this namespace by index.
fn names() -> Result<HashMap<i32, String>> {
    Ok(iface::all()?
        .into_iter()
        .filter_map(|i| Some((i32::try_from(i.index).ok()?, i.name)))
        .collect())
}

/// Rows of this namespace first, then by namespace, interface index and
/// action.
fn rows(
    counts: &HashMap<Key, Counted>,
    prev: &HashMap<Key, Counted>,
    period: f64,
    here: &HashMap<i32, String>,
    namespaces: &Names,
) -> Vec<Row> {
    let own = namespaces.own();
    let sorted: BTreeMap<_, _> = counts.iter().map(|(k, v)| ((k.0 != own, *k), v)).collect();
    sorted
        .into_iter()
        .map(|((_, key), counted)| {
            let (netns, ifindex, action) = key;
            let count = counted.count;
            let before = prev.get(&key).map_or(0, |c| c.count);
            let rate = per_second(before, count, period);
            // Ours by index now (it may have been renamed since); another
            // namespace's as the program read it.
            let live = here.get(&ifindex).filter(|_| netns == own).map(String::as_bytes);
            let name = live.or_else(|| Some(counted.name.as_slice()).filter(|n| !n.is_empty()));
            let (ifname, shown) = match name {
                Some(n) => (String::from_utf8_lossy(n).into_owned(), escape::bytes(n)),
                None => (format!("ifindex {ifindex}"), format!("ifindex {ifindex}")),
            };
            Row {
                ifindex,
                ifname,
                netns: namespaces.json(netns),
                action: action_name(action),
                count,
                rate,
                shown,
                shown_netns: namespaces.label(netns),
            }
        })
        .collect()
}

/// A rate for the table: tenths while small (a few aborts a second matter),
/// SI prefixes when large.
fn per_sec(v: f64) -> String {
    if v < 99.95 {
        format!("{v:.1}")
    } else {
        sampler::si(v)
    }
}

/// One interval's text: the table of every (interface, action) seen since
/// the start, its rate over the interval beside the total, and a namespace
/// column when another namespace's interfaces are in it; or, before the first
/// exception, one line that says there was none in the `elapsed` seconds.
fn table(rows: &[Row], elapsed: f64) -> String {
    if rows.is_empty() {
        return format!("no XDP exceptions so far ({elapsed:.0} s)\n");
    }
    let others = rows.iter().any(|r| r.shown_netns.is_some());
    let mut text = format!(
        "{:<16} {:<14} {:>12} {:>8}{}\n",
        "INTERFACE",
        "ACTION",
        "TOTAL",
        "PER-SEC",
        if others { "  NETNS" } else { "" }
    );
    for r in rows {
        let line = format!(
            "{:<16} {:<14} {:>12} {:>8}  {}",
            r.shown,
            r.action,
            r.count,
            per_sec(r.rate),
            r.shown_netns.as_deref().unwrap_or("")
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(count: u64, name: &[u8]) -> Counted {
        Counted { count, name: name.to_vec() }
    }

    #[test]
    fn rows_name_interfaces_and_actions_and_rate_the_period() {
        let names = Names::fixed(10, [(20, b"lab".to_vec())]);
        let here = HashMap::from([(1, "lo".to_string())]);
        let prev = HashMap::from([((10, 1, 0), counted(4, b"lo"))]);
        let counts = HashMap::from([
            ((10, 7, 2), counted(3, b"")),
            ((10, 1, 0), counted(10, b"old")),
            ((10, 1, 9), counted(1, b"")),
            // Index 1 again, in two other namespaces: never "lo".
            ((20, 1, 0), counted(5, b"veth0")),
            ((30, 1, 0), counted(2, b"x\x1b[2J")),
            ((30, 2, 0), counted(2, b"")),
        ]);
        let got = rows(&counts, &prev, 2.0, &here, &names);
        let want = [
            (1, "lo", "lo", 10, "XDP_ABORTED", 10, 3.0),
            (1, "lo", "lo", 10, "XDP_ACTION_9", 1, 0.5),
            (7, "ifindex 7", "ifindex 7", 10, "XDP_PASS", 3, 1.5),
            (1, "veth0", "veth0", 20, "XDP_ABORTED", 5, 2.5),
            (1, "x\u{1b}[2J", "x\\x1b[2J", 30, "XDP_ABORTED", 2, 1.0),
            (2, "ifindex 2", "ifindex 2", 30, "XDP_ABORTED", 2, 1.0),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (row, want) in got.iter().zip(want) {
            let (ifindex, ifname, shown, cookie, action, count, rate) = want;
            assert_eq!(
                (
                    row.ifindex,
                    row.ifname.as_str(),
                    row.shown.as_str(),
                    row.netns.cookie,
                    row.action.as_str(),
                    row.count,
                    row.rate
                ),
                (ifindex, ifname, shown, cookie, action, count, rate)
            );
        }
        assert_eq!(got[3].netns.name.as_deref(), Some("lab"));
        assert_eq!(got[4].netns.name, None);
        let netns: Vec<_> = got.iter().map(|r| r.shown_netns.as_deref()).collect();
        assert_eq!(netns, [None, None, None, Some("lab"), Some("cookie 30"), Some("cookie 30")]);

        // The table: a header naming the columns, rows under it.
        let text = table(&got, 4.0);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(header, ["INTERFACE", "ACTION", "TOTAL", "PER-SEC", "NETNS"], "{text}");
        let row: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(row, ["veth0", "XDP_ABORTED", "5", "2.5", "lab"], "{text}");
        let row: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(row, ["x\\x1b[2J", "XDP_ABORTED", "2", "1.0", "cookie", "30"], "{text}");
        // Numbers end where their header does.
        let end = lines[0].find("PER-SEC").unwrap() + "PER-SEC".len();
        assert!(lines[1][..end].ends_with("3.0"), "{text}");
        assert_eq!(per_sec(1234.0), "1.23K");
        // Idle: a line, not silence.
        assert_eq!(table(&[], 4.2), "no XDP exceptions so far (4 s)\n");
    }
}
