//! Map pins in a bpffs directory: which maps `load` reuses, pins and replaces,
//! and which `unload` removes.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libbpf_rs::{
    libbpf_sys, AsRawLibbpf, MapCore, MapHandle, MapType, Object, OpenMap, OpenMapMut, OpenObject,
};
use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD as CWD};

use crate::error::fact;
use crate::obj::maps;
use crate::obj::object;
use crate::xdp::bpffs;

/// The file a map is pinned as. libbpf's internal maps (`obj.rodata`) carry a
/// '.', which bpffs refuses.
pub fn pin_name(map_name: &str) -> String {
    map_name.replace('.', "_")
}

/// What `reuse` pointed at maps already pinned.
#[derive(Debug, Default)]
pub struct Reused {
    /// Pins reused because --reuse-maps asked.
    pub asked: Vec<String>,
    /// Pins of maps the object pins by name that were there already.
    pub by_name: Vec<String>,
    /// Every map the object pins by name: one not there yet is pinned, but
    /// never over a pin made meanwhile.
    pub pinned_by_name: Vec<String>,
}

impl Reused {
    fn contains(&self, name: &String) -> bool {
        self.asked.contains(name) || self.by_name.contains(name)
    }
}

/// Before load: point the object's own maps that have a pin in `dir` at the
/// pinned map: with `asked` (--reuse-maps) every map, so counters survive a
/// program swap; else only those the object pins by name
/// (LIBBPF_PIN_BY_NAME), which is what pinning by name means. Refuses a pin
/// whose layout differs, naming the differences.
///
/// libbpf's own pinning of by-name maps is switched off: it would pin at
/// load, before the attach that may still fail. xdpctl stages those pins
/// and moves them into place with the others.
pub fn reuse(obj: &mut OpenObject, dir: &Path, asked: bool) -> Result<Reused> {
    let mut reused = Reused::default();
    for mut map in obj.maps_mut() {
        let name = map.name().to_string_lossy().into_owned();
        // Internal maps hold this object's globals; another object's are no
        // use. Maps left uncreated serve programs not being loaded. A perf
        // event array holds no state, only the buffers of whoever reads it
        // (and its size, a CPU count, is set only at creation).
        if name.contains('.') || !map.autocreate() || map.map_type() == MapType::PerfEventArray {
            continue;
        }
        let by_name = pinned_by_name(&map);
        if by_name {
            forget_pin_path(&mut map)
                .with_context(|| format!("taking the pinning of map {name} from libbpf"))?;
            reused.pinned_by_name.push(pin_name(&name));
        } else if !asked {
            continue;
        }
        let path = dir.join(pin_name(&name));
        if !path.exists() {
            continue;
        }
        let pinned = maps::open_pinned(&path)?;
        let diffs = differences(&pinned, &map)?;
        if !diffs.is_empty() {
            let misfit = Misfit { path, map: name, diffs, by_name };
            return Err(fact(misfit).into());
        }
        map.reuse_fd(pinned.as_fd())
            .with_context(|| format!("reusing pinned map {}", path.display()))?;
        let list = if by_name { &mut reused.by_name } else { &mut reused.asked };
        list.push(pin_name(&name));
    }
    Ok(reused)
}

/// How the pinned map differs from what `map` declares (libbpf's test for
/// reusing a pin: type, key and value size, entries, flags).
fn differences(pinned: &MapHandle, map: &OpenMap<'_>) -> Result<Vec<String>> {
    let mut diffs = Vec::new();
    if pinned.map_type() != map.map_type() {
        diffs.push(format!("type {:?}, not {:?}", pinned.map_type(), map.map_type()));
    }
    for (what, have, want) in [
        ("key", pinned.key_size(), map.key_size()),
        ("value", pinned.value_size(), map.value_size()),
    ] {
        if have != want {
            diffs.push(format!("{what} {have} B, not {want} B"));
        }
    }
    if pinned.max_entries() != map.max_entries() {
        diffs.push(format!("{} entries, not {}", pinned.max_entries(), map.max_entries()));
    }
    let flags = pinned.info().context("reading a pinned map's flags")?.info.map_flags;
    if flags != map.map_flags() {
        diffs.push(format!("flags {flags:#x}, not {:#x}", map.map_flags()));
    }
    Ok(diffs)
}

/// Whether the object pins `map` by name (`__uint(pinning,
/// LIBBPF_PIN_BY_NAME)`): libbpf gives only those a pin path at open.
fn pinned_by_name(map: &OpenMap<'_>) -> bool {
    // SAFETY: the pointer is a live bpf_map of the object `map` borrows;
    // libbpf only reads it, and the path it returns is not kept.
    let path = unsafe { libbpf_sys::bpf_map__pin_path(map.as_libbpf_object().as_ptr()) };
    !path.is_null()
}

/// Pin names of the maps `obj` creates and pins by name; asked before
/// `reuse`, which takes their pin paths from libbpf.
pub fn by_name(obj: &OpenObject) -> Vec<String> {
    obj.maps()
        .filter(|m| m.autocreate() && pinned_by_name(m))
        .map(|m| pin_name(&m.name().to_string_lossy()))
        .collect()
}

/// Leave `map` without a pin path, so libbpf neither reuses nor pins it at
/// load: xdpctl does both.
fn forget_pin_path(map: &mut OpenMapMut<'_>) -> Result<()> {
    // SAFETY: the pointer is a live bpf_map of the object borrowed mutably
    // here; a NULL path makes libbpf free its copy and keep none.
    let ret = unsafe {
        libbpf_sys::bpf_map__set_pin_path(map.as_libbpf_object().as_ptr(), std::ptr::null())
    };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret)).context("bpf_map__set_pin_path");
    }
    Ok(())
}

/// How a staged pin's name starts; the staging process's pid follows.
const STAGED: &str = "xdpctl-staged-";

/// Pins in `dir` staged by a process that is gone (a load killed before it
/// finished), by that process's pid.
pub fn staged_by_dead(dir: &Path) -> Result<BTreeMap<u32, Vec<String>>> {
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let name = entry.with_context(|| format!("listing {}", dir.display()))?.file_name();
        let name = name.to_string_lossy();
        let pid = name.strip_prefix(STAGED).and_then(|rest| rest.split_once('-'));
        let Some(pid) = pid.and_then(|(pid, _)| pid.parse::<u32>().ok()) else { continue };
        if !is_xdpctl(pid) {
            out.entry(pid).or_default().push(name.into_owned());
        }
    }
    Ok(out)
}

/// Whether process `pid` runs xdpctl (a pid reused by another program is not).
fn is_xdpctl(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "xdpctl")
}

/// Pins made under temporary names, so that the pins they replace stay intact
/// until everything else has worked. Dropped uncommitted, they are removed.
pub struct Staged {
    dir: PathBuf,
    created_dir: bool,
    /// Directories made above `dir` (a nested --pin-dir).
    parents_made: u32,
    committed: bool,
    /// (temporary name, final name, whether it may replace a pin there)
    /// not yet moved into place
    staged: Vec<(String, String, bool)>,
    /// Every pin of the program in `dir`, by final name.
    names: Vec<String>,
}

/// Pin the maps of `obj` that the loaded program uses (`used`, by map id) in
/// `dir` under a temporary name, except those `reused` (already pinned there).
/// The object's other maps belong to programs that were not loaded.
pub fn stage(obj: &mut Object, dir: &Path, reused: &Reused, used: &[u32]) -> Result<Staged> {
    let (parents_made, created_dir) = bpffs::make_pin_dir(dir)?;
    let mut staged = Staged {
        dir: dir.to_path_buf(),
        created_dir,
        parents_made,
        committed: false,
        staged: Vec::new(),
        names: Vec::new(),
    };
    for mut map in obj.maps_mut() {
        if !map.autocreate() {
            continue;
        }
        let name = pin_name(&map.name().to_string_lossy());
        let id = map.info().with_context(|| format!("reading the id of map {name}"))?.info.id;
        if !used.contains(&id) {
            continue;
        }
        if !reused.contains(&name) {
            // No '.' allowed; the pid keeps concurrent loads apart.
            let tmp = format!("{STAGED}{}-{name}", std::process::id());
            let path = dir.join(&tmp);
            map.pin(&path).with_context(|| format!("pinning map {name} in {}", dir.display()))?;
            // A map pinned by name is shared, never replaced.
            let replace = !reused.pinned_by_name.contains(&name);
            staged.staged.push((tmp, name.clone(), replace));
        }
        staged.names.push(name);
    }
    Ok(staged)
}

impl Staged {
    /// Final names of all the program's pins in the directory.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many directories above the pin directory this load made.
    pub fn parents_made(&self) -> u32 {
        self.parents_made
    }

    /// Move the staged pins over their final names; each replaces an older
    /// pin of that name atomically (rename(2)), so readers never miss one.
    /// Pins not yet moved when a rename fails are removed by the drop.
    pub fn commit(mut self) -> Result<()> {
        while let Some((tmp, name, replace)) = self.staged.first() {
            let (from, to) = (self.dir.join(tmp), self.dir.join(name));
            if *replace {
                fs::rename(&from, &to)
                    .with_context(|| format!("pinning map {name} in {}", self.dir.display()))?;
            } else {
                match renameat2(CWD, &from, CWD, &to, RenameFlags::RENAME_NOREPLACE) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => bail!(
                        "{} was pinned by someone else while this load ran; it is left to \
                         them: load again to share it",
                        to.display()
                    ),
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("pinning map {name} in {}", self.dir.display())
                        })
                    }
                }
            }
            self.staged.remove(0);
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _, _) in &self.staged {
            // Best effort: an error is already on its way to the user.
            let _ = fs::remove_file(self.dir.join(tmp));
        }
        if self.created_dir && !self.committed {
            // Only if empty: pins renamed before a failure stay with their dir.
            if fs::remove_dir(&self.dir).is_ok() {
                let _ = bpffs::remove_parents(&self.dir, self.parents_made);
                let _ = bpffs::tidy_home(&self.dir);
            }
        }
    }
}

/// Remove the pins `names` from `dir`, then `dir` itself if that left it
/// empty. Returns the paths of the pins removed. A pin whose map a live
/// program other than `owners` uses stays, with a warning: the record that
/// names it may be older than whoever pinned there since (another
/// namespace's interface of the same name, another --pin-dir).
pub fn remove(dir: &Path, names: &[String], owners: &[u32]) -> Result<Vec<String>> {
    // Only pins, only there: the record could name anything by now (edited,
    // or the directory swapped for a symlink leading out of bpffs).
    let plain = |n: &String| {
        let mut parts = Path::new(n).components();
        matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None))
    };
    if let Some(bad) = names.iter().find(|n| !plain(n)) {
        bail!("refusing to remove {bad:?} from {}: not a pin name", dir.display());
    }
    if dir.exists() && !bpffs::on_bpffs(dir)? {
        bail!("{} is not on a BPF filesystem (anymore); its files are left alone", dir.display());
    }
    let present: Vec<&String> = names.iter().filter(|n| dir.join(n).exists()).collect();
    let in_use =
        if present.is_empty() { Vec::new() } else { used_by_others(dir, &present, owners)? };
    let mut removed = Vec::new();
    for name in present {
        let path = dir.join(name);
        if let Some((_, prog)) = in_use.iter().find(|(n, _)| n == name) {
            crate::output::say(&format!(
                "warning: {} stays: its map is used by program id {prog}, which xdpctl did not \
                 load here",
                crate::escape::path(&path)
            ));
            continue;
        }
        if remove_pin(&path)? {
            removed.push(path.display().to_string());
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {}
        // Not empty (someone else's pins), a mount point: fine.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOTEMPTY | nix::libc::EBUSY)) => {
            return Ok(removed)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing pin directory {}", dir.display()))
        }
    }
    bpffs::tidy_home(dir)?;
    Ok(removed)
}

/// Of the pins `names` in `dir`, those whose map a live program outside
/// `owners` uses, each with such a program's id.
pub fn used_by_others(dir: &Path, names: &[&String], owners: &[u32]) -> Result<Vec<(String, u32)>> {
    let mut maps = Vec::new();
    for name in names {
        let path = dir.join(name);
        match MapHandle::from_pinned_path(&path) {
            Ok(map) => {
                let id = map.info().with_context(|| format!("reading {}", path.display()))?.info.id;
                maps.push((name.to_string(), id));
            }
            // Gone meanwhile: nothing to keep.
            Err(_) if !path.exists() => {}
            Err(e) => return Err(e).with_context(|| format!("opening pin {}", path.display())),
        }
    }
    let ids: Vec<u32> = maps.iter().map(|(_, id)| *id).collect();
    let users = object::programs_using(&ids)?;
    Ok(maps
        .into_iter()
        .filter_map(|(name, id)| {
            users
                .iter()
                .find(|(prog, map)| *map == id && !owners.contains(prog))
                .map(|(p, _)| (name, *p))
        })
        .collect())
}

/// A pinned map that does not fit the object's map of that name: one the
/// object pins by name (and so would share), or one asked to be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub path: PathBuf,
    pub map: String,
    pub diffs: Vec<String>,
    pub by_name: bool,
}

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, map, diffs) = (self.path.display(), &self.map, self.diffs.join("; "));
        if self.by_name {
            write!(
                f,
                "{path} does not fit map {map}, which the object pins by name \
                 (LIBBPF_PIN_BY_NAME) and so would share: {diffs}; remove that pin if nothing \
                 uses it"
            )
        } else {
            write!(f, "the map pinned at {path} does not fit {map}: {diffs}")
        }
    }
}

/// Remove the pin at `path`; false if there was none.
fn remove_pin(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing pin {}", path.display())),
    }
}
