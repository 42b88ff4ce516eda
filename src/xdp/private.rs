//! State only xdpctl's own user may touch: a directory made 0700 and files
//! made 0600 whatever the umask, reached through a directory handle and never
//! through a symlink, and read back only when they are what xdpctl made
//! (regular, owned by this user, writable by no one else). Other users could
//! otherwise plant or edit what root later acts on.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{geteuid, unlinkat, UnlinkatFlags};

/// What xdpctl reads back of a state file at most: a record is a few hundred bytes.
const MAX_FILE: u64 = 64 * 1024;

/// Whether `st` is owned by this user and writable by no one else.
fn is_private(st: &FileStat) -> bool {
    st.st_uid == geteuid().as_raw() && st.st_mode & 0o022 == 0
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// A directory of private state, held open.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl PrivateDir {
    /// Open directory `path`, making it 0700 if it is missing. An existing one
    /// must be a directory of this user, not a symlink; group and other
    /// permissions an older xdpctl or a umask left are taken away.
    pub fn make(path: &Path) -> Result<PrivateDir> {
        match mkdirat(AT_FDCWD, path, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let dir = PrivateDir::open_dir(path)?;
        let st = fstat(&dir.fd).with_context(|| format!("stat {}", path.display()))?;
        if st.st_uid != geteuid().as_raw() {
            bail!(
                "{} belongs to uid {}, not to this user: refusing to keep state there; \
                 remove it (as root: `rm -r {0}`) and try again",
                path.display(),
                st.st_uid
            );
        }
        if st.st_mode & 0o777 != 0o700 {
            fchmod(&dir.fd, Mode::S_IRWXU)
                .with_context(|| format!("making {} private (0700)", path.display()))?;
        }
        Ok(dir)
    }

    /// Open an existing directory of private state; None if there is none.
    /// One another user owns is refused (its contents cannot be trusted).
    pub fn open(path: &Path) -> Result<Option<PrivateDir>> {
        let dir = match PrivateDir::open_dir(path) {
            Ok(dir) => dir,
            Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = fstat(&dir.fd).with_context(|| format!("stat {}", path.display()))?;
        if st.st_uid != geteuid().as_raw() {
            bail!(
                "{} belongs to uid {}, not to this user: its contents are not trusted; \
                 remove it (as root: `rm -r {0}`)",
                path.display(),
                st.st_uid
            );
        }
        Ok(Some(dir))
    }

    fn open_dir(path: &Path) -> Result<PrivateDir> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        let fd = match openat(AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => bail!(
                "{} is not a directory (a symlink?): refusing to keep state through it; \
                 remove it (as root: `rm {0}`)",
                path.display()
            ),
            Err(Errno::EACCES) => bail!(
                "{}: permission denied: xdpctl's state is root's; run xdpctl as root",
                path.display()
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())))
            }
        };
        Ok(PrivateDir { fd, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle, for *at() calls relative to it.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Names of the entries, in no order.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut dir = Dir::openat(&self.fd, ".", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("listing {}", self.path.display()))?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.with_context(|| format!("listing {}", self.path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// The contents of file `name`; None if it is missing, or (with a
    /// warning) if it is not what xdpctl makes: a symlink, not a regular
    /// file, another user's, writable by others, or too large.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let shown = self.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                warn(&shown, "it is a symlink");
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", shown.display())),
        };
        let st = fstat(&fd).with_context(|| format!("stat {}", shown.display()))?;
        if kind(&st) != SFlag::S_IFREG {
            warn(&shown, "it is not a regular file");
            return Ok(None);
        }
        if !is_private(&st) {
            warn(
                &shown,
                &format!("it belongs to uid {} with mode {:o}", st.st_uid, st.st_mode & 0o7777),
            );
            return Ok(None);
        }
        if st.st_size as u64 > MAX_FILE {
            warn(&shown, &format!("it is {} bytes long", st.st_size));
            return Ok(None);
        }
        read_sized(File::from(fd), st.st_size as u64)
            .map(Some)
            .with_context(|| format!("reading {}", shown.display()))
    }

    /// Replace file `name` with `data` atomically: written to a new 0600
    /// file (O_EXCL, never through a symlink), then renamed over it. Callers
    /// serialise writes of one name (a killed writer's `<name>.tmp` is
    /// simply replaced).
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = tmp_name(name);
        let mut file = self.create(&tmp)?;
        let written = file
            .write_all(data)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", self.path.join(&tmp).display()))
            .and_then(|()| {
                renameat(&self.fd, tmp.as_str(), &self.fd, name)
                    .with_context(|| format!("writing {}", self.path.join(name).display()))
            });
        if written.is_err() {
            let _ = self.remove(&tmp);
        }
        written
    }

    /// A new, empty file `name`, 0600; whatever is planted under that name
    /// (a symlink, say) is removed first, never followed.
    pub fn create(&self, name: &str) -> Result<File> {
        self.remove(name)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let shown = self.path.join(name);
        let fd = openat(&self.fd, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .with_context(|| format!("creating {}", shown.display()))?;
        // The umask may have taken bits away; never added any.
        fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
            .with_context(|| format!("making {} private (0600)", shown.display()))?;
        Ok(File::from(fd))
    }

    /// Remove file `name` (a symlink itself, never its target); a missing one
    /// is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("removing {}", self.path.join(name).display()))
            }
        }
    }

    /// Make subdirectory `name` 0700 (if missing) and open it, never through
    /// a symlink.
    pub fn subdir(&self, name: &str) -> Result<OwnedFd> {
        let shown = self.path.join(name);
        match mkdirat(&self.fd, name, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", shown.display())),
        }
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        openat(&self.fd, name, flags, Mode::empty())
            .with_context(|| format!("opening {} (a symlink?)", shown.display()))
    }

    /// The inode at `name` now, if any, without following a symlink.
    pub fn inode(&self, name: &str) -> Option<u64> {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok().map(|st| st.st_ino)
    }
}

/// The temporary name beside `name` that `write` fills first.
/// A file fstat said is `size` bytes long, in one read() when it still is
/// (`status` reads a record per interface); one that grew meanwhile is read
/// on, never past `MAX_FILE` in all.
fn read_sized(mut file: File, size: u64) -> std::io::Result<Vec<u8>> {
    // One byte more than the size: a read that stops short of it met the end.
    let want = (size + 1).min(MAX_FILE) as usize;
    let mut text = vec![0; want];
    let mut got = 0;
    while got < want {
        match file.read(&mut text[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if got as u64 == size {
            break;
        }
    }
    text.truncate(got);
    if got == want {
        file.take(MAX_FILE - got as u64).read_to_end(&mut text)?;
    }
    Ok(text)
}

/// The contents of `path`, a file root acts on though xdpctl did not write
/// it (apply's config): it must be a regular file of this user that no one
/// else may write, in a directory no one else may write (or replace it in),
/// and at most `max` bytes. A symlink is followed (config management links
/// files into place): the file reached is what is checked.
pub fn read_trusted(path: &Path, max: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = openat(AT_FDCWD, path, flags, Mode::empty())
        .with_context(|| format!("{shown}: cannot open it"))?;
    let st = fstat(&fd).with_context(|| format!("stat {shown}"))?;
    if kind(&st) != SFlag::S_IFREG {
        bail!("{shown} is not a regular file");
    }
    let untrusted = |what: &str, st: &FileStat| {
        anyhow::anyhow!(
            "{what} belongs to uid {} with mode {:o}: refusing to act on a file others may \
             change; make it root's and not group/other-writable (chown root: ; chmod go-w)",
            st.st_uid,
            st.st_mode & 0o7777
        )
    };
    if !is_private(&st) {
        return Err(untrusted(&shown.to_string(), &st));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = nix::sys::stat::stat(parent).with_context(|| format!("stat {}", parent.display()))?;
    // A sticky directory (/tmp) lets others add files, never replace ours.
    let sticky = dir.st_mode & 0o1000 != 0;
    if dir.st_uid != geteuid().as_raw() || (dir.st_mode & 0o022 != 0 && !sticky) {
        return Err(untrusted(&format!("its directory {}", parent.display()), &dir));
    }
    if st.st_size as u64 > max {
        bail!("{shown} is {} bytes long; at most {max} are read", st.st_size);
    }
    let mut text = Vec::new();
    File::from(fd).take(max).read_to_end(&mut text).with_context(|| format!("reading {shown}"))?;
    Ok(text)
}

pub fn tmp_name(name: &str) -> String {
    format!("{name}.tmp")
}

fn warn(path: &Path, why: &str) {
    crate::output::say(&format!(
        "warning: ignoring {}: {why}; xdpctl did not write it",
        path.display()
    ));
}

/// Hand the handle to code that wants an `AsFd`.
impl AsFd for PrivateDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xdpctl-private-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn made_private_whatever_the_umask() {
        let base = scratch();
        let path = base.join("state");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = PrivateDir::make(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        dir.write("rec", b"hello").unwrap();
        assert_eq!(std::fs::metadata(path.join("rec")).unwrap().mode() & 0o777, 0o600);
        assert_eq!(dir.read("rec").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(dir.names().unwrap(), ["rec"], "no temporary file left");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn symlinks_are_never_followed() {
        let base = scratch();
        let target = base.join("target");
        std::fs::write(&target, b"precious").unwrap();
        let path = base.join("state");
        let dir = PrivateDir::make(&path).unwrap();
        symlink(&target, path.join("rec")).unwrap();
        assert_eq!(dir.read("rec").unwrap(), None, "a symlinked record is ignored");
        symlink(&target, path.join(tmp_name("rec"))).unwrap();
        dir.write("rec", b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(dir.read("rec").unwrap().as_deref(), Some(&b"new"[..]));
        // The directory itself as a symlink.
        let link = base.join("linked");
        symlink(&path, &link).unwrap();
        let err = PrivateDir::make(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn files_others_could_write_are_ignored() {
        let base = scratch();
        let dir = PrivateDir::make(&base.join("state")).unwrap();
        dir.write("rec", b"x").unwrap();
        let rec = base.join("state/rec");
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(dir.read("rec").unwrap(), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn read_whole_whatever_fstat_said() {
        let base = scratch();
        let path = base.join("f");
        let body: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let open = || File::open(&path).unwrap();
        assert_eq!(read_sized(open(), 5000).unwrap(), body);
        assert_eq!(read_sized(open(), 10).unwrap(), body, "grew since fstat");
        assert_eq!(read_sized(open(), 9000).unwrap(), body, "shrank since fstat");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_sized(open(), 0).unwrap(), b"");
        std::fs::write(&path, vec![7; MAX_FILE as usize + 10]).unwrap();
        assert_eq!(read_sized(open(), 3).unwrap().len(), MAX_FILE as usize, "bounded");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
