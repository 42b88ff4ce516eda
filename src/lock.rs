//! One xdpctl at a time changes an interface: `load` and `unload` hold an
//! exclusive lock on a directory under the pin root for the interface while
//! they attach, pin and write the record. A second one is refused at once as
//! busy rather than queued: it would act on what it saw before the first
//! finished. The directory goes when the lock is let go, so none pile up.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::bpffs;
use crate::iface::Iface;
use crate::record;

/// Longer than any interface name, so no default pin directory can be it.
const DIR: &str = "xdpctl-interface-locks";

/// Held until dropped; the kernel lets go if the process dies.
pub struct IfaceLock {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Where the locks live; not a pin.
pub fn root() -> PathBuf {
    Path::new(bpffs::ROOT).join(DIR)
}

impl IfaceLock {
    /// Take `dev`'s lock, or fail naming it as busy.
    pub fn take(dev: &Iface) -> Result<IfaceLock> {
        bpffs::ensure_mounted()?;
        // Per network namespace, as ifindexes repeat across them.
        let path = root().join(format!("{}-{}", record::netns()?, dev.index));
        // A holder removes the directory as it lets go; a lock taken on a
        // directory removed meanwhile guards nothing, so take it again.
        for _ in 0..100 {
            match fs::create_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
            let dir = match File::open(&path) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
            };
            let lock = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => bail!(
                    "{} is busy: another xdpctl is loading or unloading there; \
                     try again when it is done",
                    dev.name
                ),
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            };
            if still_there(&path, &lock) {
                sweep(&path);
                return Ok(IfaceLock { path, _lock: lock });
            }
        }
        bail!("{}: could not take the lock {}; try again", dev.name, path.display())
    }
}

/// Whether `path` is still the directory `lock` holds.
fn still_there(path: &Path, lock: &File) -> bool {
    match (fs::metadata(path), lock.metadata()) {
        (Ok(now), Ok(held)) => now.ino() == held.ino(),
        _ => false,
    }
}

/// Remove the lock directories, other than `mine`, that a killed xdpctl left:
/// those nobody holds. Each is taken first, as a holder removes its own.
fn sweep(mine: &Path) {
    let Ok(entries) = fs::read_dir(root()) else { return };
    for path in entries.flatten().map(|e| e.path()).filter(|p| p != mine) {
        let Ok(dir) = File::open(&path) else { continue };
        if let Ok(lock) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            if still_there(&path, &lock) {
                let _ = fs::remove_dir(&path);
            }
        }
    }
}

impl Drop for IfaceLock {
    fn drop(&mut self) {
        // Still held: nobody else can be inside. An empty directory is all
        // there is to remove, so an error is not worth reporting.
        let _ = fs::remove_dir(&self.path);
    }
}
