//! Network namespaces, identified by their cookie (what SO_NETNS_COOKIE gives
//! user space and `struct net`'s net_cookie holds in the kernel): never
//! reused while the machine runs, unlike inode numbers, which the kernel
//! hands to the next namespace as soon as one dies.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use serde::Serialize;

/// Where `ip netns add` keeps its namespaces (bind mounts of ns files).
pub const NAMED: &str = "/run/netns";

/// The cookie of the network namespace this thread is in.
pub fn cookie() -> Result<u64> {
    // Any socket tells the cookie of the namespace it was made in.
    let sock = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
        .context("opening a socket to read this network namespace's cookie")?;
    socket_cookie(sock.as_fd())
}

fn socket_cookie(sock: BorrowedFd<'_>) -> Result<u64> {
    let mut value = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; the kernel writes at most
    // `len` (8) bytes into `value` and the length it wrote into `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Errno::last()).context("getsockopt(SO_NETNS_COOKIE) (kernel 5.14 or newer)");
    }
    Ok(value)
}

/// The inode of this namespace's nsfs file, which `ip netns` and /proc show.
pub fn inode() -> Result<u64> {
    Ok(fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino())
}

/// The nsfs inode of the initial network namespace, fixed since Linux 6.18
/// (NET_NS_INIT_INO in linux/nsfs.h) and never given to another namespace,
/// whose inodes are all allocated above it.
const INITIAL_INODE: u64 = 0xEFFF_FFF9;
/// The first kernel whose initial network namespace has that inode.
const FIXED_INITIAL_SINCE: (u32, u32) = (6, 18);

/// Whether this thread is in the initial network namespace (the host's).
/// Since 6.18 our own nsfs inode says so (PID 1's may be closed to us even
/// as root); before, PID 1's namespace is compared by cookie, which needs
/// the right to look into PID 1.
pub fn is_initial() -> Result<bool> {
    let ino = inode()?;
    if ino == INITIAL_INODE || kernel_release()? >= FIXED_INITIAL_SINCE {
        return Ok(ino == INITIAL_INODE);
    }
    let init = File::open("/proc/1/ns/net").context(
        "opening /proc/1/ns/net to tell whether this is the initial network namespace \
         (kernels before 6.18 give it no fixed inode)",
    )?;
    Ok(cookie_of(&init)? == cookie()?)
}

/// The running kernel's major and minor version.
fn kernel_release() -> Result<(u32, u32)> {
    let text = fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading /proc/sys/kernel/osrelease")?;
    parse_release(&text).with_context(|| format!("kernel release {:?}", text.trim()))
}

fn parse_release(text: &str) -> Result<(u32, u32)> {
    let mut parts = text.trim().split(['.', '-']);
    let mut number = || -> Result<u32> {
        let part = parts.next().unwrap_or_default();
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().context("not MAJOR.MINOR")
    };
    Ok((number()?, number()?))
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

/// The cookie of every namespace `ip netns` names, by cookie. Entries that
/// are not (or no longer) namespaces are skipped; other failures are errors.
pub fn named() -> Result<HashMap<u64, Vec<u8>>> {
    let entries = match fs::read_dir(NAMED) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {NAMED}")),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {NAMED}"))?;
        let name = entry.file_name().as_bytes().to_vec();
        // A bind mount is a file; a symlink planted here is not followed.
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(entry.path())
        {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", entry.path().display())),
        };
        files.push((name, file));
    }
    // setns changes only the calling thread: a short-lived one enters each.
    std::thread::scope(|s| {
        s.spawn(|| cookies_of(&files))
            .join()
            .map_err(|_| anyhow!("the thread reading {NAMED} panicked"))?
    })
}

fn cookies_of(files: &[(Vec<u8>, File)]) -> Result<HashMap<u64, Vec<u8>>> {
    let mut out = HashMap::new();
    for (name, file) in files {
        match setns(file.as_fd(), CloneFlags::CLONE_NEWNET) {
            Ok(()) => {}
            // Not a network namespace (an unmounted or stray file).
            Err(Errno::EINVAL) => continue,
            Err(e) => {
                let path = Path::new(NAMED).join(std::ffi::OsStr::from_bytes(name));
                return Err(e).with_context(|| format!("entering {}", path.display()));
            }
        }
        out.insert(cookie()?, name.clone());
    }
    Ok(out)
}

/// Where to reach the namespace this one calls `nsid` (a veth peer's, from
/// IFLA_LINK_NETNSID): its file under /run/netns, or the initial
/// namespace's, /proc/1/ns/net; None if neither is it.
pub fn path_of_nsid(nsid: i32) -> Result<Option<std::path::PathBuf>> {
    // /proc's is a link to follow; one planted under /run/netns is not.
    let mut candidates = vec![(Path::new("/proc/1/ns/net").to_path_buf(), 0)];
    match fs::read_dir(NAMED) {
        Ok(entries) => candidates.extend(entries.flatten().map(|e| (e.path(), libc::O_NOFOLLOW))),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("listing {NAMED}")),
    }
    for (path, nofollow) in candidates {
        // Not ours to open, or gone: not the one.
        let Ok(file) =
            fs::OpenOptions::new().read(true).custom_flags(nofollow | libc::O_CLOEXEC).open(&path)
        else {
            continue;
        };
        // A file that is no namespace gets an error: not the one either.
        if crate::net::netlink::nsid_of(file.as_fd()).ok().flatten() == Some(nsid) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// A namespace as JSON shows it: the cookie, and its `ip netns` name if any.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub cookie: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Names of the namespaces a command meets, looked up in /run/netns once per
/// cookie not seen before.
pub struct Names {
    own: u64,
    known: HashMap<u64, Option<Vec<u8>>>,
    /// Set once a lookup failed: cookies only from then on.
    failed: bool,
}

impl Names {
    pub fn new() -> Result<Names> {
        Ok(Names { own: cookie()?, known: HashMap::new(), failed: false })
    }

    /// Names known from the start, none looked up: for tests.
    #[cfg(test)]
    pub(crate) fn fixed(own: u64, named: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Names {
        let known = named.into_iter().map(|(c, n)| (c, Some(n))).collect();
        Names { own, known, failed: true }
    }

    /// The caller's namespace.
    pub fn own(&self) -> u64 {
        self.own
    }

    /// Learn the names of `cookies` not met before; a failed lookup is said
    /// once through `note` and leaves the cookies unnamed.
    pub fn learn(&mut self, cookies: impl IntoIterator<Item = u64>, note: impl Fn(&str)) {
        let new: Vec<u64> = cookies.into_iter().filter(|c| !self.known.contains_key(c)).collect();
        if new.is_empty() {
            return;
        }
        let found = if self.failed {
            HashMap::new()
        } else {
            named().unwrap_or_else(|e| {
                note(&format!(
                    "warning: cannot name network namespaces ({e:#}); showing their cookies"
                ));
                self.failed = true;
                HashMap::new()
            })
        };
        for (cookie, name) in &found {
            self.known.insert(*cookie, Some(name.clone()));
        }
        for cookie in new {
            self.known.entry(cookie).or_insert(None);
        }
    }

    /// The `ip netns` name of `cookie`, if [`Names::learn`] found one.
    pub fn name(&self, cookie: u64) -> Option<&[u8]> {
        self.known.get(&cookie)?.as_deref()
    }

    /// `cookie` for JSON.
    pub fn json(&self, cookie: u64) -> Netns {
        let name = self.name(cookie).map(|n| String::from_utf8_lossy(n).into_owned());
        Netns { cookie, name }
    }

    /// `cookie` for text: None for the caller's own namespace, else its
    /// name or `cookie N`, escaped.
    pub fn label(&self, cookie: u64) -> Option<String> {
        if cookie == self.own {
            return None;
        }
        Some(match self.name(cookie) {
            Some(name) => crate::escape::bytes(name),
            None => format!("cookie {cookie}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_read_as_major_and_minor() {
        assert_eq!(parse_release("6.18.44-fc-v973\n").unwrap(), (6, 18));
        assert_eq!(parse_release("5.10.0-28-amd64").unwrap(), (5, 10));
        assert_eq!(parse_release("6.1").unwrap(), (6, 1));
        assert!(parse_release("linux").is_err());
        assert!((6, 9) < FIXED_INITIAL_SINCE && (7, 0) > FIXED_INITIAL_SINCE);
    }

    #[test]
    fn this_namespace_has_one_cookie() {
        let here = cookie().unwrap();
        assert_ne!(here, 0);
        assert_eq!(cookie().unwrap(), here);
        // A thread shares the namespace, so the cookie too.
        assert_eq!(std::thread::spawn(cookie).join().unwrap().unwrap(), here);
    }

    #[test]
    #[ignore = "needs root"] // enters a namespace (CAP_SYS_ADMIN)
    fn this_namespace_is_alive_and_no_other_has_its_cookie() {
        let c = cookie().unwrap();
        let own = File::open("/proc/self/ns/net").unwrap();
        assert_eq!(cookie_of(&own).unwrap(), c);
        assert!(alive(c, inode().unwrap()).unwrap());
        assert!(!alive(u64::MAX, inode().unwrap()).unwrap(), "no namespace has that cookie");
    }

    #[test]
    fn labels_name_other_namespaces_only() {
        let names = Names::fixed(1, [(2, b"lab\x1b".to_vec())]);
        assert_eq!(names.label(1), None);
        assert_eq!(names.label(2).as_deref(), Some("lab\\x1b"));
        assert_eq!(names.label(3).as_deref(), Some("cookie 3"));
        assert_eq!(names.json(2), Netns { cookie: 2, name: Some("lab\u{1b}".into()) });
        assert_eq!(names.json(3), Netns { cookie: 3, name: None });
    }
}
