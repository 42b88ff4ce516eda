//! What xdpctl attached and pinned per interface, kept under /run/xdpctl (which
//! lives exactly as long as attachments do: until reboot). `status` and `unload`
//! read it to find the pin directory, which --pin-dir may have moved; `load`
//! reads the others, when a pin it would make is there already, so it never
//! replaces another interface's pins.
//!
//! A record is found by its key, the interface's network namespace (by
//! cookie, which the kernel never reuses) and ifindex. The directory is
//! root's alone (0700, records 0600), and a record that is not a regular file
//! of root's, writable by no one else, is ignored: root acts on what it says.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::net::iface::Iface;
use crate::net::netns;
use crate::xdp::attach::Attachment;
use crate::xdp::private::{tmp_name, PrivateDir};

const DIR: &str = "/run/xdpctl";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The interface's name when the program was loaded (it may be renamed).
    pub ifname: String,
    pub prog_id: u32,
    pub prog_name: String,
    pub pin_dir: PathBuf,
    /// Pin file names in `pin_dir` that xdpctl created.
    pub pins: Vec<String>,
    /// The namespace's nsfs inode when the record was written: where to look
    /// for the namespace later (inodes are reused; the key's cookie decides).
    #[serde(default)]
    pub netns_inode: u64,
    /// The object the program came from (a shipped object's name or a
    /// file's path), so `apply` can tell a program from another object
    /// of the same name; None in records of an older xdpctl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Directories above `pin_dir` that a load made (a nested --pin-dir):
    /// unload removes them too, when empty.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parents_made: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Record {
    /// Whether this record, found at `dev`'s key, is about `dev` (whose
    /// programs are `attached`): under its name, or under an earlier name
    /// of it, which its program still running there shows. A record of an
    /// earlier interface of that ifindex is not.
    pub fn is_about(&self, dev: &Iface, attached: &[Attachment]) -> bool {
        self.ifname == dev.name || attached.iter().any(|a| a.prog_id == self.prog_id)
    }
}

/// Which interface a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Network namespace cookie.
    pub netns: u64,
    pub ifindex: u32,
}

impl Key {
    /// `dev`, in this network namespace.
    pub fn of(dev: &Iface) -> Result<Key> {
        Ok(Key { netns: netns::cookie()?, ifindex: dev.index })
    }

    fn file(self) -> String {
        format!("n{}-i{}.json", self.netns, self.ifindex)
    }

    fn parse(file: &str) -> Option<Key> {
        let (netns, ifindex) = file.strip_prefix('n')?.strip_suffix(".json")?.split_once("-i")?;
        Some(Key { netns: netns.parse().ok()?, ifindex: ifindex.parse().ok()? })
    }
}

/// The directory, if it exists (None: no record anywhere).
fn open() -> Result<Option<PrivateDir>> {
    PrivateDir::open(Path::new(DIR))
}

fn parse(dir: &PrivateDir, file: &str) -> Result<Option<Record>> {
    // Unreadable JSON describes nothing we can trust.
    Ok(dir.read(file)?.and_then(|text| serde_json::from_slice(&text).ok()))
}

/// The records of this network namespace, opened once: each found by its
/// key, never by reading the others.
pub struct Records {
    dir: Option<PrivateDir>,
    netns: u64,
    /// This namespace's nsfs inode, which an older xdpctl keyed by.
    inode: u64,
    /// The directory's file names, when listed: then a record not among
    /// them is not looked for.
    listed: Option<HashSet<String>>,
}

impl Records {
    pub fn open() -> Result<Records> {
        Ok(Records { dir: open()?, netns: netns::cookie()?, inode: netns::inode()?, listed: None })
    }

    /// As `open`, listing the directory once: for reading the records of
    /// many interfaces, most of which may have none.
    pub fn open_listed() -> Result<Records> {
        let mut records = Records::open()?;
        let names = match &records.dir {
            Some(dir) => dir.names()?,
            None => Vec::new(),
        };
        records.listed = Some(names.into_iter().collect());
        Ok(records)
    }

    /// Whether file `name` may be there.
    fn may_have(&self, name: &str) -> bool {
        self.listed.as_ref().is_none_or(|names| names.contains(name))
    }

    fn parse(&self, dir: &PrivateDir, name: &str) -> Result<Option<Record>> {
        if !self.may_have(name) {
            return Ok(None);
        }
        parse(dir, name)
    }

    /// `dev`'s key, in this namespace.
    pub fn key(&self, dev: &Iface) -> Key {
        Key { netns: self.netns, ifindex: dev.index }
    }

    /// The record at `key`, whatever interface name it gives.
    pub fn at(&self, key: Key) -> Result<Option<Record>> {
        match &self.dir {
            Some(dir) => self.parse(dir, &key.file()),
            None => Ok(None),
        }
    }

    /// The record of `dev`, given what is `attached` there (see `is_about`),
    /// and the one at its key whatever it says.
    pub fn of(
        &self,
        dev: &Iface,
        attached: &[Attachment],
    ) -> Result<(Option<Record>, Option<Record>)> {
        let Some(dir) = &self.dir else { return Ok((None, None)) };
        if let Some(rec) = self.parse(dir, &self.key(dev).file())? {
            let about = Some(rec.clone()).filter(|r| r.is_about(dev, attached));
            return Ok((about, Some(rec)));
        }
        // An older xdpctl keyed records by namespace inode, which the kernel
        // reuses: one counts only while its program still runs here. The next
        // write or removal for `dev` retires the old file.
        let old = self.parse(dir, &format!("{}-{}.json", self.inode, dev.index))?;
        Ok((old.filter(|r| attached.iter().any(|a| a.prog_id == r.prog_id)), None))
    }

    /// The keys of this namespace's records, in order; no record is read.
    /// Files of other forms (an older xdpctl's, which `of` finds, or
    /// half-written ones) are left out.
    pub fn keys_here(&self) -> Result<Vec<Key>> {
        let Some(dir) = &self.dir else { return Ok(Vec::new()) };
        let names = match &self.listed {
            Some(names) => names.iter().cloned().collect(),
            None => dir.names()?,
        };
        let mut keys: Vec<Key> = names
            .iter()
            .filter_map(|name| Key::parse(name))
            .filter(|k| k.netns == self.netns)
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// The name an older xdpctl gave `dev`'s record.
fn legacy_file(dev: &Iface) -> Result<String> {
    Ok(format!("{}-{}.json", netns::inode()?, dev.index))
}

/// Every record, by key; only for clearing what a record left, which must
/// not take pins another record claims.
pub fn all() -> Result<Vec<(Key, Record)>> {
    let Some(dir) = open()? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for name in dir.names()? {
        if let Some(key) = Key::parse(&name) {
            out.extend(parse(&dir, &name)?.map(|rec| (key, rec)));
        }
    }
    out.sort_by_key(|(key, _)| *key);
    Ok(out)
}

/// Records of network namespaces other than this one; only those files
/// are read.
pub fn elsewhere() -> Result<Vec<(Key, Record)>> {
    let Some(dir) = open()? else { return Ok(Vec::new()) };
    let here = netns::cookie()?;
    let mut out = Vec::new();
    for name in dir.names()? {
        if let Some(key) = Key::parse(&name).filter(|k| k.netns != here) {
            out.extend(parse(&dir, &name)?.map(|rec| (key, rec)));
        }
    }
    Ok(out)
}

pub fn write(dev: &Iface, rec: &Record) -> Result<()> {
    write_key(Key::of(dev)?, rec)?;
    remove_legacy(dev)
}

/// Retire an older xdpctl's record of `dev` (and its half-written file).
fn remove_legacy(dev: &Iface) -> Result<()> {
    let Some(dir) = open()? else { return Ok(()) };
    let old = legacy_file(dev)?;
    dir.remove(&old.replace(".json", ".tmp"))?;
    dir.remove(&old)
}

pub fn write_key(key: Key, rec: &Record) -> Result<()> {
    let dir = PrivateDir::make(Path::new(DIR))?;
    let text = serde_json::to_vec_pretty(rec).context("encoding the attachment record")?;
    dir.write(&key.file(), &text)
}

/// Remove the record at `key`, and the half-written one a writer killed
/// before its rename left beside it.
pub fn remove_key(key: Key) -> Result<()> {
    let Some(dir) = open()? else { return Ok(()) };
    let file = key.file();
    dir.remove(&tmp_name(&file))?;
    dir.remove(&file)
}

pub fn remove(dev: &Iface) -> Result<()> {
    remove_key(Key::of(dev)?)?;
    remove_legacy(dev)
}

/// Remove only what a write killed before its rename left at `dev`'s key.
pub fn remove_half_written(dev: &Iface) -> Result<()> {
    let Some(dir) = open()? else { return Ok(()) };
    dir.remove(&tmp_name(&Key::of(dev)?.file()))
}

/// The nsfs inode of this namespace, for new records.
pub fn netns_inode() -> Result<u64> {
    netns::inode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_old_names_are_not_keys() {
        let key = Key { netns: 4097, ifindex: 12 };
        assert_eq!(key.file(), "n4097-i12.json");
        assert_eq!(Key::parse(&key.file()), Some(key));
        assert_eq!(Key::parse("4026531840-12.json"), None, "an older xdpctl's record");
        assert_eq!(Key::parse("n4097-i12.json.tmp"), None);
    }
}
