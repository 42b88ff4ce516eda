//! What xdpctl attached and pinned per interface, kept under /run/xdpctl (which
//! lives exactly as long as attachments do: until reboot). `status` and `unload`
//! read it to find the pin directory, which --pin-dir may have moved.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

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

/// Records are per network namespace: ifindexes repeat across namespaces.
fn path(dev: &Iface) -> Result<PathBuf> {
    let netns = fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino();
    Ok(PathBuf::from(DIR).join(format!("{netns}-{}.json", dev.index)))
}

/// The record for `dev`, if one exists and is about this interface (a record
/// left by a deleted interface whose index was reused is dropped).
pub fn read(dev: &Iface) -> Result<Option<Record>> {
    let path = path(dev)?;
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match serde_json::from_str::<Record>(&text) {
        Ok(rec) if rec.ifname == dev.name => Ok(Some(rec)),
        // Stale or unreadable: it describes nothing we can trust.
        _ => {
            remove(dev)?;
            Ok(None)
        }
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

pub fn remove(dev: &Iface) -> Result<()> {
    let path = path(dev)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
