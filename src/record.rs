//! What xdpctl attached and pinned per interface, kept under /run/xdpctl (which
//! lives exactly as long as attachments do: until reboot). `status` and `unload`
//! read it to find the pin directory, which --pin-dir may have moved; `load`
//! reads all of them so it never replaces another interface's pins.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::iface::Iface;

const DIR: &str = "/run/xdpctl";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub ifname: String,
    pub prog_id: u32,
    pub prog_name: String,
    pub pin_dir: PathBuf,
    /// Pin file names in `pin_dir` that xdpctl created.
    pub pins: Vec<String>,
}

/// This network namespace, by inode: ifindexes repeat across namespaces.
pub fn netns() -> Result<u64> {
    Ok(fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino())
}

/// Records are per network namespace and ifindex.
fn path(dev: &Iface) -> Result<PathBuf> {
    Ok(Path::new(DIR).join(format!("{}-{}.json", netns()?, dev.index)))
}

/// Every record file, in any network namespace.
fn files() -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {DIR}")),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("listing {DIR}"))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(out)
}

fn parse(path: &Path) -> Result<Option<Record>> {
    match fs::read_to_string(path) {
        // An unreadable record describes nothing we can trust.
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The record for `dev`, if there is one about this interface (a record left
/// by a deleted interface whose index was reused does not count).
pub fn read(dev: &Iface) -> Result<Option<Record>> {
    Ok(parse(&path(dev)?)?.filter(|rec| rec.ifname == dev.name))
}

/// Records of every other interface, in any network namespace.
pub fn others(dev: &Iface) -> Result<Vec<Record>> {
    let mine = path(dev)?;
    let mut out = Vec::new();
    for path in files()?.into_iter().filter(|p| *p != mine) {
        out.extend(parse(&path)?);
    }
    Ok(out)
}

/// Every record of this network namespace, with the ifindex it is about and
/// its file.
pub fn all_here() -> Result<Vec<(u32, PathBuf, Record)>> {
    let prefix = format!("{}-", netns()?);
    let mut out = Vec::new();
    for path in files()? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let index = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".json"));
        if let Some(index) = index.and_then(|i| i.parse::<u32>().ok()) {
            if let Some(rec) = parse(&path)? {
                out.push((index, path, rec));
            }
        }
    }
    Ok(out)
}

/// Remove the record file at `path` (one of `all_here`'s).
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

pub fn write(dev: &Iface, rec: &Record) -> Result<()> {
    let path = path(dev)?;
    fs::create_dir_all(DIR).with_context(|| format!("creating {DIR}"))?;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(rec).context("encoding the attachment record")?;
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Remove `dev`'s record, and the half-written one a killed `write` left.
pub fn remove(dev: &Iface) -> Result<()> {
    let path = path(dev)?;
    remove_file(&path.with_extension("tmp"))?;
    remove_file(&path)
}
