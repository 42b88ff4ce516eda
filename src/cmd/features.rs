//! `xdpctl features`: what an interface can do with XDP before anything is
//! attached: the kernel's XDP feature flags, the driver, MTUs and queues,
//! the native-mode MTU limit where it can be known, and AF_XDP's modes.
//! Only asks; attaches and changes nothing.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::escape;
use crate::net::ethtool;
use crate::net::features::{self, BASIC, NDO_XMIT, RX_SG, XSK_ZEROCOPY};
use crate::net::iface::{self, Iface};
use crate::net::netlink::{self, Link};
use crate::output::Output;
use crate::xdp::attach;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The interface to describe
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
}

#[derive(Serialize, Debug)]
struct Report {
    ifname: String,
    ifindex: u32,
    /// enum netdev_xdp_act bits, named in `xdp_features`.
    #[serde(skip)]
    flags: Option<u64>,
    /// ethtool's driver name; None if the device has none.
    driver: Option<String>,
    mtu: Option<u32>,
    min_mtu: Option<u32>,
    max_mtu: Option<u32>,
    /// Queues in use (None: the driver does not say), and allocated.
    rx_queues: Option<u32>,
    tx_queues: Option<u32>,
    rx_queues_allocated: Option<u32>,
    tx_queues_allocated: Option<u32>,
    /// Flag names; None on kernels that announce none (before 6.3).
    xdp_features: Option<Vec<String>>,
    /// A program attaches in native (driver) mode: `basic`.
    native: Option<bool>,
    /// Native programs declaring frags get frames larger than a page: `rx-sg`.
    frags: Option<bool>,
    /// Frames redirected to the device are sent: `ndo-xmit`.
    redirect_target: Option<bool>,
    /// AF_XDP in zero-copy mode: `xsk-zerocopy`. Copy mode works anywhere
    /// a program does (native, or skb mode on any device).
    zero_copy: Option<bool>,
    /// The most buffers a zero-copy frame may span.
    zc_max_segs: Option<u32>,
    /// The other end, for a veth.
    peer: Option<Peer>,
    native_mtu_limit: MtuLimit,
    /// Whether a native program attaches at the MTU now in force.
    native_at_current_mtu: Fits,
}

#[derive(Serialize, Debug)]
struct Peer {
    /// None when its namespace may not be read (CAP_NET_ADMIN there).
    ifname: Option<String>,
    ifindex: u32,
    /// In another network namespace (by the id this one knows it by).
    netnsid: Option<i32>,
    mtu: Option<u32>,
}

#[derive(Serialize, Debug, Default)]
struct MtuLimit {
    /// The largest MTU at which a program without / with frags attaches in
    /// native mode; None where the kernel's rule is not known.
    without_frags: Option<u32>,
    with_frags: Option<u32>,
    /// Whose MTU the limit is about: "peer" for a veth.
    applies_to: Option<&'static str>,
    /// The sizes the limit was computed from.
    computed_from: Option<Sizes>,
}

#[derive(Serialize, Debug)]
struct Sizes {
    page: u32,
    headroom: u32,
    skb_shared_info: u32,
    header: u32,
    max_frags: u32,
}

#[derive(Serialize, Debug, Default)]
struct Fits {
    without_frags: Option<bool>,
    with_frags: Option<bool>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let dev = iface::resolve(&args.dev)?;
    let report = gather(&dev)?;
    if out.json {
        return out.json(&report);
    }
    out.print(&render(&report))
}

fn gather(dev: &Iface) -> Result<Report> {
    let link = netlink::get_link(dev.index, None)
        .with_context(|| format!("asking rtnetlink about {}", dev.name))?;
    let driver = ethtool::driver(&dev.name)
        .with_context(|| format!("asking ethtool for the driver of {}", dev.name))?;
    let channels = ethtool::channels(&dev.name)
        .with_context(|| format!("asking ethtool for the channels of {}", dev.name))?;
    let announced = attach::announced(dev.index)?;
    let flags = announced.map(|a| a.flags);
    let veth = link.kind.as_deref() == Some("veth");
    let peer = if veth { peer(&link)? } else { None };
    let limit = if veth { features::veth_limit()? } else { None };

    let has = |bit: u64| flags.map(|f| f & bit != 0);
    let native = has(BASIC);
    let peer_mtu = peer.as_ref().and_then(|p| p.mtu);
    let fits = |limit: Option<u32>| match native {
        Some(true) => limit.zip(peer_mtu).map(|(l, m)| m <= l),
        other => other,
    };
    // A driver without rx-sg hands a frags program one buffer per frame:
    // its limit is the driver's own, which only veth's is known here.
    let frags_limit = limit.filter(|_| has(RX_SG) == Some(true)).map(|l| l.with_frags());
    // In use: what the driver reports; a device with one queue uses it.
    let in_use = |ethtool: Option<u32>, allocated: Option<u32>| {
        ethtool.filter(|&n| n > 0).or(allocated.filter(|&n| n == 1))
    };
    Ok(Report {
        ifname: dev.name.clone(),
        ifindex: dev.index,
        flags,
        driver,
        mtu: link.mtu,
        min_mtu: link.min_mtu,
        max_mtu: link.max_mtu,
        rx_queues: in_use(channels.map(|c| c.rx), link.rx_queues),
        tx_queues: in_use(channels.map(|c| c.tx), link.tx_queues),
        rx_queues_allocated: link.rx_queues,
        tx_queues_allocated: link.tx_queues,
        xdp_features: flags.map(features::names),
        native,
        frags: native.zip(has(RX_SG)).map(|(n, sg)| n && sg),
        redirect_target: has(NDO_XMIT),
        zero_copy: has(XSK_ZEROCOPY),
        zc_max_segs: announced.map(|a| a.zc_max_segs).filter(|&n| n > 0),
        peer,
        native_mtu_limit: MtuLimit {
            without_frags: limit.map(|l| l.without_frags()),
            with_frags: frags_limit,
            applies_to: limit.map(|_| "peer"),
            computed_from: limit.map(|l| Sizes {
                page: l.page,
                headroom: l.headroom,
                skb_shared_info: l.shared_info,
                header: l.header,
                max_frags: l.max_frags,
            }),
        },
        native_at_current_mtu: Fits {
            without_frags: fits(limit.map(|l| l.without_frags())),
            with_frags: fits(frags_limit),
        },
    })
}

/// The other end of the veth `link`. Reading it in another namespace takes
/// CAP_NET_ADMIN there: without, its index is all that is known.
fn peer(link: &Link) -> Result<Option<Peer>> {
    let Some(index) = link.link.filter(|&i| i != 0) else { return Ok(None) };
    let netnsid = link.link_netnsid;
    match netlink::get_link(index, netnsid) {
        Ok(p) => Ok(Some(Peer { ifname: Some(p.name), ifindex: index, netnsid, mtu: p.mtu })),
        Err(e) if netnsid.is_some() && refused(&e) => {
            Ok(Some(Peer { ifname: None, ifindex: index, netnsid, mtu: None }))
        }
        Err(e) => Err(e).with_context(|| format!("reading the veth peer of {}", link.name)),
    }
}

/// Whether the kernel refused for lack of privilege.
fn refused(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|n| n == libc::EPERM || n == libc::EACCES)
    })
}

fn or_unknown<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

/// The peer as text: its name, or its index where it could not be read.
fn peer_name(p: &Peer) -> String {
    match &p.ifname {
        Some(n) => escape::text(n).into_owned(),
        None => format!("ifindex {}", p.ifindex),
    }
}

fn render(r: &Report) -> String {
    let name = escape::text(&r.ifname);
    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push(("driver", escape::text(r.driver.as_deref().unwrap_or("unknown")).into_owned()));
    if let Some(p) = &r.peer {
        let s = match (&p.ifname, p.netnsid) {
            (Some(n), None) => format!("{} (ifindex {})", escape::text(n), p.ifindex),
            (Some(n), Some(_)) => {
                format!("{} (ifindex {} in another network namespace)", escape::text(n), p.ifindex)
            }
            (None, _) => format!(
                "ifindex {} in another network namespace (reading it there needs CAP_NET_ADMIN)",
                p.ifindex
            ),
        };
        rows.push(("veth peer", s));
    }
    rows.push((
        "MTU",
        format!(
            "{} (min {}, max {})",
            or_unknown(r.mtu),
            or_unknown(r.min_mtu),
            // The kernel's 0: no limit (loopback's, say).
            match r.max_mtu {
                Some(0) => "none".to_string(),
                m => or_unknown(m),
            }
        ),
    ));
    rows.push((
        "queues",
        format!(
            "rx {}, tx {} in use; {} and {} allocated",
            or_unknown(r.rx_queues),
            or_unknown(r.tx_queues),
            or_unknown(r.rx_queues_allocated),
            or_unknown(r.tx_queues_allocated)
        ),
    ));
    let Some(names) = &r.xdp_features else {
        rows.push(("XDP features", "unknown: this kernel (before 6.3) announces none".into()));
        return table(&name, r.ifindex, &rows);
    };
    let flags = r.flags.unwrap_or_default();
    rows.push(("XDP features", if names.is_empty() { "none".into() } else { names.join(" ") }));
    if !names.is_empty() {
        rows.push(("lacks", features::lacking(flags).join(" ")));
    }
    rows.push(("native mode", native_text(r)));
    rows.push((
        "frags",
        match (r.frags, r.native) {
            (Some(true), _) => {
                "yes (rx-sg): xdp.frags programs get frames larger than a page".into()
            }
            (_, Some(true)) => {
                "no (no rx-sg): a native program gets no frame larger than a page".into()
            }
            _ => "no: no native mode".into(),
        },
    ));
    rows.extend(limit_rows(r));
    rows.push(("redirect target", redirect_text(r)));
    rows.push(("AF_XDP", afxdp_text(r)));
    table(&name, r.ifindex, &rows)
}

fn native_text(r: &Report) -> String {
    match (r.native, &r.peer) {
        (Some(true), _) => "yes (basic)".into(),
        // veth clears every flag while its peer sends on more queues than
        // it receives on (veth_set_xdp_features); an attach gets ENOSPC.
        (_, Some(p)) => format!(
            "no: a veth announces nothing while its peer {} has more tx queues in use than \
             it has rx queues (XDP needs at least as many; `ethtool -L` sets them)",
            peer_name(p)
        ),
        _ => "no: the driver has no native XDP; programs run in skb mode (--mode skb)".into(),
    }
}

fn limit_rows(r: &Report) -> Vec<(&'static str, String)> {
    let l = &r.native_mtu_limit;
    if r.native != Some(true) {
        return vec![("native MTU limit", "none: no native mode".into())];
    }
    let (Some(without), Some(sizes)) = (l.without_frags, &l.computed_from) else {
        let why = if r.peer.is_some() {
            "xdpctl knows veth's sizes on x86_64 with kernel BTF only"
        } else {
            "the kernel has no query for it and the driver decides at attach time; \
             an attach it refuses fails with ERANGE (or EINVAL) and says so"
        };
        return vec![
            ("native MTU limit", format!("unknown: {why}")),
            ("at this MTU", "unknown".into()),
        ];
    };
    let peer = r.peer.as_ref().map(peer_name).unwrap_or_default();
    let peer_mtu = r.peer.as_ref().and_then(|p| p.mtu);
    let mut rows = vec![
        (
            "native MTU limit",
            format!(
                "{without} without frags, {} with frags, on the peer's MTU ({peer}: {})",
                or_unknown(l.with_frags),
                or_unknown(peer_mtu)
            ),
        ),
        (
            "",
            format!(
                "veth's rule: page {} - headroom {} - skb_shared_info {} - Ethernet header {}; \
                 with frags + {} x page",
                sizes.page, sizes.headroom, sizes.skb_shared_info, sizes.header, sizes.max_frags
            ),
        ),
    ];
    let fits = |v: Option<bool>| match v {
        Some(true) => "attaches",
        Some(false) => "refused (ERANGE)",
        None => "unknown",
    };
    rows.push((
        "at this MTU",
        format!(
            "a native program without frags: {}; with frags: {}",
            fits(r.native_at_current_mtu.without_frags),
            fits(r.native_at_current_mtu.with_frags)
        ),
    ));
    rows
}

fn redirect_text(r: &Report) -> String {
    match (r.redirect_target, &r.peer) {
        (Some(true), _) => "yes (ndo-xmit): frames native programs redirect to it are sent".into(),
        (_, Some(p)) => format!(
            "no (no ndo-xmit): frames native programs redirect to it, and its own XDP_TX, \
             are dropped until its peer {} has an XDP program or GRO on",
            peer_name(p)
        ),
        _ => "no (no ndo-xmit): frames native programs redirect to it are dropped".into(),
    }
}

fn afxdp_text(r: &Report) -> String {
    let copy = if r.native == Some(true) {
        "copy mode: yes"
    } else {
        "copy mode: with the program in skb mode (--mode skb)"
    };
    let zc = match (r.zero_copy, r.zc_max_segs) {
        (Some(true), Some(n)) => format!("yes (xsk-zerocopy; a frame may span up to {n} buffers)"),
        (Some(true), None) => "yes (xsk-zerocopy)".into(),
        _ => "no (no xsk-zerocopy)".into(),
    };
    format!("{copy}; zero-copy: {zc}")
}

fn table(name: &str, ifindex: u32, rows: &[(&str, String)]) -> String {
    let mut text = format!("{name} (ifindex {ifindex})\n");
    for (key, value) in rows {
        text.push_str(&format!("  {key:<17} {value}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::features::VethLimit;

    fn veth(flags: u64, peer_mtu: u32) -> Report {
        let limit =
            VethLimit { page: 4096, headroom: 256, shared_info: 320, header: 14, max_frags: 17 };
        let native = Some(flags & BASIC != 0);
        let fits = |l: u32| native.map(|n| n && peer_mtu <= l);
        Report {
            ifname: "x\u{1b}[2J".into(),
            ifindex: 7,
            flags: Some(flags),
            driver: Some("veth".into()),
            mtu: Some(1500),
            min_mtu: Some(68),
            max_mtu: Some(65535),
            rx_queues: Some(1),
            tx_queues: Some(1),
            rx_queues_allocated: Some(2),
            tx_queues_allocated: Some(2),
            xdp_features: Some(features::names(flags)),
            native,
            frags: Some(flags & RX_SG != 0),
            redirect_target: Some(flags & NDO_XMIT != 0),
            zero_copy: Some(false),
            zc_max_segs: None,
            peer: Some(Peer {
                ifname: Some("veth0".into()),
                ifindex: 2,
                netnsid: Some(0),
                mtu: Some(peer_mtu),
            }),
            native_mtu_limit: MtuLimit {
                without_frags: Some(limit.without_frags()),
                with_frags: Some(limit.with_frags()),
                applies_to: Some("peer"),
                computed_from: Some(Sizes {
                    page: 4096,
                    headroom: 256,
                    skb_shared_info: 320,
                    header: 14,
                    max_frags: 17,
                }),
            },
            native_at_current_mtu: Fits {
                without_frags: fits(limit.without_frags()),
                with_frags: fits(limit.with_frags()),
            },
        }
    }

    #[test]
    fn text_names_the_flags_the_limit_and_what_fits() {
        let text = render(&veth(BASIC | features::REDIRECT | RX_SG, 3507));
        assert!(text.starts_with("x\\x1b[2J (ifindex 7)\n"), "{text}");
        assert!(text.contains("  XDP features      basic redirect rx-sg\n"), "{text}");
        assert!(text.contains("lacks             ndo-xmit xsk-zerocopy hw-offload ndo-xmit-sg"));
        assert!(
            text.contains("3506 without frags, 73138 with frags, on the peer's MTU (veth0: 3507)")
        );
        assert!(text.contains("without frags: refused (ERANGE); with frags: attaches"), "{text}");
        assert!(text.contains("until its peer veth0 has an XDP program or GRO on"), "{text}");
        assert!(text.contains("veth peer         veth0 (ifindex 2 in another network namespace)"));
    }

    #[test]
    fn a_veth_without_flags_says_why() {
        let text = render(&veth(0, 1500));
        assert!(text.contains("XDP features      none\n"), "{text}");
        assert!(text.contains("more tx queues in use than it has rx queues"), "{text}");
        assert!(text.contains("native MTU limit  none: no native mode"), "{text}");
    }
}
