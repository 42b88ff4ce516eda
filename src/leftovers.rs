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
use crate::object;
use crate::pins;
use crate::record::{self, Record};
use crate::xdp;

pub struct Leftover {
    pub ifindex: u32,
    pub file: PathBuf,
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
            self.ifindex,
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

/// Stale records of this network namespace about interfaces named `name`
/// (all names if None).
pub fn find(name: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    for (ifindex, file, rec) in record::all_here()? {
        if name.is_some_and(|n| n != rec.ifname) {
            continue;
        }
        let now_named = if_indextoname(ifindex).ok().map(|n| n.to_string_lossy().into_owned());
        let why = if now_named.as_deref() != Some(rec.ifname.as_str()) {
            "the interface was deleted"
        } else if xdp::query(ifindex)?.iter().all(|a| a.prog_id != rec.prog_id) {
            "the program was detached by something else"
        } else {
            continue;
        };
        out.push(Leftover { ifindex, file, rec, why });
    }
    Ok(out)
}

/// Remove a leftover's pins and record. Pins that a live record claims (a
/// new load into the same directory) are not its to remove.
pub fn clear(left: &Leftover) -> Result<Vec<String>> {
    let live: Vec<Record> = record::all_here()?
        .into_iter()
        .filter(|(_, file, _)| *file != left.file)
        .map(|(_, _, rec)| rec)
        .collect();
    let mine: Vec<String> = left
        .rec
        .pins
        .iter()
        .filter(|p| !live.iter().any(|r| r.pin_dir == left.rec.pin_dir && r.pins.contains(p)))
        .cloned()
        .collect();
    let removed = pins::remove(&left.rec.pin_dir, &mine);
    record::remove_file(&left.file)?;
    removed
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
    pub fn holds(&self, prog_id: u32) -> bool {
        let Ok(fd) = Program::fd_from_id(prog_id) else { return false };
        object::maps_used_by(fd.as_fd())
            .is_ok_and(|ids| ids.iter().any(|id| self.map_ids.contains(id)))
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
                if let Ok(map) = pins::open_map(&dir.join(name)) {
                    map_ids.push(map.info().context("reading a staged map's id")?.info.id);
                }
            }
            out.push(Killed { pid, dir: dir.clone(), pins: names, map_ids });
        }
    }
    Ok(out)
}
