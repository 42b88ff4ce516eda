//! What `top` reads at each refresh: one RTM_GETLINK dump of every
//! interface (its counters and its XDP programs), then for each program
//! its BPF stats and, where xdpctl pinned one, its stats map. Who owns a
//! program and where its map is come from the snapshot of the namespace
//! (ifstate), read again only when the dump shows other programs or
//! names: a refresh on a host of a thousand interfaces stays one dump and
//! a few reads per program.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;

use crate::cmd::top::model::{Iface, Owner, Prog, Snapshot};
use crate::net::netlink::{self, XdpProgs};
use crate::obj::proginfo;
use crate::obj::statsmap::{StatsMap, MAP_NAME};
use crate::xdp::attach;
use crate::xdp::ifstate::{self, Namespace};

/// What the namespace snapshot told of one program on one interface.
struct Known {
    /// The name xdpctl loaded it under, or the kernel's.
    name: String,
    owner: Owner,
    map: Option<StatsMap>,
}

#[derive(Default)]
pub struct Collector {
    /// Every interface's (index, name, programs) when `known` was learnt.
    seen: Vec<(u32, String, XdpProgs)>,
    /// By (interface index, program id).
    known: HashMap<(u32, u32), Known>,
}

impl Collector {
    /// Everything one refresh shows.
    pub fn read(&mut self) -> Result<Snapshot> {
        let links = netlink::dump_links()?;
        let at = Instant::now();
        let seen: Vec<_> = links.iter().map(|l| (l.index, l.name.clone(), l.xdp)).collect();
        if seen != self.seen {
            self.learn(links.clone())?;
            self.seen = seen;
        }
        let mut ifaces = Vec::with_capacity(links.len());
        for link in links {
            let mut progs = Vec::new();
            for att in attach::attachments(&link.xdp) {
                // Unloaded since the dump: gone from the next one too.
                let Some(facts) = proginfo::facts(att.prog_id)? else { continue };
                let (name, owner, actions) = match self.known.get_mut(&(link.index, att.prog_id)) {
                    Some(k) => {
                        let actions = match k.map.as_mut() {
                            Some(map) => Some((map.id, map.reading()?)),
                            None => None,
                        };
                        (k.name.clone(), k.owner, actions)
                    }
                    None => (facts.name, Owner::Other, None),
                };
                progs.push(Prog {
                    id: att.prog_id,
                    name,
                    mode: att.mode,
                    owner,
                    run_cnt: facts.run_cnt,
                    run_time_ns: facts.run_time_ns,
                    actions,
                });
            }
            ifaces.push(Iface {
                name: link.name,
                index: link.index,
                rx: link.rx_packets.zip(link.rx_bytes),
                tx: link.tx_packets.zip(link.tx_bytes),
                progs,
            });
        }
        Ok(Snapshot { at, ifaces })
    }

    /// Owners, full names and stats maps of the programs `links` shows.
    fn learn(&mut self, links: Vec<netlink::Link>) -> Result<()> {
        let ns = Namespace::from_links(links, true)?;
        self.known.clear();
        for state in &ns.ifaces {
            for att in &state.attached {
                let owner = if state.is_ours(*att)? { Owner::Xdpctl } else { Owner::Other };
                let name = state.full_name(att.prog_id, ifstate::prog_name(att.prog_id));
                // Only xdpctl's own program has its maps where the record says.
                let path = state
                    .rec
                    .as_ref()
                    .filter(|_| state.recorded(*att))
                    .map(|rec| rec.pin_dir.join(MAP_NAME))
                    .filter(|path| path.exists());
                // Another object's map of that name: no per-action figures.
                let map = match path {
                    Some(p) => StatsMap::open_fitting(&p)?.ok(),
                    None => None,
                };
                self.known.insert((state.dev.index, att.prog_id), Known { name, owner, map });
            }
        }
        Ok(())
    }
}
