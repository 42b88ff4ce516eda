//! `xdpctl trace netdev`: packets and bytes per device and direction, from
//! one program attached to net:net_dev_queue (TX) and net:netif_receive_skb
//! (RX) that reads the device name out of the record's `__data_loc` field
//! (seed 002). Counted in the kernel; `--events` streams each one instead.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, RingBufferBuilder, TracepointCategory, TracepointOpts};
use serde::Serialize;

use crate::cmd::parse_interval;
use crate::cmd::trace::only;
use crate::iface;
use crate::logging;
use crate::output::{unix_time, Output};
use crate::skel::trace_prog::TraceProgKernSkelBuilder;
use crate::skel::{NetdevCounts, NetdevEvent, NetdevKey};
use crate::stop::Stop;
use crate::tracefs;

/// Direction values of include/trace_common.h's enum netdev_dir.
const NETDEV_RX: u32 = 0;
const NETDEV_TX: u32 = 1;

/// Each tracepoint with its direction: the attachment's cookie, and the word.
const TRACEPOINTS: [(&str, u32, &str); 2] =
    [("net_dev_queue", NETDEV_TX, "tx"), ("netif_receive_skb", NETDEV_RX, "rx")];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this device (by name, in any network namespace)
    #[arg(short, long, value_name = "IF")]
    pub dev: Option<String>,
    /// Seconds between samples
    #[arg(short, long, default_value_t = 2.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Print this many samples (with --events: events), then exit
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,
    /// Print every packet as it is queued or received, instead of totals
    #[arg(long)]
    pub events: bool,
}

/// Totals of one device since tracing began.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
struct Device {
    dev: String,
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

#[derive(Serialize)]
struct JsonSample<'a> {
    time: f64,
    devices: &'a [Device],
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    dir: &'a str,
    dev: &'a str,
    len: u32,
    skbaddr: String,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    if let Some(dev) = &args.dev {
        iface::check_name("--dev", dev)?;
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
    let attach = |&&(event, dir, _): &&(&str, u32, &str)| {
        let opts = TracepointOpts { cookie: dir.into(), ..Default::default() };
        prog.attach_tracepoint_with_opts(TracepointCategory::Net, event, opts)
            .with_context(|| format!("attaching to net:{event}"))
    };
    let _links = used.iter().map(attach).collect::<Result<Vec<_>>>()?;
    let stop = Stop::install()?;
    let what: Vec<String> = used.iter().map(|(t, _, dir)| format!("net:{t} ({dir})")).collect();
    out.info(format!("Tracing {}; Ctrl-C stops", what.join(" and ")));

    if args.events {
        return events(&skel.maps.netdev_events, args.count, &stop, out);
    }
    stop.every(args.interval, args.count, |_| {
        let devices = read_totals(&skel.maps.netdev_stats)?;
        if out.json {
            return out.json(&JsonSample { time: unix_time(), devices: &devices });
        }
        out.print(&table(&devices))
    })
}

fn name(raw: &[i8]) -> String {
    let bytes: Vec<u8> = raw.iter().map(|&b| b as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// Every device's totals, summed over CPUs, ordered by name.
fn read_totals(map: &impl MapCore) -> Result<Vec<Device>> {
    let mut devices: BTreeMap<String, Device> = BTreeMap::new();
    for raw_key in map.keys() {
        let mut key = NetdevKey::default();
        plain::copy_from_bytes(&mut key, &raw_key)
            .map_err(|e| anyhow!("netdev_stats key of {} bytes: {e:?}", raw_key.len()))?;
        let Some(per_cpu) =
            map.lookup_percpu(&raw_key, MapFlags::ANY).context("reading netdev_stats")?
        else {
            continue;
        };
        let dev = name(&key.name);
        let entry =
            devices.entry(dev.clone()).or_insert_with(|| Device { dev, ..Default::default() });
        for value in per_cpu {
            let mut counts = NetdevCounts::default();
            plain::copy_from_bytes(&mut counts, &value)
                .map_err(|e| anyhow!("netdev_stats value of {} bytes: {e:?}", value.len()))?;
            if key.dir == NETDEV_TX {
                entry.tx_packets += counts.packets;
                entry.tx_bytes += counts.bytes;
            } else {
                entry.rx_packets += counts.packets;
                entry.rx_bytes += counts.bytes;
            }
        }
    }
    Ok(devices.into_values().collect())
}

fn table(devices: &[Device]) -> String {
    let mut text = format!(
        "{:<16} {:>10} {:>12} {:>10} {:>12}\n",
        "DEV", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES"
    );
    for d in devices {
        text.push_str(&format!(
            "{:<16} {:>10} {:>12} {:>10} {:>12}\n",
            d.dev, d.rx_packets, d.rx_bytes, d.tx_packets, d.tx_bytes
        ));
    }
    text
}

/// Print events off the ring buffer until `count` or a stop request.
fn events(map: &impl MapCore, count: Option<u64>, stop: &Stop, out: Output) -> Result<()> {
    let seen = RefCell::new(0u64);
    let failed = RefCell::new(None);
    let mut builder = RingBufferBuilder::new();
    builder
        .add(map, |data: &[u8]| {
            if count.is_some_and(|n| *seen.borrow() >= n) {
                return 1;
            }
            let mut event = NetdevEvent::default();
            if plain::copy_from_bytes(&mut event, data).is_err() {
                return 0;
            }
            *seen.borrow_mut() += 1;
            let dir = if event.dir == NETDEV_TX { "tx" } else { "rx" };
            let dev = name(&event.name);
            let skbaddr = format!("{:#x}", event.skbaddr);
            let printed = if out.json {
                out.json(&JsonEvent { dir, dev: &dev, len: event.len, skbaddr })
            } else {
                out.print(&format!("{dir} {dev} len={} skbaddr={skbaddr}\n", event.len))
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
    fn names_end_at_the_first_nul() {
        let mut raw = [0i8; 16];
        for (slot, b) in raw.iter_mut().zip(b"veth0") {
            *slot = *b as i8;
        }
        assert_eq!(name(&raw), "veth0");
        assert_eq!(name(&[b'x' as i8; 16]), "xxxxxxxxxxxxxxxx");
    }

    #[test]
    fn the_table_lines_up_its_columns() {
        let devices = [Device {
            dev: "veth0".into(),
            rx_packets: 5,
            rx_bytes: 520,
            tx_packets: 5,
            tx_bytes: 590,
        }];
        let text = table(&devices);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), lines[1].len());
        assert!(lines[1].starts_with("veth0 ") && lines[1].ends_with(" 590"));
    }
}
