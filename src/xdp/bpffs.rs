//! The BPF filesystem: mounted on demand, where pins may live, and the pin
//! directory an interface gets by default.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD as CWD};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::sys::statfs::{fstatfs, statfs, BPF_FS_MAGIC};
use nix::unistd::getppid;

use crate::error::fact;

/// Where bpffs is conventionally mounted, and where per-interface pins go.
pub const ROOT: &str = "/sys/fs/bpf";

/// Mount bpffs at [`ROOT`] unless it is there already (it may be unmounted at
/// any time, and pinning then fails with a confusing error). Refuses in a mount
/// namespace made for this one command, as `ip netns exec` makes: a bpffs
/// mounted there, and every pin in it, would vanish when xdpctl exits.
pub fn ensure_mounted() -> Result<()> {
    if on_bpffs(Path::new(ROOT))? {
        return Ok(());
    }
    if mount_ns_is_ours_alone()? {
        bail!(
            "{ROOT} has no bpffs in this private mount namespace (as under `ip netns exec`), \
             so pins would vanish when xdpctl exits; reach the interface with \
             `nsenter --net=/run/netns/NAME xdpctl ...` instead"
        );
    }
    mount(
        Some("bpf"),
        ROOT,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .with_context(|| {
        format!("mounting bpffs on {ROOT} (as root: `mount -t bpf bpf {ROOT}`) failed")
    })
}

/// Whether our mount namespace differs from our parent's: then it was made for
/// this command line (`ip netns exec`, `unshare -m cmd`) and dies with it.
fn mount_ns_is_ours_alone() -> Result<bool> {
    let ns = |pid: &str| {
        let path = format!("/proc/{pid}/ns/mnt");
        fs::metadata(&path).map(|m| (m.dev(), m.ino())).with_context(|| format!("reading {path}"))
    };
    Ok(ns("self")? != ns(&getppid().to_string())?)
}

/// Whether `path`, or the closest ancestor that exists, is on a bpffs.
pub fn on_bpffs(path: &Path) -> Result<bool> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let fs = statfs(existing).with_context(|| format!("statfs {}", existing.display()))?;
    Ok(fs.filesystem_type() == BPF_FS_MAGIC)
}

/// Make pin directory `dir` and what is missing above it, each by a handle
/// on its parent that is checked to be on bpffs and never follows a
/// symlink: a path swapped for a symlink out of bpffs after the checks gets
/// nothing made out there. Returns how many directories it made above
/// `dir` (--pin-dir /sys/fs/bpf/a/b/c with a missing: 2), and whether it
/// made `dir` itself, so that unload removes what load made.
pub fn make_pin_dir(dir: &Path) -> Result<(u32, bool)> {
    // A namespace's home emptied and removed meanwhile (see `tidy_home`)
    // leaves nothing to make the directory in: once more, from the top.
    match make_pin_dir_once(dir) {
        Err(e) if e.root_cause().downcast_ref::<Errno>() == Some(&Errno::ENOENT) => {
            make_pin_dir_once(dir)
        }
        done => done,
    }
}

fn make_pin_dir_once(dir: &Path) -> Result<(u32, bool)> {
    let missing: Vec<&Path> =
        dir.ancestors().take_while(|p| fs::symlink_metadata(p).is_err()).collect();
    let Some(base) = missing.last().and_then(|top| top.parent()) else {
        return Ok((0, false));
    };
    let (mut parents, mut itself) = (0, false);
    // The fd's filesystem is what counts, so the existing base may be
    // reached through a symlink; what is made below it may not.
    let open_dir = |at: BorrowedFd<'_>, name: &Path, shown: &Path, follow: bool| {
        let mut flags = OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let fd = openat(at, name, flags, Mode::empty())
            .with_context(|| format!("opening {} (a symlink?)", shown.display()))?;
        let here = fstatfs(&fd).with_context(|| format!("statfs {}", shown.display()))?;
        if here.filesystem_type() != BPF_FS_MAGIC {
            bail!("{} is not on a BPF filesystem (anymore); nothing made there", shown.display());
        }
        Ok::<OwnedFd, anyhow::Error>(fd)
    };
    let mut at = open_dir(CWD, base, base, true)?;
    for d in missing.iter().rev() {
        let name = Path::new(d.file_name().unwrap_or_default());
        // Only root reads pins: 0700 whatever the umask.
        let made = match mkdirat(&at, name, Mode::S_IRWXU) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => {
                return Err(e).with_context(|| format!("creating pin directory {}", d.display()))
            }
        };
        at = open_dir(at.as_fd(), name, d, false)?;
        if made {
            fchmod(&at, Mode::S_IRWXU)
                .with_context(|| format!("making pin directory {} private", d.display()))?;
            if *d == dir {
                itself = true;
            } else {
                parents += 1;
            }
        }
    }
    Ok((parents, itself))
}

/// Remove the `n` directories above pin directory `dir` that a load made,
/// deepest first, each only if empty and on bpffs; the first one that is
/// not empty (or a mount point) ends it.
pub fn remove_parents(dir: &Path, n: u32) -> Result<()> {
    for parent in dir.ancestors().skip(1).take(n as usize) {
        if parent == Path::new(ROOT) || !parent.exists() {
            continue;
        }
        if !on_bpffs(parent)? {
            return Ok(());
        }
        match fs::remove_dir(parent) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY)) => {
                return Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", parent.display())),
        }
    }
    Ok(())
}

/// Why a pin directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinDirProblem {
    Relative(PathBuf),
    ParentDir(PathBuf),
    NotBpffs(PathBuf),
    MountRoot(PathBuf),
    Dot(PathBuf),
}

impl fmt::Display for PinDirProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinDirProblem::Relative(d) => {
                write!(f, "{} is not an absolute path under {ROOT}", d.display())
            }
            PinDirProblem::ParentDir(d) => write!(f, "{}: '..' is not allowed", d.display()),
            PinDirProblem::NotBpffs(d) => write!(f, "{} is not on a BPF filesystem", d.display()),
            PinDirProblem::MountRoot(d) => {
                write!(f, "{} is the root of a bpffs mount", d.display())
            }
            PinDirProblem::Dot(d) => {
                write!(f, "{}: bpffs refuses names containing '.'", d.display())
            }
        }
    }
}

/// Check a user-given pin directory before anything is loaded.
pub fn check_pin_dir(dir: &Path) -> Result<()> {
    let problem = |p: fn(PathBuf) -> PinDirProblem| Err(fact(p(dir.to_path_buf())).into());
    if !dir.is_absolute() {
        return problem(PinDirProblem::Relative);
    }
    // Checked by name, before the filesystem is asked: `..` could lead out
    // of bpffs by a path the checks below never see.
    if dir.components().any(|c| c == std::path::Component::ParentDir) {
        return problem(PinDirProblem::ParentDir);
    }
    if !on_bpffs(dir)? {
        return problem(PinDirProblem::NotBpffs);
    }
    if is_mount_root(dir)? {
        return problem(PinDirProblem::MountRoot);
    }
    if dir.components().any(|c| c.as_os_str().to_string_lossy().contains('.')) {
        return problem(PinDirProblem::Dot);
    }
    Ok(())
}

fn is_mount_root(dir: &Path) -> Result<bool> {
    let Some(parent) = dir.parent() else {
        return Ok(true);
    };
    match (fs::metadata(dir), fs::metadata(parent)) {
        (Ok(d), Ok(p)) => Ok(d.dev() != p.dev()),
        // Not there yet: load will create it, below whatever mount holds it.
        (Err(e), _) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        (Err(e), _) | (_, Err(e)) => Err(e).with_context(|| format!("stat {}", dir.display())),
    }
}

/// How the default pin directory of every interface of a network namespace
/// other than the initial one starts, under [`ROOT`]; its cookie follows.
const NETNS_HOME: &str = "xdpctl-netns-";

/// The directory under which this network namespace's interfaces get their
/// default pin directories: [`ROOT`] in the initial namespace (as the
/// tutorial pins), else `ROOT/xdpctl-netns-<cookie>`. bpffs is shared by
/// every network namespace, and interface names repeat across them (every
/// lab's inner end is `veth0`); a cookie is never reused while the machine
/// runs, and pins do not outlive it either. A name under /run/netns would
/// not do: a namespace may have none or several, and a deleted name made
/// again would find the pins of the namespace that had it before.
fn pin_home() -> Result<&'static Path> {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(home) = HOME.get() {
        return Ok(home);
    }
    let home = if crate::net::netns::is_initial()? {
        home_of(None)
    } else {
        home_of(Some(crate::net::netns::cookie()?))
    };
    Ok(HOME.get_or_init(|| home))
}

/// [`pin_home`] of the initial namespace (None) or of the one with a cookie.
fn home_of(netns: Option<u64>) -> PathBuf {
    match netns {
        None => PathBuf::from(ROOT),
        Some(cookie) => Path::new(ROOT).join(format!("{NETNS_HOME}{cookie}")),
    }
}

/// Where interface `ifname` of this network namespace pins its maps unless
/// told otherwise: `/sys/fs/bpf/<ifname>` in the initial namespace, as the
/// tutorial pins, `/sys/fs/bpf/xdpctl-netns-<cookie>/<ifname>` in any other
/// (see [`pin_home`]). bpffs refuses '.' in names, so a VLAN device like
/// `eth0.100` becomes `eth0:100` (':' cannot occur in an interface name, so
/// the mapping is one to one).
pub fn default_pin_dir(ifname: &str) -> Result<PathBuf> {
    Ok(dir_in(pin_home()?, ifname))
}

fn dir_in(home: &Path, ifname: &str) -> PathBuf {
    home.join(dir_name(ifname))
}

/// `ifname` as a bpffs directory name: '.' (which bpffs refuses) as ':'.
pub fn dir_name(ifname: &str) -> String {
    ifname.replace('.', ":")
}

/// The name directly under [`ROOT`] that holds `dir` (a default pin
/// directory), to look for in one listing of the root.
pub fn top_name(dir: &Path) -> Option<&std::ffi::OsStr> {
    match dir.strip_prefix(ROOT).ok()?.components().next()? {
        std::path::Component::Normal(name) => Some(name),
        _ => None,
    }
}

/// After pin directory `dir` was removed: remove the namespace's directory
/// of default pin directories above it too, if that left it empty. A load
/// making a directory in it meanwhile retries (see [`make_pin_dir`]).
pub fn tidy_home(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    let ours = parent.parent() == Some(Path::new(ROOT))
        && parent.file_name().is_some_and(|n| n.to_string_lossy().starts_with(NETNS_HOME));
    if !ours {
        return Ok(());
    }
    match fs::remove_dir(parent) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY)) =>
        {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("removing {}", parent.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_names_are_encoded() {
        let root = Path::new(ROOT);
        assert_eq!(dir_in(root, "veth0"), Path::new("/sys/fs/bpf/veth0"));
        assert_eq!(dir_in(root, "eth0.100"), Path::new("/sys/fs/bpf/eth0:100"));
    }

    #[test]
    fn other_namespaces_pin_apart_by_cookie() {
        assert_eq!(home_of(None), Path::new("/sys/fs/bpf"));
        let home = home_of(Some(42));
        assert_eq!(home, Path::new("/sys/fs/bpf/xdpctl-netns-42"));
        assert_eq!(top_name(&home.join("veth0")), Some("xdpctl-netns-42".as_ref()));
        assert_eq!(top_name(Path::new("/sys/fs/bpf/veth0")), Some("veth0".as_ref()));
        assert_eq!(top_name(Path::new("/elsewhere/veth0")), None);
    }

    #[test]
    fn pin_dir_outside_bpffs_is_refused() {
        let err = check_pin_dir(Path::new("/tmp/xdpctl-pins")).unwrap_err().to_string();
        assert!(err.contains("/tmp/xdpctl-pins") && err.contains("not on a BPF filesystem"));
        let err = check_pin_dir(Path::new("relative")).unwrap_err().to_string();
        assert!(err.contains("absolute"));
        ensure_mounted().unwrap();
        let err = check_pin_dir(Path::new(ROOT)).unwrap_err().to_string();
        assert!(err.contains("root of a bpffs mount"), "{err}");
    }
}
