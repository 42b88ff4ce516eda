//! `xdpctl trace netdev`: packets and bytes per device and direction, from
//! one program attached to net:net_dev_queue (TX) and net:netif_receive_skb
//! (RX) that reads the device name out of the record's `__data_loc` field
//! (seed 002) and its namespace out of the skb. Counted in the kernel per
//! namespace and name; `--events` streams each one instead. Each interval
//! prints a table: totals, and the packet rates over the interval beside
//! them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, RingBufferBuilder, TracepointCategory, TracepointOpts};
use serde::Serialize;

use super::prog::{c_name, only};
use crate::escape;
use crate::net::iface;
use crate::net::netns::{Names, Netns};
use crate::obj::logging;
use crate::obj::maps;
use crate::obj::skel::trace_prog::TraceProgKernSkelBuilder;
use crate::obj::skel::{NetdevCounts, NetdevDir, NetdevEvent, NetdevKey};
use crate::obj::tracefs;
use crate::output::Output;
use crate::sampler::{self, si, Rate, Sample, Tick};
use crate::stop::Stop;

/// Each tracepoint with its direction: the attachment's cookie, and the word.
const TRACEPOINTS: [(&str, NetdevDir, &str); 2] = [
    ("net_dev_queue", NetdevDir::NETDEV_TX, "tx"),
    ("netif_receive_skb", NetdevDir::NETDEV_RX, "rx"),
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this device (by name, in any network namespace)
    #[arg(short, long, value_name = "IF")]
    pub dev: Option<String>,
    #[command(flatten)]
    pub sampling: sampler::Args,
    /// Print every packet as it is queued or received, instead of totals
    /// (--count then counts packets)
    #[arg(long)]
    pub events: bool,
}

/// Totals of one device since tracing began, and rates over the last period.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct Device {
    ifname: String,
    /// The namespace the device lives in.
    netns: Netns,
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    rx_pps: f64,
    /// Bits per second.
    rx_bps: f64,
    tx_pps: f64,
    tx_bps: f64,
    /// The name for text, escaped.
    #[serde(skip)]
    shown: String,
    /// For text: the namespace unless it is ours.
    #[serde(skip)]
    shown_netns: Option<String>,
}

/// A sample's own fields, in the sampler's envelope.
#[derive(Serialize)]
struct Fields<'a> {
    devices: &'a [Device],
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    dir: &'a str,
    ifname: &'a str,
    netns: Netns,
    len: u32,
    skbaddr: String,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    if let Some(dev) = &args.dev {
        iface::check_name(dev)?;
    }
    tracefs::ensure_mounted()?;
    let names: Vec<&str> = TRACEPOINTS.iter().map(|(t, _, _)| *t).collect();
    let have = tracefs::present("net", &names, "trace netdev", |n| out.note(n))?;
    let used: Vec<_> = TRACEPOINTS.iter().filter(|(t, _, _)| have.contains(t)).collect();

    let mut storage = MaybeUninit::uninit();
    let mut open = TraceProgKernSkelBuilder::default()
        .open(&mut storage)
        .context("opening the shipped trace_prog_kern object")?;
    // Counts or events: only the map in use is built.
    let map = if args.events { "netdev_events" } else { "netdev_stats" };
    only(&mut open, &["trace_netdev"], &[".rodata", map])?;
    let config = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("no .rodata"))?;
    config.emit_events = u8::from(args.events);
    if let Some(dev) = &args.dev {
        config.filter_on = 1;
        for (slot, byte) in config.filter_name.iter_mut().zip(dev.bytes()) {
            *slot = byte as i8;
        }
    }
    let skel = logging::load("the net:* tracer", || open.load())?;
    let prog = &skel.progs.trace_netdev;
    // One program, attached to each; the cookie tells it the direction.
    let attach = |&&(event, dir, _): &&(&str, NetdevDir, &str)| {
        let opts = TracepointOpts { cookie: dir.0.into(), ..Default::default() };
        prog.attach_tracepoint_with_opts(TracepointCategory::Net, event, opts)
            .with_context(|| format!("attaching to net:{event}"))
    };
    let _links = used.iter().map(attach).collect::<Result<Vec<_>>>()?;
    let mut namespaces = Names::new()?;
    let stop = Stop::install()?;
    let what: Vec<String> = used.iter().map(|(t, _, dir)| format!("net:{t} ({dir})")).collect();
    out.info(format!("Tracing {}; Ctrl-C stops", what.join(" and ")));

    if args.events {
        return events(&skel.maps.netdev_events, args.sampling.count, &stop, &mut namespaces, out);
    }
    let mut prev = BTreeMap::new();
    args.sampling.run(&stop, |period| {
        let totals = read_totals(&skel.maps.netdev_stats)?;
        namespaces.learn(totals.keys().map(|k| k.1), |n| out.note(n));
        let devices = devices(&totals, &prev, period, &namespaces);
        prev = totals;
        if out.json {
            out.json(&Sample::new(period, Fields { devices: &devices }))?;
        } else {
            out.print(&table(&devices))?;
        }
        Ok(Tick::Printed)
    })
}

/// How devices are ordered: this namespace's first, then by namespace and name.
type DeviceKey = (bool, u64, Vec<u8>);

/// (rx packets, rx bytes, tx packets, tx bytes)
type Totals = (u64, u64, u64, u64);

/// Totals by device: name and namespace.
type AllTotals = BTreeMap<(Vec<u8>, u64), Totals>;

/// Every device's totals, summed over CPUs, keyed by namespace and name.
fn read_totals(map: &impl MapCore) -> Result<AllTotals> {
    let mut totals = AllTotals::new();
    for (key, counts) in maps::sum_all::<NetdevKey, NetdevCounts>(map, "netdev_stats")? {
        let entry = totals.entry((c_name(&key.name), key.netns)).or_default();
        if key.dir == NetdevDir::NETDEV_TX {
            entry.2 += counts.packets;
            entry.3 += counts.bytes;
        } else {
            entry.0 += counts.packets;
            entry.1 += counts.bytes;
        }
    }
    Ok(totals)
}

/// The devices of `totals`, this namespace's first, then by namespace and
/// name, with their rates since `prev`, `period` seconds ago.
fn devices(totals: &AllTotals, prev: &AllTotals, period: f64, namespaces: &Names) -> Vec<Device> {
    let own = namespaces.own();
    let sorted: BTreeMap<DeviceKey, (Totals, Totals)> = totals
        .iter()
        .map(|(key, &now)| {
            let before = prev.get(key).copied().unwrap_or_default();
            ((key.1 != own, key.1, key.0.clone()), (before, now))
        })
        .collect();
    sorted
        .into_iter()
        .map(|((_, netns, name), (before, now))| {
            let rx = Rate::new((before.0, before.1), (now.0, now.1), period);
            let tx = Rate::new((before.2, before.3), (now.2, now.3), period);
            Device {
                ifname: String::from_utf8_lossy(&name).into_owned(),
                netns: namespaces.json(netns),
                rx_packets: rx.packets,
                rx_bytes: rx.bytes,
                tx_packets: tx.packets,
                tx_bytes: tx.bytes,
                rx_pps: rx.pps,
                rx_bps: rx.bps,
                tx_pps: tx.pps,
                tx_bps: tx.bps,
                shown: escape::bytes(&name),
                shown_netns: namespaces.label(netns),
            }
        })
        .collect()
}

/// The totals and packet rates as a table, one per interval with a blank
/// line after it; a last column names the namespace of devices not in ours,
/// when there are any. Fits 80 columns without it.
fn table(devices: &[Device]) -> String {
    let others = devices.iter().any(|d| d.shown_netns.is_some());
    let mut text = format!(
        "{:<16} {:>9} {:>6} {:>11} {:>9} {:>6} {:>11}{}\n",
        "DEV",
        "RX-PKTS",
        "RX-PPS",
        "RX-BYTES",
        "TX-PKTS",
        "TX-PPS",
        "TX-BYTES",
        if others { "  NETNS" } else { "" }
    );
    if devices.is_empty() {
        text.push_str("(no packets yet)\n");
    }
    for d in devices {
        let line = format!(
            "{:<16} {:>9} {:>6} {:>11} {:>9} {:>6} {:>11}  {}",
            d.shown,
            d.rx_packets,
            si(d.rx_pps),
            d.rx_bytes,
            d.tx_packets,
            si(d.tx_pps),
            d.tx_bytes,
            d.shown_netns.as_deref().unwrap_or("")
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push('\n');
    text
}

/// Print events off the ring buffer until `count` or a stop request.
fn events(
    map: &impl MapCore,
    count: Option<u64>,
    stop: &Stop,
    namespaces: &mut Names,
    out: Output,
) -> Result<()> {
    let namespaces = RefCell::new(namespaces);
    let seen = RefCell::new(0u64);
    let failed = RefCell::new(None);
    let mut builder = RingBufferBuilder::new();
    builder
        .add(map, |data: &[u8]| {
            if count.is_some_and(|n| *seen.borrow() >= n) {
                return 1;
            }
            let Ok(event) = maps::decode::<NetdevEvent>(data, "a netdev event") else {
                return 0;
            };
            *seen.borrow_mut() += 1;
            let dir = if event.dir == NetdevDir::NETDEV_TX { "tx" } else { "rx" };
            let name = c_name(&event.name);
            let skbaddr = format!("{:#x}", event.skbaddr);
            let mut namespaces = namespaces.borrow_mut();
            namespaces.learn([event.netns], |n| out.note(n));
            let printed = if out.json {
                let ifname = String::from_utf8_lossy(&name);
                let netns = namespaces.json(event.netns);
                out.json(&JsonEvent { dir, ifname: &ifname, netns, len: event.len, skbaddr })
            } else {
                let netns = namespaces
                    .label(event.netns)
                    .map_or_else(String::new, |ns| format!(" netns={ns}"));
                let dev = escape::bytes(&name);
                out.print(&format!("{dir} {dev} len={} skbaddr={skbaddr}{netns}\n", event.len))
            };
            match printed {
                Ok(()) => 0,
                Err(e) => {
                    *failed.borrow_mut() = Some(e);
                    1
                }
            }
        })
        .context("reading netdev_events")?;
    let ring = builder.build().context("reading netdev_events")?;
    while count.is_none_or(|n| *seen.borrow() < n) && !stop.requested() {
        // A callback's non-zero return ends the poll early; its error is kept.
        let _ = ring.poll(Duration::from_millis(100));
        if let Some(e) = failed.borrow_mut().take() {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_its_columns() {
        let names = Names::fixed(1, [(2, b"lab".to_vec())]);
        let totals = BTreeMap::from([
            ((b"veth0".to_vec(), 2), (1, 2, 3, 4)),
            ((b"x\x1b[2J".to_vec(), 3), (0, 0, 1, 42)),
            ((b"veth0".to_vec(), 1), (5, 520, 5, 590)),
        ]);
        let prev = BTreeMap::from([((b"veth0".to_vec(), 1), (1, 100, 3, 300))]);
        let devices = devices(&totals, &prev, 2.0, &names);
        let text = table(&devices);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[4], "", "a blank line ends each interval's table");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        let want = ["DEV", "RX-PKTS", "RX-PPS", "RX-BYTES", "TX-PKTS", "TX-PPS", "TX-BYTES"];
        assert_eq!(header[..7], want, "{text}");
        // Rates over the 2 s since the last sample; totals since the start.
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row, ["veth0", "5", "2", "520", "5", "1", "590"], "{text}");
        assert_eq!((devices[0].rx_pps, devices[0].rx_bps), (2.0, 1680.0));
        assert_eq!((devices[0].tx_pps, devices[0].tx_bps), (1.0, 1160.0));
        assert!(lines[1].len() <= 80, "{text}");
        assert!(lines[1].starts_with("veth0 ") && lines[1].ends_with(" 590"), "{text}");
        assert!(lines[2].starts_with("veth0 ") && lines[2].ends_with("  lab"), "{text}");
        assert!(lines[3].starts_with("x\\x1b[2J ") && lines[3].ends_with("  cookie 3"), "{text}");
        // Every row's numbers end where the header's TX-BYTES does.
        let end = lines[0].find("TX-BYTES").unwrap() + "TX-BYTES".len();
        for l in &lines[1..4] {
            assert!(l[..end].ends_with(|c: char| c.is_ascii_digit()), "{l}");
        }
        assert_eq!(devices[1].ifname, "veth0");
        assert_eq!(devices[1].netns, Netns { cookie: 2, name: Some("lab".into()) });
        assert_eq!(devices[2].ifname, "x\u{1b}[2J");

        // Only ours: no namespace column, header and rows equally long.
        let ours = BTreeMap::from([((b"veth0".to_vec(), 1), (5, 520, 5, 590))]);
        let ours = super::devices(&ours, &BTreeMap::new(), 1.0, &names);
        let text = table(&ours);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), lines[1].len(), "{text}");
        assert!(table(&[]).contains("(no packets yet)"));
    }
}
