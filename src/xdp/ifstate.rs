//! What is on an interface and who owns it, read once: the programs
//! attached, xdpctl's record, what killed loads left, the bpf_link that may
//! hold a program, and where its maps are pinned. Commands read this
//! snapshot (under the interface lock when they change the interface),
//! decide, then act. `Namespace::read` is the snapshot of every interface
//! from one netlink dump and one record per interface, found by its key, so
//! `status` costs the same per interface however many there are.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use libbpf_rs::ProgramHandle;

use crate::net::iface::Iface;
use crate::net::netlink;
use crate::xdp::attach::{self, Attachment};
use crate::xdp::bpffs;
use crate::xdp::leftovers::{self, Found, Killed, Leftover, Renamed};
use crate::xdp::record::{Record, Records};

/// One interface, as read.
pub struct IfState {
    pub dev: Iface,
    pub attached: Vec<Attachment>,
    /// xdpctl's record of the interface (see `Record::is_about`).
    pub rec: Option<Record>,
    /// Loads on it killed before they finished.
    pub killed: Vec<Killed>,
}

/// A program's kernel name by id, for messages ("?" if it vanished meanwhile).
pub fn prog_name(id: u32) -> String {
    ProgramHandle::from_prog_id(id)
        .map(|h| h.name().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".to_string())
}

/// Where `load` pins for `dev`: `given` (--pin-dir) once checked, else
/// the default directory of its name.
pub fn load_pin_dir(dev: &Iface, given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(dir) => {
            bpffs::check_pin_dir(dir)?;
            Ok(dir.to_path_buf())
        }
        None => bpffs::default_pin_dir(&dev.name),
    }
}

impl IfState {
    /// Everything about `dev` now; callers that change it hold its lock.
    pub fn read(dev: &Iface) -> Result<IfState> {
        let attached = attach::query(dev.index)?;
        Ok(IfState::assemble(dev.clone(), attached, &Records::open()?, None)?.0)
    }

    /// Only what netlink tells anyone: the attachments.
    fn unprivileged(dev: Iface, attached: Vec<Attachment>) -> IfState {
        IfState { dev, attached, rec: None, killed: Vec::new() }
    }

    /// The snapshot, and the record at its key whatever it is about.
    /// `pin_root`: the pin root's names, listed once for many interfaces.
    fn assemble(
        dev: Iface,
        attached: Vec<Attachment>,
        records: &Records,
        pin_root: Option<&HashSet<OsString>>,
    ) -> Result<(IfState, Option<Record>)> {
        let (rec, raw) = records.of(&dev, &attached)?;
        let killed = leftovers::killed_in(&dev.name, rec.as_ref(), pin_root)?;
        Ok((IfState { dev, attached, rec, killed }, raw))
    }

    /// The attachments `id` selects (all if None).
    pub fn targets(&self, id: Option<u32>) -> Vec<Attachment> {
        self.attached.iter().copied().filter(|a| id.is_none_or(|id| id == a.prog_id)).collect()
    }

    /// Whether the record names `att`'s program.
    pub fn recorded(&self, att: Attachment) -> bool {
        self.rec.as_ref().is_some_and(|r| r.prog_id == att.prog_id)
    }

    /// Whether xdpctl attached `att` (its record names it, or a load killed
    /// before writing the record left it), as opposed to another tool or an
    /// xdpctl command that holds it through a link.
    pub fn is_ours(&self, att: Attachment) -> Result<bool> {
        if self.recorded(att) {
            return Ok(true);
        }
        for k in &self.killed {
            if k.holds(att.prog_id)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The program a killed load left attached here, if any.
    pub fn held_by(&self, killed: &Killed) -> Result<Option<&Attachment>> {
        let mut held = None;
        for a in &self.attached {
            if killed.holds(a.prog_id)? {
                held = Some(a);
            }
        }
        Ok(held)
    }

    /// The bpf_link that holds `att`, if a link attached it.
    pub fn link_holder(&self, att: Attachment) -> Result<Option<u32>> {
        attach::holding_link(self.dev.index, att)
    }

    /// Refuse to touch `att` when a bpf_link holds it: the kernel would answer
    /// only "Can't replace active BPF XDP link". The link's owner must let go.
    pub fn refuse_if_link_held(&self, att: Attachment) -> Result<()> {
        if let Some(link) = self.link_holder(att)? {
            bail!(
                "{} is held by BPF link id {link}: {} (id {}, {} mode) was attached through a \
                 link, and the kernel will not replace or detach it (\"Can't replace active BPF \
                 XDP link\"); stop the program that owns the link or remove its pin \
                 (`bpftool link show id {link}` names both)",
                self.dev.name,
                prog_name(att.prog_id),
                att.prog_id,
                att.mode
            );
        }
        Ok(())
    }

    /// The name xdpctl loaded program `id` under, if the record is its: the
    /// kernel keeps only 15 characters (`xdp_redirect_ma`).
    pub fn full_name(&self, id: u32, kernel_name: String) -> String {
        match &self.rec {
            Some(r) if r.prog_id == id && r.prog_name.starts_with(&kernel_name) => {
                r.prog_name.clone()
            }
            _ => kernel_name,
        }
    }

    /// The name program `id` has here, asking the kernel.
    pub fn name_of(&self, id: u32) -> String {
        self.full_name(id, prog_name(id))
    }

    /// Where this interface's maps are pinned: `given` (--pin-dir) once
    /// checked, else where its record says, else the default directory.
    pub fn pin_dir(&self, given: Option<&Path>) -> Result<PathBuf> {
        match (given, &self.rec) {
            (Some(_), _) => load_pin_dir(&self.dev, given),
            (None, Some(rec)) => Ok(rec.pin_dir.clone()),
            (None, None) => bpffs::default_pin_dir(&self.dev.name),
        }
    }
}

/// Every interface of this network namespace, and what records of it say
/// about interfaces that are gone or renamed.
pub struct Namespace {
    pub ifaces: Vec<IfState>,
    /// Records whose program no longer runs where xdpctl put it, by key.
    pub stale: Vec<Leftover>,
    /// Records whose interface runs their program under another name now.
    pub renamed: Vec<Renamed>,
}

impl Namespace {
    /// One dump of the links; without `privileged` only what netlink tells
    /// anyone (no records, no leftovers).
    pub fn read(privileged: bool) -> Result<Namespace> {
        Namespace::from_links(netlink::dump_links()?, privileged)
    }

    /// The snapshot of the interfaces of a dump the caller already made
    /// (`top` reads their counters from the same dump).
    pub fn from_links(links: Vec<netlink::Link>, privileged: bool) -> Result<Namespace> {
        let mut ns = Namespace { ifaces: Vec::new(), stale: Vec::new(), renamed: Vec::new() };
        if !privileged {
            ns.ifaces = links
                .into_iter()
                .map(|l| {
                    let attached = attach::attachments(&l.xdp);
                    IfState::unprivileged(Iface { name: l.name, index: l.index }, attached)
                })
                .collect();
            return Ok(ns);
        }
        let records = Records::open_listed()?;
        let pin_root = leftovers::pin_root_names()?;
        let keys = records.keys_here()?;
        let live: HashSet<u32> = links.iter().map(|l| l.index).collect();
        // Records of deleted interfaces, in key order with the live ones.
        let mut found = Vec::new();
        for key in keys.iter().filter(|k| !live.contains(&k.ifindex)) {
            if let Some(rec) = records.at(*key)? {
                found.push((*key, leftovers::classify(&rec, None), rec));
            }
        }
        for l in links {
            let attached = attach::attachments(&l.xdp);
            let dev = Iface { name: l.name, index: l.index };
            let (state, raw) = IfState::assemble(dev, attached, &records, Some(&pin_root))?;
            if let Some(rec) = raw {
                let now = Some((state.dev.name.as_str(), state.attached.as_slice()));
                found.push((records.key(&state.dev), leftovers::classify(&rec, now), rec));
            }
            ns.ifaces.push(state);
        }
        found.sort_by_key(|(key, _, _)| *key);
        for (key, what, rec) in found {
            match what {
                Found::Current => {}
                Found::Renamed(now) => ns.renamed.push(Renamed { key, rec, now }),
                Found::Stale(why) => ns.stale.push(Leftover { key, rec, why }),
            }
        }
        Ok(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::attach::Mode;

    fn state(rec: Option<Record>) -> IfState {
        IfState {
            dev: Iface { name: "eth0".into(), index: 4 },
            attached: vec![
                Attachment { prog_id: 10, mode: Mode::Native },
                Attachment { prog_id: 11, mode: Mode::Skb },
            ],
            rec,
            killed: Vec::new(),
        }
    }

    fn rec(prog_id: u32, name: &str, dir: &str) -> Record {
        Record {
            ifname: "eth0".into(),
            prog_id,
            prog_name: name.into(),
            pin_dir: dir.into(),
            pins: vec!["xdp_stats_map".into()],
            netns_inode: 0,
            object: None,
            parents_made: 0,
        }
    }

    #[test]
    fn the_record_decides_whose_a_program_is_and_its_full_name() {
        let s = state(Some(rec(11, "xdp_redirect_map", "/sys/fs/bpf/moved")));
        let [native, skb] = [s.attached[0], s.attached[1]];
        assert!(s.recorded(skb) && !s.recorded(native));
        assert!(s.is_ours(skb).unwrap());
        assert!(!s.is_ours(native).unwrap(), "another tool's, no killed load");
        assert_eq!(s.full_name(11, "xdp_redirect_ma".into()), "xdp_redirect_map");
        assert_eq!(s.full_name(10, "xdp_redirect_ma".into()), "xdp_redirect_ma");
        assert_eq!(s.full_name(11, "other".into()), "other", "not the recorded program");
    }

    #[test]
    fn targets_select_by_id() {
        let s = state(None);
        assert_eq!(s.targets(None).len(), 2);
        assert_eq!(s.targets(Some(11)), vec![s.attached[1]]);
        assert!(s.targets(Some(99)).is_empty());
    }

    #[test]
    fn the_pin_dir_is_the_given_one_checked_then_the_recorded_then_the_default() {
        let moved = state(Some(rec(11, "xdp_pass", "/sys/fs/bpf/moved")));
        assert_eq!(moved.pin_dir(None).unwrap(), Path::new("/sys/fs/bpf/moved"));
        assert_eq!(state(None).pin_dir(None).unwrap(), bpffs::default_pin_dir("eth0").unwrap());
        let err = moved.pin_dir(Some(Path::new("/tmp/elsewhere"))).unwrap_err();
        assert!(err.to_string().contains("/tmp/elsewhere"), "{err}");
        let dev = Iface { name: "eth0.100".into(), index: 5 };
        assert_eq!(load_pin_dir(&dev, None).unwrap(), bpffs::default_pin_dir("eth0.100").unwrap());
    }
}
