//! `xdpctl trafficgen`: send UDP frames out of an interface at a set rate, or
//! as fast as one CPU can, without pktgen (see `trafficgen`). Reports what
//! the interface transmitted by its own counters, the program runs it did not
//! send, and for a veth what its peer received.

use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cmd::advice;
use crate::escape;
use crate::io::trafficgen::{Generator, Plan, Setup};
use crate::net::features::NDO_XMIT;
use crate::net::frame::{self, UdpSpec};
use crate::net::iface::{self, Iface};
use crate::net::mac::Mac;
use crate::net::netlink::{self, Link, IFF_LOWER_UP, IFF_UP};
use crate::output::{self, Output};
use crate::sampler::{parse_count, parse_interval, Rate, Sample};
use crate::stop::Stop;
use crate::xdp::attach;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to send out of
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Frames per second [default: as fast as one CPU can]
    #[arg(short, long, value_name = "PPS", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Stop after this many frames (-n, as before, works too)
    #[arg(short, long, short_alias = 'n', value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,
    /// Stop after this many seconds
    #[arg(short = 't', long, value_name = "S", value_parser = parse_interval)]
    pub duration: Option<f64>,
    /// Frame size in bytes, Ethernet header included, FCS excluded
    #[arg(short, long, value_name = "B", default_value_t = 64)]
    pub size: usize,
    /// Destination MAC, unicast or group [default: the veth peer's]
    #[arg(long, value_name = "MAC")]
    pub dst_mac: Option<Mac>,
    /// Source MAC, unicast [default: the interface's]
    #[arg(long, value_name = "MAC", value_parser = parse_src_mac)]
    pub src_mac: Option<Mac>,
    /// Source address (RFC 2544's benchmarking range by default)
    #[arg(long, value_name = "IP")]
    pub src_ip: Option<IpAddr>,
    /// Destination address, IPv4 or IPv6 like --src-ip
    #[arg(long, value_name = "IP")]
    pub dst_ip: Option<IpAddr>,
    /// UDP source port
    #[arg(long, value_name = "PORT", default_value_t = 9)]
    pub udp_src: u16,
    /// UDP destination port, or FIRST-LAST to cycle through a range
    #[arg(long, value_name = "PORT[-LAST]", default_value = "9", value_parser = parse_ports)]
    pub udp_dst: (u16, u16),
    /// Seconds between progress lines
    #[arg(short, long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a rate between 1 and 1000000000 frames per second")),
    }
}

/// A source MAC names one station: a group address (multicast, broadcast)
/// is only ever a destination.
fn parse_src_mac(s: &str) -> Result<Mac, String> {
    let mac: Mac = s.parse().map_err(|e| format!("{e}"))?;
    if mac.is_group() {
        return Err(format!(
            "{s:?} is a group (multicast or broadcast) address, which no frame may come from; \
             give a unicast MAC (first octet even, like 02:00:5e:10:00:01)"
        ));
    }
    Ok(mac)
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port (0-65535) or a range FIRST-LAST with FIRST <= LAST");
    let (first, last) = s.split_once('-').unwrap_or((s, s));
    let first: u16 = first.parse().map_err(|_| bad())?;
    let last: u16 = last.parse().map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    Ok((first, last))
}

/// A report's own fields, in the sampler's envelope. Bytes are frames
/// times the frame size.
#[derive(Serialize)]
struct Fields<'a> {
    ifname: &'a str,
    ifindex: u32,
    prog_id: u32,
    /// Frames the interface transmitted, by its own counter (tx_packets).
    sent: Rate,
    /// Runs of the generator program: frames handed to the interface.
    runs: Rate,
    /// Runs the interface did not transmit: `runs` - `sent`.
    not_sent: Rate,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_ifname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<Rate>,
    #[serde(rename = "final")]
    last: bool,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let dev = iface::resolve(&args.dev)?;
    let link = netlink::get_link(dev.index, None)?;
    let peer = netlink::peer_of(&link)?;
    check_can_send(&dev, &link, peer.as_ref())?;
    let spec = frame_spec(args, &dev, &link, peer.as_ref())?;
    let frame = frame::udp(&spec)?;

    let setup = Setup {
        dev: &dev,
        frame: &frame,
        udp_offset: frame::udp_offset(spec.dst_ip),
        dst_ports: args.udp_dst,
    };
    let mut storage = MaybeUninit::uninit();
    let mut gen = Generator::new(&setup, &mut storage)?;
    let stop = Stop::install()?;

    let ports = match args.udp_dst {
        (a, b) if a == b => a.to_string(),
        (a, b) => format!("{a}-{b}"),
    };
    let rate = args.rate.map_or("as fast as possible".to_string(), |r| format!("at {r:.0} pps"));
    out.info(format!(
        "Sending {}-byte UDP frames {} -> {} ({}) out of {} {rate}; Ctrl-C stops",
        spec.size,
        host_port(spec.src_ip, &spec.src_port.to_string()),
        host_port(spec.dst_ip, &ports),
        spec.dst_mac,
        escape::text(&dev.name)
    ));

    let plan = Plan {
        pps: args.rate,
        count: args.count,
        duration: args.duration.map(Duration::from_secs_f64),
        interval: Duration::from_secs_f64(args.interval),
    };
    let mut meter = Meter::new(&dev, gen.prog_id()?, &link, peer.as_ref(), spec.size, out)?;
    let runs = gen.run(&plan, || stop.requested(), |runs| meter.report(runs, false))?;
    meter.finish(runs)
}

/// Refuse what would send nothing: a down interface, or one whose frames
/// are dropped where it hands them over.
fn check_can_send(dev: &Iface, link: &Link, peer: Option<&Link>) -> Result<()> {
    if link.flags & IFF_UP == 0 {
        bail!("{} is down; bring it up: `ip link set {} up`", dev.name, dev.name);
    }
    if link.flags & IFF_LOWER_UP == 0 {
        match peer {
            Some(p) => bail!("{} has no carrier: its veth peer {} is down", dev.name, p.name),
            None => bail!("{} has no carrier (cable or link partner down)", dev.name),
        }
    }
    match (attach::features(dev.index)?, peer) {
        (Some(f), _) if f & NDO_XMIT != 0 => Ok(()),
        // The fixes run where the peer lives, which may be another namespace.
        (Some(_), Some(p)) => bail!(
            "{}'s veth peer {} would drop the frames: it has no XDP program and GRO off; {} \
             or load a program on it: {}",
            dev.name,
            p.name,
            advice::on_peer(
                &format!("ethtool -K {} gro on", escape::text(&p.name)),
                link.link_netnsid
            )?,
            advice::load_on_peer(p, link.link_netnsid)?
        ),
        // No native XDP at all (lo, most virtual devices): no program helps.
        (Some(0), None) => bail!(
            "{} cannot transmit XDP frames: its driver has no native XDP; send out of one end \
             of a veth pair, or a NIC whose driver transmits XDP frames (`xdpctl features \
             --dev IF` tells)",
            dev.name
        ),
        (Some(_), None) => bail!(
            "{} cannot transmit XDP frames (its driver lacks ndo_xdp_xmit, or wants an XDP \
             program attached first: try `xdpctl load --dev {} --progsec xdp_pass`)",
            dev.name,
            dev.name
        ),
        (None, _) => Ok(()),
    }
}

fn frame_spec(args: &Args, dev: &Iface, link: &Link, peer: Option<&Link>) -> Result<UdpSpec> {
    let Some(dst_mac) = args.dst_mac.or(peer.and_then(|p| p.mac)) else {
        bail!("{} is no veth, so there is no peer MAC to send to; give --dst-mac", dev.name);
    };
    let Some(src_mac) = args.src_mac.or(link.mac) else {
        bail!("{} has no MAC address; give --src-mac", dev.name);
    };
    // RFC 2544 (IPv4) and RFC 5180 (IPv6) benchmarking addresses by default,
    // in the family of whichever address was given.
    let v6 = args.src_ip.or(args.dst_ip).is_some_and(|ip| ip.is_ipv6());
    let default = |host: u8| -> IpAddr {
        if v6 {
            IpAddr::from([0x2001, 2, 0, 0, 0, 0, 0, u16::from(host)])
        } else {
            IpAddr::from([198, 18, 0, host])
        }
    };
    let spec = UdpSpec {
        src_mac,
        dst_mac,
        src_ip: args.src_ip.unwrap_or_else(|| default(1)),
        dst_ip: args.dst_ip.unwrap_or_else(|| default(2)),
        src_port: args.udp_src,
        dst_port: args.udp_dst.0,
        size: args.size,
    };
    if let Some(mtu) = link.mtu {
        let most = mtu as usize + frame::ETH_LEN;
        if spec.size > most {
            bail!(
                "--size {} does not fit {}'s MTU of {mtu} (at most {most} bytes with the \
                 Ethernet header); lower --size or raise the MTU",
                spec.size,
                dev.name
            );
        }
    }
    Ok(spec)
}

/// Progress lines: frames the interface transmitted, program runs it did
/// not, and what the veth peer counted received.
struct Meter<'a> {
    dev: &'a Iface,
    prog_id: u32,
    peer: Option<(&'a Link, Option<i32>)>,
    size: usize,
    out: Output,
    start: Instant,
    at: Instant,
    /// Totals at the last report.
    last: Totals,
    tx_base: u64,
    peer_base: Option<u64>,
}

/// Counts since the start of the run.
#[derive(Clone, Copy, Default)]
struct Totals {
    runs: u64,
    sent: u64,
    received: Option<u64>,
}

impl<'a> Meter<'a> {
    fn new(
        dev: &'a Iface,
        prog_id: u32,
        link: &Link,
        peer: Option<&'a Link>,
        size: usize,
        out: Output,
    ) -> Result<Self> {
        let peer = peer.map(|p| (p, link.link_netnsid));
        let mut meter = Meter {
            dev,
            prog_id,
            peer,
            size,
            out,
            start: Instant::now(),
            at: Instant::now(),
            last: Totals::default(),
            tx_base: 0,
            peer_base: None,
        };
        meter.tx_base = meter.tx()?;
        meter.peer_base = meter.peer_rx();
        meter.last.received = meter.peer_base.map(|_| 0);
        Ok(meter)
    }

    /// The interface's transmitted-frames counter. A veth counts there the
    /// frames its peer took; those it refused or had nowhere to put are not.
    fn tx(&self) -> Result<u64> {
        netlink::get_link(self.dev.index, None)
            .with_context(|| format!("reading {}'s counters", self.dev.name))?
            .tx_packets
            .with_context(|| format!("netlink gave no counters for {}", self.dev.name))
    }

    /// The peer's received-frames counter; None if it cannot be read (the
    /// peer may also have vanished).
    fn peer_rx(&self) -> Option<u64> {
        let (peer, netnsid) = self.peer?;
        netlink::get_link(peer.index, netnsid).ok()?.rx_packets
    }

    fn totals(&self, runs: u64) -> Result<Totals> {
        let received = match (self.peer_base, self.peer_rx()) {
            (Some(base), Some(rx)) => Some(rx.saturating_sub(base)),
            _ => None,
        };
        Ok(Totals { runs, sent: self.tx()?.saturating_sub(self.tx_base), received })
    }

    fn report(&mut self, runs: u64, last: bool) -> Result<()> {
        let now = Instant::now();
        let totals = self.totals(runs)?;
        self.report_at(totals, last, now)
    }

    fn report_at(&mut self, now: Totals, last: bool, at: Instant) -> Result<()> {
        // The final report covers the whole run; progress lines the interval.
        let (before, period) = if last {
            (Totals { received: now.received.map(|_| 0), ..Totals::default() }, at - self.start)
        } else {
            (self.last, at - self.at)
        };
        let period = period.as_secs_f64();
        let size = self.size as u64;
        let rate = |total: u64, before: u64| {
            Rate::new((before, before * size), (total, total * size), period)
        };
        let not_sent = |t: &Totals| t.runs.saturating_sub(t.sent);
        let sample = Fields {
            ifname: &self.dev.name,
            ifindex: self.dev.index,
            prog_id: self.prog_id,
            sent: rate(now.sent, before.sent),
            runs: rate(now.runs, before.runs),
            not_sent: rate(not_sent(&now), not_sent(&before)),
            peer_ifname: self.peer.map(|(p, _)| p.name.as_str()),
            received: now.received.map(|r| rate(r, before.received.unwrap_or(0))),
            last,
        };
        self.at = at;
        self.last = now;
        if self.out.json {
            return self.out.json(&Sample::new(period, sample));
        }
        let mut line = format!(
            "{}{}: sent {} ({:.0} pps, {:.1} Mbit/s), {} of {} program runs not sent",
            if last { "total over the run, " } else { "" },
            escape::text(sample.ifname),
            output::count(sample.sent.packets, "frame"),
            sample.sent.pps,
            sample.sent.bps / 1e6,
            sample.not_sent.packets,
            sample.runs.packets,
        );
        if let (Some(peer), Some(r)) = (sample.peer_ifname, &sample.received) {
            let peer = escape::text(peer);
            line.push_str(&format!("; {peer} received {} ({:.0} pps)", r.packets, r.pps));
        }
        if last {
            // The summary, not a sample: --quiet drops it.
            self.out.info(line);
            return Ok(());
        }
        line.push('\n');
        self.out.print(&line)
    }

    fn finish(&mut self, runs: u64) -> Result<()> {
        let end = Instant::now();
        // The counters move once the frames have passed the receive path of
        // the peer: a moment after the last run returns.
        std::thread::sleep(Duration::from_millis(50));
        let totals = self.totals(runs)?;
        self.report_at(totals, true, end)
    }
}

/// `ip:port` as URLs and socket addresses write it: an IPv6 address in
/// brackets, so its colons stay apart from the port's.
fn host_port(ip: IpAddr, port: &str) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_address_and_its_port_are_told_apart() {
        assert_eq!(host_port("10.0.0.1".parse().unwrap(), "9"), "10.0.0.1:9");
        assert_eq!(host_port("fc00::1".parse().unwrap(), "9-10"), "[fc00::1]:9-10");
    }
}
