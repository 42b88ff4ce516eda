//! `xdpctl redirect`: tell the loaded xdp_redirect or xdp_redirect_map where
//! to send packets, through the maps pinned for the interface (packet03's
//! xdp_prog_user).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};
use serde::Serialize;

use crate::cmd::advice;
use crate::escape;
use crate::net::features::NDO_XMIT;
use crate::net::iface::{self, Iface};
use crate::net::mac::Mac;
use crate::net::netlink;
use crate::obj::maps;
use crate::obj::skel::RedirectTarget;
use crate::output::Output;
use crate::xdp::attach;
use crate::xdp::bpffs;
use crate::xdp::ifstate::IfState;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface the redirect program is loaded on
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Interface to send the packets out of
    #[arg(short, long, value_name = "IF")]
    pub redirect_dev: String,
    /// Redirect packets from this MAC (xdp_redirect_map) [default: the MAC of
    /// the other end of --dev, if it is a veth]
    #[arg(short = 'L', long, value_name = "MAC")]
    pub src_mac: Option<String>,
    /// Destination MAC to give them [default: the MAC of the other end of
    /// --redirect-dev, if it is a veth]
    #[arg(short = 'R', long, value_name = "MAC")]
    pub dest_mac: Option<String>,
    /// Where the program's maps are pinned [default: where `xdpctl load` put them]
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

/// The shipped program whose maps are pinned, told apart by their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Program {
    XdpRedirect,
    XdpRedirectMap,
}

#[derive(Serialize)]
struct Written<'a> {
    ifname: &'a str,
    ifindex: u32,
    redirect_ifname: &'a str,
    redirect_ifindex: u32,
    program: Program,
    pin_dir: &'a Path,
    /// None: every packet (xdp_redirect).
    src_mac: Option<Mac>,
    dest_mac: Mac,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // Parsed here rather than by clap, so the error is one line like the rest.
    let given_src = parse_mac("--src-mac", args.src_mac.as_deref())?;
    let given_dest = parse_mac("--dest-mac", args.dest_mac.as_deref())?;
    let dev = iface::resolve(&args.dev)?;
    let target =
        iface::resolve(&args.redirect_dev).map_err(|e| advice::iface(e, "--redirect-dev"))?;
    bpffs::ensure_mounted()?;
    let dir = IfState::read(&dev)?.pin_dir(args.pin_dir.as_deref())?;
    let set = Setting::settle(&dev, &target, given_src, given_dest, &dir)?;
    set.write()?;
    let Setting { program, src_mac, dest_mac, target_peer, .. } = set;
    if out.json {
        out.json(&Written {
            ifname: &dev.name,
            ifindex: dev.index,
            redirect_ifname: &target.name,
            redirect_ifindex: target.index,
            program,
            pin_dir: &dir,
            src_mac,
            dest_mac,
        })?;
    } else {
        // What was set, not data asked for: --quiet drops it.
        let from = src_mac.map_or_else(|| "*".to_string(), |m| m.to_string());
        out.info(format!(
            "map dir: {}\nredirect from {} (ifindex {}) to {} (ifindex {})\nforward: {from} -> {dest_mac}\n",
            escape::path(&dir),
            escape::text(&dev.name),
            dev.index,
            escape::text(&target.name),
            target.index
        ));
    }
    // The maps are written: failing to look at the veth only loses advice.
    if let Err(e) = note_unreachable_veth(&target, target_peer.as_ref(), out) {
        out.warn(&format!("warning: could not check {}'s peer: {e:#}", escape::text(&target.name)));
    }
    Ok(())
}

/// A pinned map, a key and value to hold, and the map's name for messages.
type MapEntry = (MapHandle, Vec<u8>, Vec<u8>, &'static str);

/// Where a loaded redirect program is to send packets, settled (every MAC
/// known) but not yet written: `redirect` writes it, `apply` first asks
/// whether the maps hold it already.
pub struct Setting {
    dir: PathBuf,
    program: Program,
    target: Iface,
    target_peer: Option<netlink::Link>,
    /// None: every packet (xdp_redirect).
    src_mac: Option<Mac>,
    dest_mac: Mac,
}

impl Setting {
    /// The setting for `dev`'s redirect program, whose maps are in `dir`,
    /// to send to `target`; MACs not given are the veth peers'.
    pub fn settle(
        dev: &Iface,
        target: &Iface,
        given_src: Option<Mac>,
        given_dest: Option<Mac>,
        dir: &Path,
    ) -> Result<Setting> {
        let program = if dir.join("tx_port").exists() {
            Program::XdpRedirectMap
        } else if dir.join("redirect_target").exists() {
            Program::XdpRedirect
        } else {
            bail!(
                "no redirect maps (tx_port, redirect_target) pinned in {} for {}; load a \
                 redirect program first: xdpctl load --dev {1} --progname xdp_redirect_map",
                dir.display(),
                dev.name
            );
        };
        // Every MAC is settled before any map is written.
        let target_peer = veth_peer(target)?;
        let dest_mac = match given_dest {
            Some(mac) => mac,
            None => peer_mac(target, target_peer.as_ref(), "--dest-mac")?,
        };
        let src_mac = match (program, given_src) {
            (Program::XdpRedirect, _) => None,
            (Program::XdpRedirectMap, Some(mac)) => Some(mac),
            (Program::XdpRedirectMap, None) => {
                let peer = veth_peer(dev)?;
                Some(peer_mac(dev, peer.as_ref(), "--src-mac")?)
            }
        };
        let (dir, target) = (dir.to_path_buf(), target.clone());
        Ok(Setting { dir, program, target, target_peer, src_mac, dest_mac })
    }

    /// The maps' keys and values that make this setting.
    fn entries(&self) -> Result<Vec<MapEntry>> {
        let dir = &self.dir;
        Ok(match self.program {
            Program::XdpRedirectMap => {
                let src = self.src_mac.context("source MAC")?;
                vec![
                    (
                        open(dir, "tx_port", MapType::Devmap, 4, 4)?,
                        0u32.to_ne_bytes().to_vec(),
                        self.target.index.to_ne_bytes().to_vec(),
                        "tx_port",
                    ),
                    (
                        open(dir, "redirect_params", MapType::Hash, 6, 6)?,
                        src.0.to_vec(),
                        self.dest_mac.0.to_vec(),
                        "redirect_params",
                    ),
                ]
            }
            Program::XdpRedirect => {
                let size = std::mem::size_of::<RedirectTarget>() as u32;
                let value = RedirectTarget {
                    ifindex: self.target.index,
                    dest_mac: self.dest_mac.0,
                    ..Default::default()
                };
                vec![(
                    open(dir, "redirect_target", MapType::Array, 4, size)?,
                    0u32.to_ne_bytes().to_vec(),
                    maps::encode(&value).to_vec(),
                    "redirect_target",
                )]
            }
        })
    }

    /// Whether the maps hold this setting already.
    pub fn is_set(&self) -> Result<bool> {
        for (map, key, value, name) in self.entries()? {
            let have =
                map.lookup(&key, MapFlags::ANY).with_context(|| format!("reading {name}"))?;
            if have.as_deref() != Some(value.as_slice()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn write(&self) -> Result<()> {
        for (map, key, value, name) in self.entries()? {
            map.update(&key, &value, MapFlags::ANY)
                .with_context(|| format!("writing {} into {name}", self.target.name))?;
        }
        Ok(())
    }
}

pub fn parse_mac(flag: &str, text: Option<&str>) -> Result<Option<Mac>> {
    text.map(|t| t.parse::<Mac>().with_context(|| flag.to_string())).transpose()
}

fn veth_peer(dev: &Iface) -> Result<Option<netlink::Link>> {
    netlink::veth_peer(dev.index).with_context(|| format!("finding the other end of {}", dev.name))
}

/// The MAC of the veth at the other end of `dev`: where its frames come from
/// and whom frames sent out of it reach.
fn peer_mac(dev: &Iface, peer: Option<&netlink::Link>, flag: &str) -> Result<Mac> {
    match peer.and_then(|p| p.mac) {
        Some(mac) => Ok(mac),
        None => bail!(
            "{flag} is needed: {} is not a veth, so xdpctl cannot tell which MAC is behind it",
            dev.name
        ),
    }
}

/// A veth delivers redirected frames only if its peer runs NAPI: an XDP
/// program there, or GRO on; the veth says which by announcing ndo-xmit
/// (wherever the peer lives). The note comes only when neither is so.
fn note_unreachable_veth(target: &Iface, peer: Option<&netlink::Link>, out: Output) -> Result<()> {
    let Some(peer) = peer else { return Ok(()) };
    let delivers = attach::features(target.index)?.map(|f| f & NDO_XMIT != 0);
    // Kernels before 6.3 announce nothing: without a program there, a reminder.
    if delivers.unwrap_or(peer.xdp_attached) {
        return Ok(());
    }
    let link = netlink::get_link(target.index, None)?;
    let gro = format!("ethtool -K {} gro on", escape::text(&peer.name));
    out.note(&format!(
        "note: {} is a veth; redirected frames reach its peer ({}) only while that has an XDP \
         program or GRO on, and it has neither: {}",
        escape::text(&target.name),
        escape::text(&peer.name),
        advice::on_peer(&gro, link.link_netnsid)?
    ));
    Ok(())
}

/// The pinned map `name`, refused unless it has the layout the program uses.
fn open(dir: &Path, name: &str, kind: MapType, key: u32, value: u32) -> Result<MapHandle> {
    let path = dir.join(name);
    let map = maps::open_pinned(&path)?;
    let have = (map.map_type(), map.key_size(), map.value_size());
    if have != (kind, key, value) {
        bail!(
            "{} is a {:?} map with {}-byte keys and {}-byte values, not {name} of a shipped \
             redirect program ({kind:?}, {key}, {value}); reload it with xdpctl load",
            path.display(),
            have.0,
            have.1,
            have.2
        );
    }
    Ok(map)
}
