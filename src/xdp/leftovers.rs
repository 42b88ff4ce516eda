//! What an interface's earlier life left behind: the record and pins of a
//! program that is no longer attached where xdpctl put it, because the
//! interface was deleted (and maybe made again under the same name) or
//! another tool took the program off. `status` reports them and `unload`
//! clears them; a new interface of the same name is never touched. Also what
//! a load killed before it finished (SIGKILL) left: its staged pins, and
//! maybe its program, attached before its record was written.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, Program};

use crate::escape;
use crate::net::netlink;
use crate::net::netns;
use crate::obj::maps;
use crate::obj::object;
use crate::xdp::attach::{self, Attachment};
use crate::xdp::bpffs;
use crate::xdp::pins;
use crate::xdp::record::{self, Key, Record, Records};

pub struct Leftover {
    pub key: Key,
    pub rec: Record,
    /// Why it is stale, for messages.
    pub why: &'static str,
}

impl Leftover {
    /// One line for `status` and `unload`.
    pub fn describe(&self) -> String {
        format!(
            "{} (ifindex {}) left {} (id {}) behind: {}; its pins in {}: {}",
            escape::text(&self.rec.ifname),
            self.key.ifindex,
            escape::text(&self.rec.prog_name),
            self.rec.prog_id,
            self.why,
            escape::path(&self.rec.pin_dir),
            if self.rec.pins.is_empty() {
                "none".to_string()
            } else {
                escape::text(&self.rec.pins.join(", ")).into_owned()
            }
        )
    }
}

/// A record of this namespace whose interface runs its program under
/// another name now.
pub struct Renamed {
    pub key: Key,
    pub rec: Record,
    pub now: String,
}

impl Renamed {
    /// One line for `status` and `unload`.
    pub fn describe(&self) -> String {
        format!(
            "{} (ifindex {}) was renamed to {}; it still runs {} (id {}) that xdpctl loaded, \
             with its pins in {}",
            escape::text(&self.rec.ifname),
            self.key.ifindex,
            escape::text(&self.now),
            escape::text(&self.rec.prog_name),
            self.rec.prog_id,
            escape::path(&self.rec.pin_dir)
        )
    }
}

/// What a record of this namespace says now.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Current,
    Renamed(String),
    Stale(&'static str),
}

/// What `rec` says, given the interface now at its key: its name and the
/// programs attached there (None: no interface has that index now).
pub fn classify(rec: &Record, now: Option<(&str, &[Attachment])>) -> Found {
    let Some((now, attached)) = now else {
        return Found::Stale("the interface was deleted");
    };
    let runs_it = attached.iter().any(|a| a.prog_id == rec.prog_id);
    match (runs_it, now == rec.ifname) {
        (true, true) => Found::Current,
        (true, false) => Found::Renamed(now.to_string()),
        (false, true) => Found::Stale("the program was detached by something else"),
        (false, false) => {
            Found::Stale("the interface was deleted or renamed, and its program is gone")
        }
    }
}

/// The interfaces of this namespace now, by index: name and attachments,
/// from one netlink dump.
pub fn live() -> Result<HashMap<u32, (String, Vec<Attachment>)>> {
    Ok(netlink::dump_links()?
        .into_iter()
        .map(|l| (l.index, (l.name, attach::attachments(&l.xdp))))
        .collect())
}

/// Each record of this namespace about an interface named `name` (all
/// names if None), classified. Reads every record of this namespace: for
/// an interface that is gone, whose records no key leads to.
fn classified(name: Option<&str>) -> Result<Vec<(Key, Record, Found)>> {
    let records = Records::open()?;
    let live = live()?;
    let mut out = Vec::new();
    for key in records.keys_here()? {
        let Some(rec) = records.at(key)? else { continue };
        if name.is_some_and(|n| n != rec.ifname) {
            continue;
        }
        let now = live.get(&key.ifindex).map(|(n, a)| (n.as_str(), a.as_slice()));
        let found = classify(&rec, now);
        out.push((key, rec, found));
    }
    Ok(out)
}

/// Stale records of this network namespace about interfaces named `name`
/// (all names if None).
pub fn find(name: Option<&str>) -> Result<Vec<Leftover>> {
    Ok(classified(name)?
        .into_iter()
        .filter_map(|(key, rec, found)| match found {
            Found::Stale(why) => Some(Leftover { key, rec, why }),
            _ => None,
        })
        .collect())
}

/// Records of this network namespace whose interface was renamed from
/// `name` (any name if None) and still runs their program.
pub fn renamed(name: Option<&str>) -> Result<Vec<Renamed>> {
    Ok(classified(name)?
        .into_iter()
        .filter_map(|(key, rec, found)| match found {
            Found::Renamed(now) => Some(Renamed { key, rec, now }),
            _ => None,
        })
        .collect())
}

/// Records of deleted interfaces of this namespace that were named
/// `name`: only the records at indexes no interface has now are read, so
/// the cost does not grow with the interfaces that are there.
pub fn deleted(name: &str) -> Result<Vec<Leftover>> {
    let records = Records::open()?;
    let keys = records.keys_here()?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let live = live()?;
    let mut out = Vec::new();
    for key in keys.into_iter().filter(|k| !live.contains_key(&k.ifindex)) {
        if let Some(rec) = records.at(key)?.filter(|r| r.ifname == name) {
            if let Found::Stale(why) = classify(&rec, None) {
                out.push(Leftover { key, rec, why });
            }
        }
    }
    Ok(out)
}

/// Remove a leftover's pins and record. Pins that a live record claims (a
/// new load into the same directory) are not its to remove, nor pins whose
/// map a live program uses.
pub fn clear(left: &Leftover) -> Result<Vec<String>> {
    clear_record(left.key, &left.rec)
}

fn clear_record(key: Key, rec: &Record) -> Result<Vec<String>> {
    let live: Vec<Record> =
        record::all()?.into_iter().filter(|(k, _)| *k != key).map(|(_, rec)| rec).collect();
    let mine: Vec<String> = rec
        .pins
        .iter()
        .filter(|p| !live.iter().any(|r| r.pin_dir == rec.pin_dir && r.pins.contains(p)))
        .cloned()
        .collect();
    let removed = pins::remove(&rec.pin_dir, &mine, &[rec.prog_id]);
    record::remove_key(key)?;
    removed
}

/// Remove the records, and the pins no live program uses, of network
/// namespaces that no longer exist: nobody could reach them to unload. A
/// record whose program still exists is kept, wherever it is attached.
/// Returns one line per record removed.
pub fn prune_dead_namespaces() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (key, rec) in record::elsewhere()? {
        match Program::fd_from_id(rec.prog_id) {
            Ok(_) => continue,
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("checking program id {} of a record (needs CAP_SYS_ADMIN)", rec.prog_id)
                })
            }
        }
        if netns::alive(key.netns, rec.netns_inode)? {
            continue;
        }
        let removed = clear_record(key, &rec)?;
        out.push(format!(
            "removed the record of {} on {} (ifindex {}) in a network namespace that no longer \
             exists; pins removed: {}",
            escape::text(&rec.prog_name),
            escape::text(&rec.ifname),
            key.ifindex,
            if removed.is_empty() {
                "none".to_string()
            } else {
                escape::text(&removed.join(", ")).into_owned()
            }
        ));
    }
    Ok(out)
}

/// What one killed load left in a pin directory.
pub struct Killed {
    pub pid: u32,
    pub dir: PathBuf,
    /// Its staged pins' names in `dir`.
    pub pins: Vec<String>,
    map_ids: Vec<u32>,
}

impl Killed {
    /// Whether program `prog_id` is the killed load's: it uses a staged map.
    pub fn holds(&self, prog_id: u32) -> Result<bool> {
        let fd = match Program::fd_from_id(prog_id) {
            Ok(fd) => fd,
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening program id {prog_id} (needs CAP_SYS_ADMIN)"))
            }
        };
        Ok(object::maps_used_by(fd.as_fd())?.iter().any(|id| self.map_ids.contains(id)))
    }

    /// One line for `status` and `unload`; `held` is the program it left
    /// attached, if any.
    pub fn describe(&self, ifname: &str, held: Option<&attach::Attachment>) -> String {
        let prog = held.map_or_else(String::new, |a| {
            format!(" and its program (id {}, {} mode) attached", a.prog_id, a.mode)
        });
        format!(
            "a load on {} (pid {}) was killed before it finished: it left pins staged in \
             {}: {}{prog}",
            escape::text(ifname),
            self.pid,
            escape::path(&self.dir),
            escape::text(&self.pins.join(", "))
        )
    }
}

/// Loads on interface `ifname` killed before they finished, found by the
/// pins they staged in its default pin directory or in `rec`'s.
pub fn killed(ifname: &str, rec: Option<&Record>) -> Result<Vec<Killed>> {
    killed_in(ifname, rec, None)
}

/// The names in the pin root, listed once for looking at many interfaces:
/// a default pin directory not among them holds nothing.
pub fn pin_root_names() -> Result<HashSet<OsString>> {
    match std::fs::read_dir(bpffs::ROOT) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", bpffs::ROOT)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e).with_context(|| format!("listing {}", bpffs::ROOT)),
    }
}

/// As `killed`; with `root` (see `pin_root_names`), a default directory
/// the root does not hold is not looked into.
pub fn killed_in(
    ifname: &str,
    rec: Option<&Record>,
    root: Option<&HashSet<OsString>>,
) -> Result<Vec<Killed>> {
    let default = bpffs::default_pin_dir(ifname)?;
    let listed = |d: &PathBuf| {
        root.is_none_or(|names| bpffs::top_name(d).is_some_and(|n| names.contains(n)))
    };
    let mut dirs: Vec<PathBuf> = Some(default.clone()).filter(listed).into_iter().collect();
    dirs.extend(rec.map(|r| r.pin_dir.clone()).filter(|d| *d != default));
    let mut out = Vec::new();
    for dir in dirs {
        for (pid, names) in pins::staged_by_dead(&dir)? {
            let mut map_ids = Vec::new();
            for name in &names {
                // Gone since the listing: nothing of it to hold a program.
                if let Ok(map) = maps::open_pinned(&dir.join(name)) {
                    map_ids.push(map.info().context("reading a staged map's id")?.info.id);
                }
            }
            out.push(Killed { pid, dir: dir.clone(), pins: names, map_ids });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::attach::Mode;

    fn rec(ifname: &str, prog_id: u32) -> Record {
        Record {
            ifname: ifname.into(),
            prog_id,
            prog_name: "xdp_pass".into(),
            pin_dir: "/sys/fs/bpf/eth0".into(),
            pins: vec![],
            netns_inode: 0,
            object: None,
            parents_made: 0,
        }
    }

    #[test]
    fn a_record_is_current_renamed_or_stale_by_what_its_index_runs_now() {
        let runs = [Attachment { prog_id: 7, mode: Mode::Skb }];
        let r = rec("eth0", 7);
        assert_eq!(classify(&r, Some(("eth0", &runs))), Found::Current);
        assert_eq!(classify(&r, Some(("wan0", &runs))), Found::Renamed("wan0".into()));
        assert!(
            matches!(classify(&r, Some(("eth0", &[]))), Found::Stale(w) if w.contains("detached"))
        );
        assert!(matches!(classify(&r, Some(("wan0", &[]))), Found::Stale(w) if w.contains("gone")));
        assert_eq!(classify(&r, None), Found::Stale("the interface was deleted"));
    }
}
