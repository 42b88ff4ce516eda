//! What an interface's earlier life left behind: the record and pins of a
//! program that is no longer attached where xdpctl put it, because the
//! interface was deleted (and maybe made again under the same name) or
//! another tool took the program off. `status` reports them and `unload`
//! clears them; a new interface of the same name is never touched. Also what
//! a load killed before it finished (SIGKILL) left: its staged pins, and
//! maybe its program, attached before its record was written.

use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, Program};
use nix::net::if_::if_indextoname;

use crate::bpffs;
use crate::escape;
use crate::maps;
use crate::netns;
use crate::object;
use crate::pins;
use crate::record::{self, Key, Record};
use crate::xdp;

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
enum Found {
    Current,
    Renamed(String),
    Stale(&'static str),
}

fn classify(key: Key, rec: &Record) -> Result<Found> {
    let now_named = if_indextoname(key.ifindex).ok().map(|n| n.to_string_lossy().into_owned());
    let Some(now) = now_named else {
        return Ok(Found::Stale("the interface was deleted"));
    };
    let runs_it = xdp::query(key.ifindex)?.iter().any(|a| a.prog_id == rec.prog_id);
    Ok(match (runs_it, now == rec.ifname) {
        (true, true) => Found::Current,
        (true, false) => Found::Renamed(now),
        (false, true) => Found::Stale("the program was detached by something else"),
        (false, false) => {
            Found::Stale("the interface was deleted or renamed, and its program is gone")
        }
    })
}

/// Stale records of this network namespace about interfaces named `name`
/// (all names if None).
pub fn find(name: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    for (key, rec) in record::all_here()? {
        if name.is_some_and(|n| n != rec.ifname) {
            continue;
        }
        if let Found::Stale(why) = classify(key, &rec)? {
            out.push(Leftover { key, rec, why });
        }
    }
    Ok(out)
}

/// Records of this network namespace whose interface was renamed from
/// `name` (any name if None) and still runs their program.
pub fn renamed(name: Option<&str>) -> Result<Vec<Renamed>> {
    let mut out = Vec::new();
    for (key, rec) in record::all_here()? {
        if name.is_some_and(|n| n != rec.ifname) {
            continue;
        }
        if let Found::Renamed(now) = classify(key, &rec)? {
            out.push(Renamed { key, rec, now });
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
    pub fn describe(&self, ifname: &str, held: Option<&xdp::Attachment>) -> String {
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
    let mut dirs = vec![bpffs::default_pin_dir(ifname)];
    dirs.extend(rec.map(|r| r.pin_dir.clone()).filter(|d| *d != dirs[0]));
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
