//! Files xdpctl writes where the user says (`sample -w PATH`, `exporter
//! --textfile DIR`), safe for root
//! in a directory other users can write (/tmp): the last component of PATH is
//! never followed if it is a symlink; something already there must be a
//! regular file of this user; the data goes to a new 0600 file under a
//! temporary name beside it, renamed over PATH only once the command has
//! started. A start that fails leaves whatever is at PATH byte-for-byte as it
//! was. The directory part of PATH may go through symlinks, as with tcpdump.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::IsTerminal;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{geteuid, unlinkat, Uid, UnlinkatFlags, User};

/// Fresh temporary names tried when one is taken (planted, say).
const TRIES: u32 = 16;
/// Bytes of the final name kept in the temporary one, which must stay
/// within NAME_MAX (255) with its suffix.
const NAME_KEPT: usize = 200;

/// A file being written under a temporary name until `put_in_place`; dropped
/// before that, it is removed and PATH is untouched.
#[derive(Debug)]
pub struct NewFile {
    dir: OwnedFd,
    name: OsString,
    /// The temporary name, while the file has not been put in place.
    tmp: Option<OsString>,
    file: File,
    shown: String,
    /// The option and PATH, as errors name them: `-w PATH`.
    said: String,
}

/// Refuse to write a binary stream (`-w -`) to stdout when it is a
/// terminal, as tcpdump does: it would garble the screen, never be read.
pub fn check_binary_stdout(flag: &str) -> Result<()> {
    if std::io::stdout().is_terminal() {
        bail!(
            "{flag}: refusing to write a binary capture to a terminal; redirect it \
             (`| tcpdump -r -`, `> file`) or use {flag_file}",
            flag_file = flag.replace(" -", " FILE")
        );
    }
    Ok(())
}

impl NewFile {
    /// Check what is at `path` and create the temporary file beside it.
    pub fn create(path: &Path) -> Result<NewFile> {
        Self::create_for(path, "-w")
    }

    /// The same, for a PATH given with (or made from) option `flag`, which
    /// errors name.
    pub fn create_for(path: &Path, flag: &str) -> Result<NewFile> {
        let shown = printable(path.as_os_str());
        let said = format!("{flag} {shown}");
        let Some(name) = path.file_name() else {
            bail!("{said}: names no file; name one, such as capture.pcap");
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let dir = openat(AT_FDCWD, parent, flags, Mode::empty()).with_context(|| {
            format!(
                "{said}: cannot open its directory {}; pick a writable path",
                printable(parent.as_os_str())
            )
        })?;
        check(&dir, name, &said)?;
        let (tmp, fd) = create_tmp(&dir, name, &said)?;
        let file = File::from(fd);
        Ok(NewFile { dir, name: name.to_os_string(), tmp: Some(tmp), file, shown, said })
    }

    /// The file, open for writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// PATH as it may be printed (control characters escaped).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Rename the file over PATH, after checking again what is there.
    pub fn put_in_place(&mut self) -> Result<()> {
        let Some(tmp) = self.tmp.as_deref() else { return Ok(()) };
        check(&self.dir, &self.name, &self.said)?;
        // rename(2) replaces a symlink planted meanwhile; it never follows it.
        renameat(&self.dir, tmp, &self.dir, self.name.as_os_str())
            .with_context(|| format!("{}: putting the file in place", self.said))?;
        self.tmp = None;
        // In a directory others may write without the sticky bit, the
        // temporary file could have been swapped: PATH must now be ours.
        let ours = fstat(&self.file).context("stat of the new file")?;
        let there = fstatat(&self.dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        if !there.is_ok_and(|st| same(&st, &ours)) {
            bail!(
                "{}: the file was replaced while xdpctl started; \
                 write into a directory only you can write to",
                self.said
            );
        }
        Ok(())
    }
}

impl Drop for NewFile {
    /// Not put in place: remove the temporary file, if it is still ours.
    fn drop(&mut self) {
        let Some(tmp) = self.tmp.as_deref() else { return };
        let ours = fstat(&self.file);
        let there = fstatat(&self.dir, tmp, AtFlags::AT_SYMLINK_NOFOLLOW);
        if let (Ok(ours), Ok(there)) = (ours, there) {
            if same(&ours, &there) {
                let _ = unlinkat(&self.dir, tmp, UnlinkatFlags::NoRemoveDir);
            }
        }
    }
}

fn same(a: &FileStat, b: &FileStat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

/// Refuse what is at `name` in `dir` unless it is nothing, or a regular file
/// of this user.
fn check(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("{shown}: cannot look at it; pick another path"))
        }
    };
    let me = geteuid().as_raw();
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFREG && st.st_uid == me {
        return Ok(());
    }
    // Only now, for the refusal: a user name is an NSS lookup.
    let owner = owner(st.st_uid);
    match kind {
        SFlag::S_IFLNK => {
            let to = readlinkat(dir, name).map_or_else(|_| "?".into(), |t| printable(&t));
            bail!(
                "{shown}: it is a symlink (to {to}) owned by {owner}; xdpctl never writes \
                 through a symlink: remove it or pick another path"
            )
        }
        SFlag::S_IFREG => bail!(
            "{shown}: it is a file owned by {owner}, not by {}, who runs xdpctl; \
             xdpctl replaces only its own user's files: remove it or pick another path",
            self::owner(me)
        ),
        other => bail!(
            "{shown}: it is {} owned by {owner}; xdpctl writes regular files \
             only: pick another path",
            what(other)
        ),
    }
}

fn what(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a regular file",
    }
}

/// "nobody (uid 65534)", or "uid 4242" for a uid without a name.
fn owner(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", printable(OsStr::new(&user.name))),
        _ => format!("uid {uid}"),
    }
}

/// A new file in `dir`, 0600 whatever the umask, never through a symlink,
/// under a name no one can guess in advance: `.NAME.xdpctl-PID-RANDOM`.
fn create_tmp(dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<(OsString, OwnedFd)> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let private = Mode::S_IRUSR | Mode::S_IWUSR;
    let cannot = || format!("{shown}: cannot create a file in its directory; pick a writable path");
    for attempt in 0..TRIES {
        let tmp = tmp_name(name, attempt);
        let fd = match openat(dir, tmp.as_os_str(), flags, private) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e).with_context(cannot),
        };
        // The umask may have taken bits away; it never adds any.
        if let Err(e) = fchmod(&fd, private) {
            let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e).with_context(|| format!("{shown}: making the file private"));
        }
        return Ok((tmp, fd));
    }
    bail!("{shown}: {TRIES} temporary names in its directory were taken; pick another directory")
}

fn tmp_name(name: &OsStr, attempt: u32) -> OsString {
    let pid = std::process::id();
    // Seeded by the OS for each RandomState: unpredictable enough for a name
    // that O_EXCL protects anyway.
    let random = RandomState::new().hash_one((pid, attempt, std::time::Instant::now()));
    let mut tmp = b".".to_vec();
    tmp.extend(name.as_bytes().iter().take(NAME_KEPT));
    tmp.extend(format!(".xdpctl-{pid}-{random:016x}").as_bytes());
    OsString::from_vec(tmp)
}

/// `s` for an error line: control characters escaped.
fn printable(s: &OsStr) -> String {
    let mut out = String::new();
    for c in s.to_string_lossy().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::PathBuf;

    fn scratch(what: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xdpctl-outfile-{}-{what}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn written_aside_then_put_in_place() {
        let dir = scratch("place");
        let path = dir.join("a.pcap");
        std::fs::write(&path, b"old").unwrap();
        let mut f = NewFile::create(&path).unwrap();
        f.file().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old", "untouched until put in place");
        assert_eq!(names(&dir).len(), 2, "the temporary file beside it");
        f.put_in_place().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(names(&dir), ["a.pcap"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_before_its_place_it_leaves_nothing() {
        let dir = scratch("drop");
        let path = dir.join("b.pcap");
        std::fs::write(&path, b"previous capture").unwrap();
        let f = NewFile::create(&path).unwrap();
        f.file().write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"previous capture");
        assert_eq!(names(&dir), ["b.pcap"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_directories_and_devices_are_refused() {
        let dir = scratch("refuse");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.join("link.pcap");
        symlink(&victim, &link).unwrap();
        let err = NewFile::create(&link).unwrap_err().to_string();
        assert!(err.contains("symlink") && err.contains("victim"), "{err}");
        let dangling = dir.join("dangling.pcap");
        symlink(dir.join("nowhere"), &dangling).unwrap();
        assert!(NewFile::create(&dangling).is_err());
        let err = NewFile::create(&dir).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let err = NewFile::create(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(err.contains("a character device"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(names(&dir), ["dangling.pcap", "link.pcap", "victim"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_planted_before_the_rename_is_refused() {
        let dir = scratch("late");
        let path = dir.join("c.pcap");
        let mut f = NewFile::create(&path).unwrap();
        symlink(dir.join("elsewhere"), &path).unwrap();
        assert!(f.put_in_place().unwrap_err().to_string().contains("symlink"));
        drop(f);
        assert_eq!(names(&dir), ["c.pcap"], "only the planted link");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable(OsStr::new("a\nb\u{1b}")), "a\\nb\\u{1b}");
    }
}
