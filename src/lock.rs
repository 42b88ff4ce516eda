//! One xdpctl at a time changes an interface: `load` and `unload` hold an
//! exclusive lock on a directory under the pin root for the interface while
//! they attach, pin and write the record. A second one is refused at once as
//! busy rather than queued: it would act on what it saw before the first
//! finished.

use std::fs::{self, File};
use std::io;
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
pub struct IfaceLock(#[allow(dead_code)] Flock<File>);

/// Where the locks live; not a pin, and kept (empty directories) so that a
/// lock is never deleted under someone waiting to take it.
pub fn root() -> PathBuf {
    Path::new(bpffs::ROOT).join(DIR)
}

impl IfaceLock {
    /// Take `dev`'s lock, or fail naming it as busy.
    pub fn take(dev: &Iface) -> Result<IfaceLock> {
        bpffs::ensure_mounted()?;
        // Per network namespace, as ifindexes repeat across them.
        let path = root().join(format!("{}-{}", record::netns()?, dev.index));
        match fs::create_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let dir = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(IfaceLock(lock)),
            Err((_, Errno::EWOULDBLOCK)) => bail!(
                "{} is busy: another xdpctl is loading or unloading there; \
                 try again when it is done",
                dev.name
            ),
            Err((_, e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}
