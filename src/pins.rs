//! Map pins in a bpffs directory: which maps `load` reuses, pins and replaces,
//! and which `unload` removes.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapHandle, Object, OpenObject};

/// The file a map is pinned as. libbpf's internal maps (`obj.rodata`) carry a
/// '.', which bpffs refuses.
pub fn pin_name(map_name: &str) -> String {
    map_name.replace('.', "_")
}

/// Before load: point each of the object's own maps that has a pin in `dir` at
/// the pinned map, so counters survive a program swap. Refuses a pin whose
/// layout differs. Returns the pin names reused.
pub fn reuse(obj: &mut OpenObject, dir: &Path) -> Result<Vec<String>> {
    let mut reused = Vec::new();
    for mut map in obj.maps_mut() {
        let name = map.name().to_string_lossy().into_owned();
        // Internal maps hold this object's globals; another object's are no use.
        if name.contains('.') {
            continue;
        }
        let path = dir.join(pin_name(&name));
        if !path.exists() {
            continue;
        }
        let pinned = MapHandle::from_pinned_path(&path)
            .with_context(|| format!("opening pinned map {}", path.display()))?;
        let want = (map.map_type(), map.key_size(), map.value_size(), map.max_entries());
        let have =
            (pinned.map_type(), pinned.key_size(), pinned.value_size(), pinned.max_entries());
        if want != have {
            bail!(
                "--reuse-maps: the map pinned at {} ({:?}, key {} B, value {} B, {} entries) \
                 does not fit {name} ({:?}, key {} B, value {} B, {} entries); \
                 load without --reuse-maps to start fresh",
                path.display(),
                have.0,
                have.1,
                have.2,
                have.3,
                want.0,
                want.1,
                want.2,
                want.3
            );
        }
        map.reuse_fd(pinned.as_fd())
            .with_context(|| format!("reusing pinned map {}", path.display()))?;
        reused.push(pin_name(&name));
    }
    Ok(reused)
}

/// After attach: pin every map of `obj` in `dir` except those `reused` (already
/// pinned there), replacing stale pins of the same name. Returns every pin of
/// the object in `dir`; on failure removes the pins it made.
pub fn pin_maps(obj: &mut Object, dir: &Path, reused: &[String]) -> Result<Vec<String>> {
    fs::create_dir_all(dir).with_context(|| format!("creating pin directory {}", dir.display()))?;
    let mut all = Vec::new();
    let mut made = Vec::new();
    let result = (|| -> Result<()> {
        for mut map in obj.maps_mut() {
            if !map.autocreate() {
                continue;
            }
            let name = pin_name(&map.name().to_string_lossy());
            if !reused.contains(&name) {
                let path = dir.join(&name);
                remove_pin(&path)?;
                map.pin(&path).with_context(|| format!("pinning map at {}", path.display()))?;
                made.push(name.clone());
            }
            all.push(name);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(all),
        Err(e) => {
            // Best effort: the error already says what went wrong.
            let _ = remove(dir, &made);
            Err(e)
        }
    }
}

/// Remove the pins `names` from `dir`, then `dir` itself if that left it empty.
pub fn remove(dir: &Path, names: &[String]) -> Result<()> {
    for name in names {
        remove_pin(&dir.join(name))?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        // Not empty (someone else's pins) or already gone: both fine.
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENOTEMPTY)) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing pin directory {}", dir.display())),
    }
}

fn remove_pin(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing pin {}", path.display())),
    }
}
