//! One xdpctl at a time changes an interface, and one at a time pins into a
//! directory: `load` and `unload` hold an exclusive lock on a directory under
//! the pin root for the interface (and for the pin directory) while they
//! attach, pin and write the record. A second one is refused at once as busy
//! rather than queued: it would act on what it saw before the first
//! finished. The directory goes when the lock is let go, so none pile up.
//! The lock root is root's alone (0700): no other user can plant or hold a lock.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::fact;
use crate::net::iface::Iface;
use crate::net::netns;
use crate::xdp::bpffs;
use crate::xdp::private::PrivateDir;

/// Longer than any interface name, so no default pin directory can be it.
const DIR: &str = "xdpctl-interface-locks";

/// Held until dropped; the kernel lets go if the process dies.
pub struct Lock {
    root: PrivateDir,
    name: String,
    _lock: Flock<File>,
}

/// Where the locks live; not a pin.
pub fn root() -> PathBuf {
    Path::new(bpffs::ROOT).join(DIR)
}

/// Another xdpctl holds the lock of this pin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDirBusy(pub PathBuf);

impl fmt::Display for PinDirBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pin directory {} is busy: another xdpctl is pinning there for another interface; \
             try again when it is done",
            self.0.display()
        )
    }
}

impl Lock {
    /// Take `dev`'s lock, or fail naming it as busy.
    pub fn interface(dev: &Iface) -> Result<Lock> {
        // Per network namespace, as ifindexes repeat across them.
        let name = format!("if-{}-{}", netns::cookie()?, dev.index);
        Lock::take(name, || {
            anyhow!(
                "{} is busy: another xdpctl is loading or unloading there; \
                 try again when it is done",
                dev.name
            )
        })
    }

    /// Take the lock of sampling through `dev`'s program, or fail naming it
    /// as busy: two samplers would overwrite each other's switch. Apart from
    /// the interface's lock, so a load or unload meanwhile is not refused.
    pub fn sampling(dev: &Iface) -> Result<Lock> {
        let name = format!("sample-{}-{}", netns::cookie()?, dev.index);
        Lock::take(name, || {
            anyhow!(
                "{} is busy: another xdpctl sample captures through its program; \
                 one sampler per interface at a time",
                dev.name
            )
        })
    }

    /// Take the lock of pin directory `dir`, or fail naming it as busy: two
    /// interfaces loading into one directory would each replace the
    /// other's pins.
    pub fn pin_dir(dir: &Path) -> Result<Lock> {
        let name = format!("pins-{:016x}", fnv1a(dir.as_os_str().as_encoded_bytes()));
        Lock::take(name, || fact(PinDirBusy(dir.to_path_buf())).into())
    }

    fn take(name: String, busy: impl Fn() -> anyhow::Error) -> Result<Lock> {
        bpffs::ensure_mounted()?;
        let root = PrivateDir::make(&root())?;
        // A holder removes the directory as it lets go; a lock taken on a
        // directory removed meanwhile guards nothing, so take it again.
        for _ in 0..100 {
            let dir = match root.subdir(&name) {
                Ok(fd) => File::from(fd),
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let lock = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => return Err(busy()),
                Err((_, e)) => {
                    return Err(e)
                        .with_context(|| format!("locking {}", root.path().join(&name).display()))
                }
            };
            if still_there(&root, &name, &lock) {
                sweep(&root, &name);
                return Ok(Lock { root, name, _lock: lock });
            }
        }
        bail!("could not take the lock {}; try again", root.path().join(&name).display())
    }
}

/// Whether `name` in `root` is still the directory `lock` holds.
fn still_there(root: &PrivateDir, name: &str, lock: &File) -> bool {
    let held = nix::sys::stat::fstat(lock).map(|st| st.st_ino);
    matches!((root.inode(name), held), (Some(now), Ok(held)) if now == held)
}

/// Remove the lock directories, other than `mine`, that a killed xdpctl left:
/// those nobody holds. Each is taken first, as a holder removes its own.
fn sweep(root: &PrivateDir, mine: &str) {
    let Ok(names) = root.names() else { return };
    for name in names.iter().filter(|n| *n != mine) {
        let Ok(dir) = root.subdir(name) else { continue };
        if let Ok(lock) = Flock::lock(File::from(dir), FlockArg::LockExclusiveNonblock) {
            if still_there(root, name, &lock) {
                let _ = unlinkat(root.fd(), name.as_str(), UnlinkatFlags::RemoveDir);
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Still held: nobody else can be inside. An empty directory is all
        // there is to remove, so an error is not worth reporting.
        let _ = unlinkat(self.root.fd(), self.name.as_str(), UnlinkatFlags::RemoveDir);
    }
}

/// FNV-1a: a stable name for a path of any length (a lock's name must fit
/// bpffs, and stay the same across xdpctl versions).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_reference_values() {
        // Published test vectors of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
