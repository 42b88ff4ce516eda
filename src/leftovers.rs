//! What an interface's earlier life left behind: the record and pins of a
//! program that is no longer attached where xdpctl put it, because the
//! interface was deleted (and maybe made again under the same name) or
//! another tool took the program off. `status` reports them and `unload`
//! clears them; a new interface of the same name is never touched.

use std::path::PathBuf;

use anyhow::Result;
use nix::net::if_::if_indextoname;

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
            self.rec.ifname,
            self.ifindex,
            self.rec.prog_name,
            self.rec.prog_id,
            self.why,
            self.rec.pin_dir.display(),
            if self.rec.pins.is_empty() { "none".to_string() } else { self.rec.pins.join(", ") }
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
    removed?;
    Ok(mine.iter().map(|p| left.rec.pin_dir.join(p).display().to_string()).collect())
}
