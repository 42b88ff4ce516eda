//! libxdp's multi-program dispatcher (`xdp-loader`, or any libxdp user): told
//! apart on an interface by what libxdp itself checks, and what libxdp's pinned
//! state says it runs. Taking the dispatcher off stops every program behind it,
//! so `load` and `unload` leave it to libxdp unless told otherwise. xdpctl never
//! changes libxdp's state: libxdp keeps it under its own lock, and
//! `xdp-loader clean` removes what a dispatcher taken off left behind.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::btf::types::{Array, DataSec, Ptr, Var};
use libbpf_rs::libbpf_sys::{self, BPF_F_RDONLY_PROG};
use libbpf_rs::{Btf, ErrorKind, MapCore, MapFlags, MapHandle, Program, ProgramHandle};
use serde::Serialize;

use crate::error::fact;
use crate::escape;
use crate::net::iface::Iface;
use crate::output::Output;
use crate::xdp::attach::Attachment;
use crate::xdp::record::Record;

// What follows is libxdp's, as of libxdp 1.3.1 (Debian 12; xdp-tools'
// headers/xdp/prog_dispatcher.h and lib/libxdp/libxdp.c), read to match, not
// shared with any BPF program of ours.

/// The dispatcher program's name.
pub const PROG_NAME: &str = "xdp_dispatcher";
/// XDP_DISPATCHER_MAGIC ('X' + 'D' + 'P'): the config's first byte from
/// version 2 on, followed by the version.
const MAGIC: u8 = 236;
/// Without the magic byte, the version is the length of the array that the
/// pointer `dispatcher_version` in section `xdp_metadata` points to (BTF).
const METADATA_SECTION: &str = "xdp_metadata";
const VERSION_VAR: &str = "dispatcher_version";
/// MAX_DISPATCHER_ACTIONS: program slots in a dispatcher.
const SLOTS: usize = 10;
/// XDP_DISPATCHER_RETVAL: the chain-call bit libxdp sets for itself.
const RETVAL_BIT: u32 = 31;
/// libxdp's state: `<bpffs>/xdp/dispatch-<ifindex>-<dispatcher id>/prog<N>-prog`
/// (and `prog<N>-link`, the freplace link).
const STATE_ROOT: &str = "/sys/fs/bpf/xdp";
/// A config larger than this is no dispatcher's (version 3 has 128 bytes).
const MAX_CONFIG: u32 = 4096;

/// Byte offsets in struct xdp_dispatcher_config of num_progs_enabled (u8),
/// chain_call_actions[10] and run_prios[10] (u32 each), and its least size.
struct Layout {
    num_progs: usize,
    chain: usize,
    prios: usize,
    size: usize,
}

fn layout(version: u32) -> Option<Layout> {
    match version {
        // { __u8 num_progs_enabled; __u32 chain_call_actions[10], run_prios[10]; }
        1 => Some(Layout { num_progs: 0, chain: 4, prios: 44, size: 84 }),
        // { __u8 magic, dispatcher_version, num_progs_enabled, is_xdp_frags;
        //   __u32 chain_call_actions[10], run_prios[10], program_flags[10]; },
        // to which version 3 (libxdp 1.4) appends __u8 is_xdp_devbound.
        2 | 3 => Some(Layout { num_progs: 2, chain: 4, prios: 44, size: 124 }),
        _ => None,
    }
}

/// libxdp's dispatcher on an interface.
#[derive(Debug, Clone, Serialize)]
pub struct Dispatcher {
    #[serde(skip)]
    pub prog_id: u32,
    /// The config's layout version.
    pub version: u32,
    /// Where libxdp pins its state for this dispatcher.
    pub state_dir: PathBuf,
    /// Whether that directory is there.
    pub state_pinned: bool,
    /// What it runs, by slot; None for a version xdpctl cannot read.
    pub programs: Option<Vec<Component>>,
}

/// One program behind the dispatcher.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// The slot (libxdp's `prog<N>`); lower priorities run first.
    pub slot: usize,
    pub priority: u32,
    /// The actions on which the next program runs.
    pub chain_call_actions: Vec<String>,
    /// The program pinned for the slot; None if libxdp's state has none.
    pub prog_id: Option<u32>,
    pub name: Option<String>,
}

/// Program `prog_id` on `ifindex`, if it is libxdp's dispatcher: named
/// xdp_dispatcher, with BTF and exactly one map, a one-entry config the
/// program can only read, whose version is one libxdp has written.
pub fn dispatcher(ifindex: u32, prog_id: u32) -> Result<Option<Dispatcher>> {
    let fd = match Program::fd_from_id(prog_id) {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening program id {prog_id}")),
    };
    let facts = prog_facts(fd.as_fd())?;
    if facts.name != PROG_NAME || facts.btf_id == 0 || facts.nr_maps != 1 {
        return Ok(None);
    }
    let Some(config) = config(facts.map_id)? else {
        return Ok(None);
    };
    let version = match config[..] {
        [MAGIC, version, ..] => u32::from(version),
        _ => match btf_version(prog_id)? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let state_dir = PathBuf::from(format!("{STATE_ROOT}/dispatch-{ifindex}-{prog_id}"));
    let state_pinned = match std::fs::metadata(&state_dir) {
        Ok(meta) => meta.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(e).with_context(|| format!("reading libxdp's {}", state_dir.display()))
        }
    };
    let programs = match layout(version) {
        Some(l) if config.len() >= l.size => Some(components(&config, &l, &state_dir)?),
        // A later libxdp's: its dispatcher still, with a config xdpctl cannot read.
        None if version > 3 => None,
        _ => return Ok(None),
    };
    Ok(Some(Dispatcher { prog_id, version, state_dir, state_pinned, programs }))
}

/// libxdp's dispatcher is what a command would replace or detach; `action`
/// ("replaces", "detaches") is what it would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherInUse {
    said: String,
    pub action: String,
}

impl fmt::Display for DispatcherInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.said)
    }
}

/// Refuse to replace or detach libxdp's dispatcher among `targets` unless
/// `forced`; a program `rec` says xdpctl loaded is xdpctl's, whatever it is.
/// `action` is "replaces" or "detaches". The dispatchers that will go.
pub fn refuse(
    dev: &Iface,
    targets: &[Attachment],
    rec: Option<&Record>,
    forced: bool,
    action: &str,
) -> Result<Vec<Dispatcher>> {
    let mut found = Vec::new();
    for att in targets {
        if rec.is_some_and(|r| r.prog_id == att.prog_id) {
            continue;
        }
        let Some(d) = dispatcher(dev.index, att.prog_id)? else { continue };
        if !forced {
            let name = escape::text(&dev.name);
            let state = if d.state_pinned {
                format!(" and leaves libxdp's state in {}", escape::path(&d.state_dir))
            } else {
                String::new()
            };
            let said = format!(
                "{name} runs libxdp's dispatcher ({PROG_NAME}, id {}, {} mode{}): taking it off \
                 stops every program behind it{state}; `xdp-loader unload --all {name}` hands \
                 the interface over",
                att.prog_id,
                att.mode,
                d.behind(),
            );
            let action = action.to_string();
            return Err(fact(DispatcherInUse { said, action }).into());
        }
        found.push(d);
    }
    Ok(found)
}

/// Say what taking `gone` off `dev` left behind.
pub fn report_left(gone: &[Dispatcher], dev: &Iface, out: Output) {
    let name = escape::text(&dev.name);
    for d in gone {
        let state = if d.state_pinned {
            format!(
                "libxdp's state in {} stays, libxdp's to remove: `xdp-loader clean {name}`",
                escape::path(&d.state_dir)
            )
        } else {
            "libxdp had no state pinned for it".to_string()
        };
        out.warn(&format!("note: took libxdp's dispatcher (id {}) off {name}; {state}", d.prog_id));
    }
}

impl Dispatcher {
    /// ", N programs behind it" where the config says.
    fn behind(&self) -> String {
        match &self.programs {
            Some(p) if p.len() == 1 => ", 1 program behind it".to_string(),
            Some(p) => format!(", {} programs behind it", p.len()),
            None => String::new(),
        }
    }

    /// Lines for `status`, below the dispatcher's row.
    pub fn lines(&self) -> Vec<String> {
        let dir = escape::path(&self.state_dir);
        let state = if self.state_pinned {
            format!("libxdp's state in {dir}")
        } else {
            format!("no libxdp state pinned in {dir}")
        };
        let Some(programs) = &self.programs else {
            return vec![format!(
                "  libxdp's dispatcher, version {} (newer than xdpctl reads); {state}",
                self.version
            )];
        };
        let mut lines = vec![format!(
            "  libxdp's dispatcher, version {}{}; {state}",
            self.version,
            self.behind()
        )];
        for c in programs {
            let prog = match (&c.name, c.prog_id) {
                (Some(name), Some(id)) => format!("{} (id {id})", escape::text(name)),
                _ => format!("? (no prog{}-prog pinned)", c.slot),
            };
            lines.push(format!(
                "   => prio {:<6} {prog}  chain-call actions: {}",
                c.priority,
                c.chain_call_actions.join(",")
            ));
        }
        lines
    }
}

/// What one bpf_prog_get_info_by_fd says of a program.
struct ProgFacts {
    name: String,
    btf_id: u32,
    nr_maps: u32,
    /// The first map's id, 0 if none.
    map_id: u32,
}

fn prog_facts(fd: BorrowedFd<'_>) -> Result<ProgFacts> {
    let mut map_id = 0u32;
    let mut info = libbpf_sys::bpf_prog_info {
        nr_map_ids: 1,
        map_ids: &mut map_id as *mut u32 as u64,
        ..Default::default()
    };
    let mut len = u32::try_from(std::mem::size_of_val(&info)).context("bpf_prog_info size")?;
    // SAFETY: `info` is a live bpf_prog_info of `len` bytes; the kernel writes
    // at most `nr_map_ids` (1) u32 to `map_ids`, which points at `map_id`.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret)).context("reading a program's info");
    }
    let name: Vec<u8> = info.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok(ProgFacts {
        name: String::from_utf8_lossy(&name).into_owned(),
        btf_id: info.btf_id,
        nr_maps: info.nr_map_ids,
        map_id,
    })
}

/// The config map's one value, if the map is shaped as libxdp's is.
fn config(map_id: u32) -> Result<Option<Vec<u8>>> {
    let map = match MapHandle::from_map_id(map_id) {
        Ok(map) => map,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening map id {map_id}")),
    };
    let info = map.info().with_context(|| format!("reading map id {map_id}"))?.info;
    if info.key_size != 4
        || !(2..=MAX_CONFIG).contains(&info.value_size)
        || info.max_entries != 1
        || info.map_flags & BPF_F_RDONLY_PROG == 0
    {
        return Ok(None);
    }
    map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .with_context(|| format!("reading the dispatcher's config (map id {map_id})"))
}

/// The version a config without the magic byte has, from the program's BTF.
fn btf_version(prog_id: u32) -> Result<Option<u32>> {
    let btf = match Btf::from_prog_id(prog_id) {
        Ok(btf) => btf,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading the BTF of program {prog_id}")),
    };
    let Some(sec) = btf.type_by_name::<DataSec<'_>>(METADATA_SECTION) else {
        return Ok(None);
    };
    for i in 0..sec.len() {
        let Some(var) = sec.get(i).and_then(|v| btf.type_by_id::<Var<'_>>(v.ty)) else {
            continue;
        };
        if var.name() != Some(OsStr::new(VERSION_VAR)) {
            continue;
        }
        let array = var
            .next_type()
            .and_then(|t| Ptr::try_from(t.skip_mods_and_typedefs()).ok())
            .and_then(|p| p.next_type())
            .and_then(|t| Array::try_from(t.skip_mods_and_typedefs()).ok());
        return Ok(array.and_then(|a| u32::try_from(a.capacity()).ok()));
    }
    Ok(None)
}

/// The enabled slots of `config`, each with the program libxdp pinned for it.
fn components(config: &[u8], l: &Layout, state_dir: &std::path::Path) -> Result<Vec<Component>> {
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&config[at..at + 4]);
        u32::from_ne_bytes(b)
    };
    let enabled = usize::from(config[l.num_progs]).min(SLOTS);
    let mut out = Vec::with_capacity(enabled);
    for slot in 0..enabled {
        let pin = state_dir.join(format!("prog{slot}-prog"));
        let (prog_id, name) = match ProgramHandle::from_pinned_path(&pin) {
            Ok(h) => (Some(h.id()), Some(h.name().to_string_lossy().into_owned())),
            Err(e) if e.kind() == ErrorKind::NotFound => (None, None),
            Err(e) => return Err(e).with_context(|| format!("reading libxdp's {}", pin.display())),
        };
        out.push(Component {
            slot,
            priority: word(l.prios + 4 * slot),
            chain_call_actions: actions(word(l.chain + 4 * slot) & !(1 << RETVAL_BIT)),
            prog_id,
            name,
        });
    }
    Ok(out)
}

/// The XDP actions set in a chain-call bitmap, by name.
fn actions(bits: u32) -> Vec<String> {
    (0..32)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| {
            crate::obj::skel::XDP_ACTION_NAMES
                .get(b)
                .map_or_else(|| format!("action {b}"), |n| n.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_call_bitmaps_name_their_actions() {
        assert_eq!(actions(1 << 2), ["XDP_PASS"]);
        assert_eq!(actions((1 << 1) | (1 << 4)), ["XDP_DROP", "XDP_REDIRECT"]);
        assert_eq!(actions(1 << 7), ["action 7"]);
        assert!(actions(0).is_empty());
    }

    #[test]
    fn configs_of_versions_1_and_2_read_alike() {
        let mut v2 = vec![0u8; 124];
        v2[..3].copy_from_slice(&[MAGIC, 2, 1]);
        v2[4..8].copy_from_slice(&((1u32 << 2) | (1 << RETVAL_BIT)).to_ne_bytes());
        v2[44..48].copy_from_slice(&42u32.to_ne_bytes());
        let mut v1 = vec![0u8; 84];
        v1[0] = 1;
        v1[4..8].copy_from_slice(&(1u32 << 2).to_ne_bytes());
        v1[44..48].copy_from_slice(&42u32.to_ne_bytes());
        let nowhere = std::path::Path::new("/nonexistent/xdpctl-test");
        for (config, version) in [(v2, 2), (v1, 1)] {
            let c = components(&config, &layout(version).unwrap(), nowhere).unwrap();
            assert_eq!(c.len(), 1, "version {version}");
            assert_eq!((c[0].priority, c[0].prog_id), (42, None));
            assert_eq!(c[0].chain_call_actions, ["XDP_PASS"]);
        }
    }
}
