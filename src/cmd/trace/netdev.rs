//! `xdpctl trace netdev`: packets and bytes per device and direction, from
//! one program attached to net:net_dev_queue (TX) and net:netif_receive_skb
//! (RX) that reads the device name out of the record's `__data_loc` field
//! (seed 002) and its namespace out of the skb. Counted in the kernel per
//! namespace and name; `--events` streams each one instead.

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
use crate::sampler::{self, Sample, Tick};
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

/// Totals of one device since tracing began.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
struct Device {
    ifname: String,
    /// The namespace the device lives in.
    netns: Netns,
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
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
    args.sampling.run(&stop, |period| {
        let totals = read_totals(&skel.maps.netdev_stats)?;
        namespaces.learn(totals.keys().map(|k| k.1), |n| out.note(n));
        let devices = devices(totals, &namespaces);
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

/// Every device's totals, summed over CPUs, keyed by namespace and name.
fn read_totals(map: &impl MapCore) -> Result<BTreeMap<(Vec<u8>, u64), Totals>> {
    let mut totals: BTreeMap<(Vec<u8>, u64), Totals> = BTreeMap::new();
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

/// The devices of `totals`, this namespace's first, then by namespace and name.
fn devices(totals: BTreeMap<(Vec<u8>, u64), Totals>, namespaces: &Names) -> Vec<Device> {
    let own = namespaces.own();
    let sorted: BTreeMap<DeviceKey, Totals> =
        totals.into_iter().map(|((name, netns), t)| ((netns != own, netns, name), t)).collect();
    sorted
        .into_iter()
        .map(|((_, netns, name), (rx_packets, rx_bytes, tx_packets, tx_bytes))| Device {
            ifname: String::from_utf8_lossy(&name).into_owned(),
            netns: namespaces.json(netns),
            rx_packets,
            rx_bytes,
            tx_packets,
            tx_bytes,
            shown: escape::bytes(&name),
            shown_netns: namespaces.label(netns),
        })
        .collect()
}

/// The totals as a table; a last column names the namespace of devices not
/// in ours, when there are any.
fn table(devices: &[Device]) -> String {
    let others = devices.iter().any(|d| d.shown_netns.is_some());
    let mut text = format!(
        "{:<16} {:>10} {:>12} {:>10} {:>12}{}\n",
        "DEV",
        "RX-PKTS",
        "RX-BYTES",
        "TX-PKTS",
        "TX-BYTES",
        if others { "  NETNS" } else { "" }
    );
    for d in devices {
        let line = format!(
            "{:<16} {:>10} {:>12} {:>10} {:>12}  {}",
            d.shown,
            d.rx_packets,
            d.rx_bytes,
            d.tx_packets,
            d.tx_bytes,
            d.shown_netns.as_deref().unwrap_or("")
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
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
        let devices = devices(totals, &names);
        let text = table(&devices);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("veth0 ") && lines[1].ends_with(" 590"), "{text}");
        assert!(lines[2].starts_with("veth0 ") && lines[2].ends_with("  lab"), "{text}");
        assert!(lines[3].starts_with("x\\x1b[2J ") && lines[3].ends_with("  cookie 3"), "{text}");
        // Every row's numbers end where the header's TX-BYTES does.
        let end = lines[0].find("TX-BYTES").unwrap() + "TX-BYTES".len();
        for l in &lines[1..] {
            assert!(l[..end].ends_with(|c: char| c.is_ascii_digit()), "{l}");
        }
        assert_eq!(devices[1].ifname, "veth0");
        assert_eq!(devices[1].netns, Netns { cookie: 2, name: Some("lab".into()) });
        assert_eq!(devices[2].ifname, "x\u{1b}[2J");

        // Only ours: no namespace column, header and rows equally long.
        let ours =
            super::devices(BTreeMap::from([((b"veth0".to_vec(), 1), (5, 520, 5, 590))]), &names);
        let text = table(&ours);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), lines[1].len(), "{text}");
    }
}
