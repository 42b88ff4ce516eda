//! Network namespaces by cookie. The kernel numbers each namespace once and
//! never reuses the number (SO_NETNS_COOKIE), where the inode of
//! /proc/self/ns/net is handed to the next namespace as soon as one dies.

use std::fs::{self, File};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// asm-generic's value (libc does not export it); sparc numbers its socket
/// options apart.
#[cfg(target_arch = "sparc64")]
const SO_NETNS_COOKIE: i32 = 0x0050;
#[cfg(not(target_arch = "sparc64"))]
const SO_NETNS_COOKIE: i32 = 71;

/// The cookie of the network namespace this thread is in (kernel 5.14+).
pub fn cookie() -> Result<u64> {
    // Any socket answers for its namespace; a unix one needs no privilege.
    let sock = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .context("making a socket to ask for the network namespace cookie")?;
    socket_cookie(sock.as_fd())
}

fn socket_cookie(sock: BorrowedFd<'_>) -> Result<u64> {
    let mut value = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `value` is a live u64 and `len` its size; the kernel writes at
    // most `len` bytes there.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error())
            .context("reading the network namespace cookie (SO_NETNS_COOKIE, kernel 5.14+)");
    }
    Ok(value)
}

/// The inode of this namespace's nsfs file, which `ip netns` and /proc show.
pub fn inode() -> Result<u64> {
    Ok(fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino())
}

/// The cookie of the namespace whose nsfs file is `ns`, asked from a thread
/// that enters it for that moment (needs CAP_SYS_ADMIN).
pub fn cookie_of(ns: &File) -> Result<u64> {
    let ns = ns.try_clone().context("duplicating a namespace fd")?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering a network namespace")?;
            cookie()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread asking a namespace's cookie panicked"))?
    })
}

/// Whether the namespace with `cookie` (whose nsfs inode was `ino`) still
/// exists where anyone can see it: a process in it, or a name under
/// /run/netns. Inodes are reused, so a match is confirmed by the cookie.
pub fn alive(cookie: u64, ino: u64) -> Result<bool> {
    if cookie == self::cookie()? {
        return Ok(true);
    }
    let mut candidates = Vec::new();
    for dir in ["/run/netns", "/var/run/netns"] {
        match fs::read_dir(dir) {
            Ok(entries) => candidates.extend(entries.flatten().map(|e| e.path())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("listing {dir}")),
        }
    }
    let procs = fs::read_dir("/proc").context("listing /proc")?;
    for entry in procs.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            candidates.push(entry.path().join("ns/net"));
        }
    }
    // Files with one inode at one moment are one namespace: the first that
    // opens decides.
    for path in candidates.iter().filter(|p| matches_inode(p, ino)) {
        // Gone meanwhile, or not ours to open: another candidate may do.
        let Ok(file) = File::open(path) else { continue };
        return Ok(cookie_of(&file)? == cookie);
    }
    Ok(false)
}

fn matches_inode(path: &Path, ino: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_namespace_has_one_cookie_and_is_alive() {
        let c = cookie().unwrap();
        assert_eq!(c, cookie().unwrap());
        let own = File::open("/proc/self/ns/net").unwrap();
        assert_eq!(cookie_of(&own).unwrap(), c);
        assert!(alive(c, inode().unwrap()).unwrap());
        assert!(!alive(u64::MAX, inode().unwrap()).unwrap(), "no namespace has that cookie");
    }
}
