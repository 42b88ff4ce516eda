//! Three rtnetlink requests: RTM_GETLINK for a single interface, possibly in
//! another network namespace (by the netns id this namespace knows it by),
//! RTM_GETLINK as a dump of every interface of this namespace (with what XDP
//! runs there: one dump answers for all, where asking libbpf per interface
//! dumps the namespace each time), and RTM_NEWLINK for a veth pair. That is
//! all xdpctl asks of netlink (besides hearing of link changes, for
//! `apply --watch`), so it is spelled out here rather than pulling
//! in a netlink stack.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use crate::net::mac::Mac;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// NLM_F_ROOT | NLM_F_MATCH.
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLA_TYPE_MASK: u16 = 0x3fff;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_STATS64: u16 = 23;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// ifinfomsg flags: administratively up, and carrier (IFF_LOWER_UP).
pub const IFF_UP: u32 = 1;
pub const IFF_LOWER_UP: u32 = 1 << 16;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
/// XDP_ATTACHED_*: the one mode a single program runs in.
const XDP_ATTACHED_DRV: u8 = 1;
const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const IFLA_EXT_MASK: u16 = 29;
/// RTEXT_FILTER_SKIP_STATS: leave out the per-VF counters of SR-IOV devices
/// (the device's own counters come all the same).
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_TARGET_NETNSID: u16 = 46;
const IFLA_MIN_MTU: u16 = 50;
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const IFLA_MAX_MTU: u16 = 51;

/// What xdpctl wants to know of an interface.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    /// "veth", "bridge", ... (IFLA_INFO_KIND); None for plain devices.
    pub kind: Option<String>,
    /// The other end of a veth, the lower device of a macvlan (IFLA_LINK).
    pub link: Option<u32>,
    /// Namespace of `link`, if it is not this one (IFLA_LINK_NETNSID).
    pub link_netnsid: Option<i32>,
    /// An XDP program is attached (IFLA_XDP_ATTACHED).
    pub xdp_attached: bool,
    /// The programs attached, by mode (IFLA_XDP_*_PROG_ID).
    pub xdp: XdpProgs,
    /// Receive queues the device has (IFLA_NUM_RX_QUEUES).
    pub rx_queues: Option<u32>,
    /// Transmit queues the device has (IFLA_NUM_TX_QUEUES).
    pub tx_queues: Option<u32>,
    /// IFF_* flags of ifinfomsg.
    pub flags: u32,
    pub mtu: Option<u32>,
    /// The MTU range the device accepts (IFLA_MIN_MTU, IFLA_MAX_MTU).
    pub min_mtu: Option<u32>,
    pub max_mtu: Option<u32>,
    /// Frames received, from the device's 64-bit counters (IFLA_STATS64).
    pub rx_packets: Option<u64>,
    /// Frames transmitted, from the same counters.
    pub tx_packets: Option<u64>,
    /// Bytes received and transmitted, from the same counters.
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
}

/// The XDP programs of one interface, by mode; 0 where none runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpProgs {
    pub drv: u32,
    pub skb: u32,
    pub hw: u32,
}

/// Every interface of this network namespace, in one dump, by index
/// (without the per-VF counters, which a dump of many SR-IOV devices would
/// carry for nothing).
pub fn dump_links() -> Result<Vec<Link>> {
    let sock = send(&dump_request()?)?;
    let mut links = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())
            .context("reading netlink's dump")?;
        if len == 0 {
            bail!("netlink closed the dump before its end");
        }
        let mut rest = buf.get(..len).unwrap_or_default();
        while let Some(msg_len) = u32_at(rest, 0).map(|l| l as usize) {
            if msg_len < NLMSG_HDRLEN || msg_len > rest.len() {
                bail!("netlink dump: malformed message ({msg_len} bytes)");
            }
            let msg = &rest[..msg_len];
            if u16_at(msg, 4) == Some(NLMSG_DONE) {
                links.sort_by_key(|l: &Link| l.index);
                return Ok(links);
            }
            links.extend(parse_reply(msg).context("netlink dump")?);
            // Messages are aligned to 4 bytes.
            rest = rest.get((msg_len + 3) & !3..).unwrap_or_default();
        }
    }
}

/// RTMGRP_LINK: the multicast group of link changes (RTNLGRP_LINK).
const RTMGRP_LINK: u32 = 1;

/// A socket the kernel tells of every interface that appears or changes
/// in this namespace (RTNLGRP_LINK): `apply --watch` sleeps on it instead
/// of polling the interface list.
pub struct LinkEvents(OwnedFd);

impl LinkEvents {
    pub fn subscribe() -> Result<LinkEvents> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )
        .context("opening a netlink socket")?;
        bind(sock.as_raw_fd(), &NetlinkAddr::new(0, RTMGRP_LINK))
            .context("subscribing to link changes (RTNLGRP_LINK)")?;
        Ok(LinkEvents(sock))
    }

    /// Read every message waiting; whether one told of a new or changed
    /// interface (RTM_NEWLINK), or some were lost (the socket overran):
    /// either way the interfaces are to be read again.
    pub fn drain(&self) -> Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut news = false;
        loop {
            let len = match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(len) => len,
                Err(Errno::EAGAIN) => return Ok(news),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    news = true;
                    continue;
                }
                Err(e) => return Err(e).context("reading link changes from netlink"),
            };
            let mut rest = buf.get(..len).unwrap_or_default();
            while let Some(msg_len) = u32_at(rest, 0).map(|l| l as usize) {
                if msg_len < NLMSG_HDRLEN || msg_len > rest.len() {
                    break;
                }
                news |= u16_at(rest, 4) == Some(RTM_NEWLINK);
                rest = rest.get((msg_len + 3) & !3..).unwrap_or_default();
            }
        }
    }
}

impl AsFd for LinkEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The interface `index` of this namespace, or of the namespace this one
/// calls `netnsid`.
pub fn get_link(index: u32, netnsid: Option<i32>) -> Result<Link> {
    let answer = ask(&getlink_request(index, netnsid)?)?;
    parse_reply(&answer)
        .with_context(|| format!("netlink: interface {index}"))?
        .context("netlink answered without the interface")
}

/// The id this namespace knows the namespace of nsfs file `ns` by (what
/// IFLA_LINK_NETNSID gives of a veth's peer there); None if it has none.
pub fn nsid_of(ns: BorrowedFd<'_>) -> Result<Option<i32>> {
    let mut msg = header(RTM_GETNSID, NLM_F_REQUEST);
    // struct rtgenmsg, padded to 4 bytes.
    msg.extend_from_slice(&[0; 4]);
    msg.extend(attr(NETNSA_FD, &(ns.as_raw_fd() as u32).to_ne_bytes()));
    let answer = ask(&finish(msg)?)?;
    let (Some(len), Some(kind)) = (u32_at(&answer, 0), u16_at(&answer, 4)) else {
        bail!("netlink: short answer to RTM_GETNSID");
    };
    if kind != RTM_NEWNSID {
        // An error: parse_reply says which.
        parse_reply(&answer).context("netlink: asking a namespace's id")?;
        bail!("netlink: unexpected answer to RTM_GETNSID");
    }
    let body = answer.get(NLMSG_HDRLEN + 4..len as usize).unwrap_or_default();
    let nsid = attrs(body).into_iter().find(|(k, _)| *k == NETNSA_NSID);
    Ok(nsid.and_then(|(_, v)| u32_at(v, 0)).map(|v| v as i32).filter(|id| *id >= 0))
}

/// Create the veth pair `name`/`peer` in this thread's network namespace.
pub fn add_veth(name: &str, peer: &str) -> Result<()> {
    let answer = ask(&add_veth_request(name, peer)?)?;
    match parse_reply(&answer) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => bail!("unexpected answer to RTM_NEWLINK"),
        Err(e) => Err(e).with_context(|| format!("creating veth pair {name}/{peer}")),
    }
}

/// Send one request and return the one message that answers it.
fn ask(request: &[u8]) -> Result<Vec<u8>> {
    let sock = send(request)?;
    let mut buf = vec![0u8; 64 * 1024];
    let len =
        recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).context("reading netlink's answer")?;
    buf.truncate(len);
    Ok(buf)
}

/// A new rtnetlink socket with `request` sent on it, for the answer to be read.
fn send(request: &[u8]) -> Result<OwnedFd> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .context("opening a netlink socket")?;
    sendto(sock.as_raw_fd(), request, &NetlinkAddr::new(0, 0), MsgFlags::empty())
        .context("sending a netlink request")?;
    Ok(sock)
}

/// The other end of the veth `index` of this namespace; None if it is no veth.
pub fn veth_peer(index: u32) -> Result<Option<Link>> {
    peer_of(&get_link(index, None)?)
}

/// The other end of `link` if it is a veth of this namespace; None otherwise.
pub fn peer_of(link: &Link) -> Result<Option<Link>> {
    match (link.kind.as_deref(), link.link) {
        (Some("veth"), Some(peer)) => get_link(peer, link.link_netnsid).map(Some),
        _ => Ok(None),
    }
}

fn getlink_request(index: u32, netnsid: Option<i32>) -> Result<Vec<u8>> {
    let index = i32::try_from(index).context("interface index out of range")?;
    let mut msg = header(RTM_GETLINK, NLM_F_REQUEST);
    ifinfomsg(&mut msg, index);
    if let Some(id) = netnsid {
        msg.extend(attr(IFLA_TARGET_NETNSID, &id.to_ne_bytes()));
    }
    finish(msg)
}

fn dump_request() -> Result<Vec<u8>> {
    let mut msg = header(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
    ifinfomsg(&mut msg, 0);
    msg.extend(attr(IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes()));
    finish(msg)
}

fn add_veth_request(name: &str, peer: &str) -> Result<Vec<u8>> {
    let mut msg = header(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    ifinfomsg(&mut msg, 0);
    msg.extend(attr(IFLA_IFNAME, &c_string(name)));
    // The peer is described by an ifinfomsg of its own followed by its attributes.
    let mut peer_info = Vec::new();
    ifinfomsg(&mut peer_info, 0);
    peer_info.extend(attr(IFLA_IFNAME, &c_string(peer)));
    let data = attr(VETH_INFO_PEER | NLA_F_NESTED, &peer_info);
    let mut info = attr(IFLA_INFO_KIND, b"veth\0");
    info.extend(attr(IFLA_INFO_DATA | NLA_F_NESTED, &data));
    msg.extend(attr(IFLA_LINKINFO | NLA_F_NESTED, &info));
    finish(msg)
}

/// nlmsghdr: length (set by `finish`), type, flags, seq, pid (0: the kernel).
fn header(kind: u16, flags: u16) -> Vec<u8> {
    let mut msg = Vec::with_capacity(128);
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg
}

/// ifinfomsg: family, pad, type, index, flags, change.
fn ifinfomsg(msg: &mut Vec<u8>, index: i32) {
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]);
}

/// One attribute, padded to 4 bytes.
fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(payload.len() + 8);
    // Payloads here are names and nested headers: far below 64 KiB.
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize((a.len() + 3) & !3, 0);
    a
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn finish(mut msg: Vec<u8>) -> Result<Vec<u8>> {
    let len = u32::try_from(msg.len()).context("netlink request length")?;
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    Ok(msg)
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Attributes as (type, payload), stopping at the first malformed one.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind)) = (u16_at(buf, 0), u16_at(buf, 2)) {
        let len = usize::from(len);
        let Some(payload) = buf.get(4..len) else { break };
        out.push((kind & NLA_TYPE_MASK, payload));
        // Attributes are padded to 4 bytes.
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    out
}

/// The interface an answer describes; None for a plain acknowledgement.
fn parse_reply(buf: &[u8]) -> Result<Option<Link>> {
    let (Some(len), Some(kind)) = (u32_at(buf, 0), u16_at(buf, 4)) else {
        bail!("short answer ({} bytes)", buf.len());
    };
    let body = buf.get(NLMSG_HDRLEN..len as usize).context("truncated answer")?;
    match kind {
        NLMSG_ERROR => {
            let errno = u32_at(body, 0).context("truncated error")? as i32;
            if errno == 0 {
                return Ok(None);
            }
            Err(std::io::Error::from_raw_os_error(-errno)).context("the kernel refused")
        }
        RTM_NEWLINK => {
            let index = u32_at(body, 4).context("truncated ifinfomsg")?;
            let flags = u32_at(body, 8).context("truncated ifinfomsg")?;
            let mut link = Link { index, flags, ..Link::default() };
            for (kind, data) in attrs(body.get(IFINFOMSG_LEN..).unwrap_or_default()) {
                match kind {
                    IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(data).ok().map(Mac),
                    IFLA_IFNAME => {
                        let name = data.split(|&b| b == 0).next().unwrap_or_default();
                        link.name = String::from_utf8_lossy(name).into_owned();
                    }
                    IFLA_LINK => link.link = u32_at(data, 0),
                    IFLA_MTU => link.mtu = u32_at(data, 0),
                    IFLA_LINK_NETNSID => link.link_netnsid = u32_at(data, 0).map(|v| v as i32),
                    IFLA_NUM_RX_QUEUES => link.rx_queues = u32_at(data, 0),
                    IFLA_NUM_TX_QUEUES => link.tx_queues = u32_at(data, 0),
                    IFLA_MIN_MTU => link.min_mtu = u32_at(data, 0),
                    IFLA_MAX_MTU => link.max_mtu = u32_at(data, 0),
                    // struct rtnl_link_stats64 starts with rx_packets,
                    // tx_packets, rx_bytes, tx_bytes.
                    IFLA_STATS64 => {
                        link.rx_packets = u64_at(data, 0);
                        link.tx_packets = u64_at(data, 8);
                        link.rx_bytes = u64_at(data, 16);
                        link.tx_bytes = u64_at(data, 24);
                    }
                    IFLA_LINKINFO => {
                        link.kind = attrs(data)
                            .into_iter()
                            .find(|(k, _)| *k == IFLA_INFO_KIND)
                            .map(|(_, v)| {
                                let v = v.split(|&b| b == 0).next().unwrap_or_default();
                                String::from_utf8_lossy(v).into_owned()
                            });
                    }
                    IFLA_XDP => (link.xdp_attached, link.xdp) = xdp_progs(data),
                    _ => {}
                }
            }
            Ok(Some(link))
        }
        other => bail!("unexpected netlink message type {other}"),
    }
}

/// IFLA_XDP's nest: whether a program is attached, and which by mode. The
/// kernel names each mode's program; older kernels only the one program
/// (IFLA_XDP_PROG_ID) with its mode in IFLA_XDP_ATTACHED.
fn xdp_progs(nest: &[u8]) -> (bool, XdpProgs) {
    let mut attached = 0u8;
    let mut single = 0u32;
    let mut progs = XdpProgs::default();
    for (kind, v) in attrs(nest) {
        match kind {
            IFLA_XDP_ATTACHED => attached = v.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => single = u32_at(v, 0).unwrap_or(0),
            IFLA_XDP_DRV_PROG_ID => progs.drv = u32_at(v, 0).unwrap_or(0),
            IFLA_XDP_SKB_PROG_ID => progs.skb = u32_at(v, 0).unwrap_or(0),
            IFLA_XDP_HW_PROG_ID => progs.hw = u32_at(v, 0).unwrap_or(0),
            _ => {}
        }
    }
    if progs == XdpProgs::default() {
        match attached {
            XDP_ATTACHED_DRV => progs.drv = single,
            XDP_ATTACHED_SKB => progs.skb = single,
            XDP_ATTACHED_HW => progs.hw = single,
            _ => {}
        }
    }
    (attached != 0, progs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn reads_the_attributes_of_a_veth() {
        let mut body = vec![0, 0, 1, 0];
        body.extend_from_slice(&7u32.to_ne_bytes());
        body.extend_from_slice(&(IFF_UP | IFF_LOWER_UP).to_ne_bytes());
        body.extend_from_slice(&[0; 4]);
        let mut stats = 1234u64.to_ne_bytes().to_vec();
        stats.extend_from_slice(&5678u64.to_ne_bytes());
        stats.extend_from_slice(&98_765u64.to_ne_bytes());
        stats.extend_from_slice(&43_210u64.to_ne_bytes());
        stats.resize(200, 0);
        body.extend(attr(IFLA_STATS64, &stats));
        body.extend(attr(IFLA_MTU, &1500u32.to_ne_bytes()));
        body.extend(attr(IFLA_IFNAME, b"veth0\0"));
        body.extend(attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 9]));
        body.extend(attr(IFLA_LINK, &12u32.to_ne_bytes()));
        body.extend(attr(IFLA_LINK_NETNSID, &3i32.to_ne_bytes()));
        body.extend(attr(IFLA_LINKINFO | 0x8000, &attr(IFLA_INFO_KIND, b"veth\0")));
        let mut xdp = attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_DRV]);
        xdp.extend(attr(IFLA_XDP_DRV_PROG_ID, &42u32.to_ne_bytes()));
        xdp.extend(attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes()));
        body.extend(attr(IFLA_XDP | 0x8000, &xdp));
        body.extend(attr(IFLA_NUM_RX_QUEUES, &4u32.to_ne_bytes()));
        body.extend(attr(IFLA_NUM_TX_QUEUES, &3u32.to_ne_bytes()));
        body.extend(attr(IFLA_MIN_MTU, &68u32.to_ne_bytes()));
        body.extend(attr(IFLA_MAX_MTU, &65535u32.to_ne_bytes()));
        let link = parse_reply(&message(RTM_NEWLINK, &body)).unwrap().unwrap();
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "veth0".into(),
                mac: Some(Mac([2, 0, 0, 0, 0, 9])),
                kind: Some("veth".into()),
                link: Some(12),
                link_netnsid: Some(3),
                xdp_attached: true,
                xdp: XdpProgs { drv: 42, skb: 0, hw: 0 },
                rx_queues: Some(4),
                tx_queues: Some(3),
                flags: IFF_UP | IFF_LOWER_UP,
                mtu: Some(1500),
                min_mtu: Some(68),
                max_mtu: Some(65535),
                rx_packets: Some(1234),
                tx_packets: Some(5678),
                rx_bytes: Some(98_765),
                tx_bytes: Some(43_210),
            }
        );
    }

    #[test]
    fn an_error_answer_carries_the_errno() {
        let body = (-19i32).to_ne_bytes(); // ENODEV
        let err = parse_reply(&message(NLMSG_ERROR, &body)).unwrap_err();
        let io = err.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(19));
        // errno 0 is the acknowledgement of a request that asked for one.
        assert_eq!(parse_reply(&message(NLMSG_ERROR, &0i32.to_ne_bytes())).unwrap(), None);
    }

    #[test]
    fn a_veth_request_nests_the_peer_in_linkinfo() {
        let req = add_veth_request("hold", "hold-peer").unwrap();
        assert_eq!(u32_at(&req, 0).unwrap() as usize, req.len());
        assert_eq!(u16_at(&req, 4), Some(RTM_NEWLINK));
        let top = attrs(&req[32..]);
        assert_eq!(top[0], (IFLA_IFNAME, &b"hold\0"[..]));
        assert_eq!(top[1].0, IFLA_LINKINFO);
        let info = attrs(top[1].1);
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"veth\0"[..]));
        let peer = attrs(attrs(info[1].1)[0].1.get(IFINFOMSG_LEN..).unwrap());
        assert_eq!(peer, vec![(IFLA_IFNAME, &b"hold-peer\0"[..])]);
    }

    #[test]
    fn asks_for_one_index_in_the_given_namespace() {
        let req = getlink_request(5, Some(2)).unwrap();
        assert_eq!(req.len(), 16 + 16 + 8);
        assert_eq!(u32_at(&req, 0), Some(40));
        assert_eq!(u16_at(&req, 4), Some(RTM_GETLINK));
        assert_eq!(u32_at(&req, 20), Some(5));
        assert_eq!(attrs(&req[32..]), vec![(IFLA_TARGET_NETNSID, &2i32.to_ne_bytes()[..])]);
    }

    #[test]
    fn reads_each_mode_of_a_multi_attachment_and_the_single_one_of_old_kernels() {
        let mut multi = attr(IFLA_XDP_ATTACHED, &[4]);
        multi.extend(attr(IFLA_XDP_SKB_PROG_ID, &7u32.to_ne_bytes()));
        multi.extend(attr(IFLA_XDP_HW_PROG_ID, &8u32.to_ne_bytes()));
        assert_eq!(xdp_progs(&multi), (true, XdpProgs { drv: 0, skb: 7, hw: 8 }));
        let mut single = attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_SKB]);
        single.extend(attr(IFLA_XDP_PROG_ID, &9u32.to_ne_bytes()));
        assert_eq!(xdp_progs(&single), (true, XdpProgs { drv: 0, skb: 9, hw: 0 }));
        assert_eq!(xdp_progs(&attr(IFLA_XDP_ATTACHED, &[0])), (false, XdpProgs::default()));
    }

    #[test]
    fn a_dump_asks_for_every_link_without_vf_counters() {
        let req = dump_request().unwrap();
        assert_eq!(u16_at(&req, 4), Some(RTM_GETLINK));
        assert_eq!(u16_at(&req, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(u32_at(&req, 20), Some(0));
        let mask = RTEXT_FILTER_SKIP_STATS.to_ne_bytes();
        assert_eq!(attrs(&req[32..]), vec![(IFLA_EXT_MASK, &mask[..])]);
    }

    #[test]
    fn the_dump_lists_loopback() {
        let links = dump_links().unwrap();
        assert!(links.iter().any(|l| l.index == 1 && l.name == "lo"), "{links:?}");
    }

    #[test]
    fn finds_the_peer_of_a_real_veth_only() {
        // The loopback device exists everywhere and is no veth.
        assert_eq!(veth_peer(1).unwrap(), None);
        assert_eq!(get_link(1, None).unwrap().name, "lo");
    }
}
