//! BPF objects `load` works on: a shipped skeleton or a user's ELF file. Picks one
//! program by name so that only that program is loaded.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{libbpf_sys, Object, ObjectBuilder, OpenObject, ProgramType};

use crate::error::fact;
use crate::obj::catalog::ObjectFile;
use crate::obj::listing;
use crate::obj::skel::xdp_prog::{OpenXdpProgKernSkel, XdpProgKernSkel, XdpProgKernSkelBuilder};

/// ELF e_machine of BPF objects.
const EM_BPF: u16 = 247;

/// What is wrong with an object, or with the program asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjProblem {
    CannotOpen(PathBuf),
    NotElf(PathBuf),
    NotBpf(PathBuf, u16),
    LibbpfRefused(PathBuf),
    /// `have`: every program it has, with its type.
    NoXdp {
        origin: String,
        have: Vec<String>,
    },
    SeveralXdp {
        origin: String,
        names: Vec<String>,
    },
    SeveralInSection {
        origin: String,
        section: String,
        names: Vec<String>,
    },
}

impl fmt::Display for ObjProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjProblem::CannotOpen(p) => {
                write!(f, "{}: cannot open it (does the file exist?)", p.display())
            }
            ObjProblem::NotElf(p) => write!(f, "{} is not an ELF file", p.display()),
            ObjProblem::NotBpf(p, machine) => {
                write!(f, "{} is an ELF file for machine {machine}, not BPF", p.display())
            }
            ObjProblem::LibbpfRefused(p) => write!(f, "{}: libbpf cannot open it", p.display()),
            ObjProblem::NoXdp { origin, have } if have.is_empty() => {
                write!(f, "{origin} has no XDP program")
            }
            ObjProblem::NoXdp { origin, have } => {
                write!(f, "{origin} has no XDP program (it has: {})", have.join(", "))
            }
            ObjProblem::SeveralXdp { origin, names } => {
                write!(f, "{origin} has {} XDP programs: {}", names.len(), names.join(", "))
            }
            ObjProblem::SeveralInSection { origin, section, names } => write!(
                f,
                "{} programs in {origin} are in section {section:?}: {}",
                names.len(),
                names.join(", ")
            ),
        }
    }
}

/// Where the object comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Shipped(ObjectFile),
    File(PathBuf),
}

impl Source {
    /// How to name the object in messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Shipped(o) => o.name().to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// An opened, not yet loaded object.
pub enum Opened<'obj> {
    XdpProgKern(Box<OpenXdpProgKernSkel<'obj>>),
    File(OpenObject),
}

/// A loaded object; dropping it closes our fds (attachments and pins stay).
pub enum Loaded<'obj> {
    XdpProgKern(Box<XdpProgKernSkel<'obj>>),
    File(Object),
}

impl<'obj> Opened<'obj> {
    /// Open `source`; shipped skeletons keep their object in `storage`.
    /// Maps a file pins by name (LIBBPF_PIN_BY_NAME) get their pin path in
    /// `pin_root`, the interface's pin directory, as `xdp-loader --pin-path`
    /// does; `pins::reuse` takes it from there.
    pub fn open(
        source: &Source,
        storage: &'obj mut MaybeUninit<OpenObject>,
        pin_root: &Path,
    ) -> Result<Self> {
        match source {
            Source::Shipped(ObjectFile::XdpProgKern) => {
                let skel = XdpProgKernSkelBuilder::default()
                    .open(storage)
                    .context("opening the shipped xdp_prog_kern object")?;
                Ok(Opened::XdpProgKern(Box::new(skel)))
            }
            Source::File(path) => {
                check_bpf_elf(path)?;
                let obj = ObjectBuilder::default()
                    .pin_root_path(pin_root)
                    .with_context(|| format!("pin directory {}", pin_root.display()))?
                    .open_file(path)
                    .with_context(|| fact(ObjProblem::LibbpfRefused(path.clone())))?;
                Ok(Opened::File(obj))
            }
        }
    }

    pub fn object_mut(&mut self) -> &mut OpenObject {
        match self {
            Opened::XdpProgKern(s) => s.open_object_mut(),
            Opened::File(o) => o,
        }
    }

    pub fn load(self) -> libbpf_rs::Result<Loaded<'obj>> {
        Ok(match self {
            Opened::XdpProgKern(s) => Loaded::XdpProgKern(Box::new(s.load()?)),
            Opened::File(o) => Loaded::File(o.load()?),
        })
    }
}

impl Loaded<'_> {
    pub fn object(&self) -> &Object {
        match self {
            Loaded::XdpProgKern(s) => s.object(),
            Loaded::File(o) => o,
        }
    }

    pub fn object_mut(&mut self) -> &mut Object {
        match self {
            Loaded::XdpProgKern(s) => s.object_mut(),
            Loaded::File(o) => o,
        }
    }
}

/// The name of the one XDP program in `obj`, for a load that names none;
/// several are refused with their names. A program in an old custom
/// section (no type in libbpf 1.x) counts: it can only be loaded as XDP.
pub fn sole_xdp(obj: &OpenObject, origin: &str) -> Result<String> {
    let xdp: Vec<String> = obj
        .progs()
        .filter(|p| matches!(p.prog_type(), ProgramType::Xdp | ProgramType::Unspec))
        .map(|p| p.name().to_string_lossy().into_owned())
        .collect();
    match xdp.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let have: Vec<String> = obj
                .progs()
                .map(|p| format!("{} ({:?})", p.name().to_string_lossy(), p.prog_type()))
                .collect();
            Err(fact(ObjProblem::NoXdp { origin: origin.to_string(), have }).into())
        }
        several => Err(fact(ObjProblem::SeveralXdp {
            origin: origin.to_string(),
            names: several.to_vec(),
        })
        .into()),
    }
}

/// Leave only the program called `wanted` to be loaded and return its name.
/// Accepts the function name, the tutorial's `<name>_func` spelling either way,
/// or a (legacy) section name that only one program has; `origin` names the
/// object in errors.
pub fn select(obj: &mut OpenObject, wanted: &str, origin: &str) -> Result<String> {
    let progs: Vec<(String, String)> = obj
        .progs()
        .map(|p| {
            (p.name().to_string_lossy().into_owned(), p.section().to_string_lossy().into_owned())
        })
        .collect();
    let short = wanted.strip_suffix("_func").unwrap_or(wanted);
    let by_name = progs.iter().position(|(name, _)| name == wanted).or_else(|| {
        progs
            .iter()
            .position(|(name, _)| name == short || name.strip_suffix("_func") == Some(short))
    });
    let in_section: Vec<usize> = (0..progs.len()).filter(|&i| progs[i].1 == wanted).collect();
    let idx = match (by_name, in_section.as_slice()) {
        (Some(idx), _) | (None, &[idx]) => idx,
        (None, []) => {
            let have: Vec<&str> = progs.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "no program {wanted:?} in {origin}; it has: {}",
                if have.is_empty() { "no programs".to_string() } else { have.join(", ") }
            );
        }
        // Never the first of several silently.
        (None, several) => {
            let names = several.iter().map(|&i| progs[i].0.clone()).collect();
            let (origin, section) = (origin.to_string(), wanted.to_string());
            return Err(fact(ObjProblem::SeveralInSection { origin, section, names }).into());
        }
    };
    for (i, mut prog) in obj.progs_mut().enumerate() {
        if i != idx {
            prog.set_autoload(false);
            continue;
        }
        // libbpf 1.x gives old custom section names (SEC("xdp_pass")) no type.
        if prog.prog_type() == ProgramType::Unspec {
            prog.set_prog_type(ProgramType::Xdp);
        }
        if prog.prog_type() != ProgramType::Xdp {
            bail!(
                "program {} in {origin} is not an XDP program (type {:?}); pick an XDP program",
                progs[idx].0,
                prog.prog_type()
            );
        }
    }
    Ok(progs[idx].0.clone())
}

/// Create only the maps in `keep`; the rest serve programs that are not being
/// loaded. An entry starting with '.' names an internal map by its section
/// (`.rodata`, which libbpf calls `<object>.rodata`).
pub fn keep_maps(obj: &mut OpenObject, keep: &[&str]) -> Result<()> {
    for mut map in obj.maps_mut() {
        let name = map.name().to_string_lossy().into_owned();
        let kept = keep.iter().any(|k| *k == name || (k.starts_with('.') && name.ends_with(k)));
        if !kept {
            map.set_autocreate(false).with_context(|| format!("leaving map {name} out"))?;
        }
    }
    Ok(())
}

/// Ids of the maps the kernel says the loaded program `prog` uses.
pub fn maps_used_by(prog: BorrowedFd<'_>) -> Result<Vec<u32>> {
    // First ask how many, then fetch exactly that many ids.
    // The kernel allows a program 64 maps today; bound it whatever it says.
    let count = prog_info(prog, &mut [])?.min(4096);
    let mut ids = vec![0u32; count];
    let now = prog_info(prog, &mut ids)?;
    ids.truncate(now.min(count));
    Ok(ids)
}

/// Every live program that uses one of `maps`, as (program id, map id).
/// Asking for other programs needs CAP_SYS_ADMIN; without it this fails
/// rather than answer "none".
pub fn programs_using(maps: &[u32]) -> Result<Vec<(u32, u32)>> {
    if maps.is_empty() {
        return Ok(Vec::new());
    }
    let progs = listing::programs_with_maps("listing BPF programs (needs CAP_SYS_ADMIN)")?;
    Ok(progs
        .into_iter()
        .flat_map(|p| p.map_ids.into_iter().filter(|m| maps.contains(m)).map(move |m| (p.id, m)))
        .collect())
}

/// bpf_prog_get_info_by_fd filling `ids` with map ids; returns how many the
/// program has.
fn prog_info(prog: BorrowedFd<'_>, ids: &mut [u32]) -> Result<usize> {
    let mut info = libbpf_sys::bpf_prog_info {
        nr_map_ids: u32::try_from(ids.len()).context("too many map ids")?,
        map_ids: ids.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut len = u32::try_from(std::mem::size_of_val(&info)).context("bpf_prog_info size")?;
    // SAFETY: `info` is a live bpf_prog_info of `len` bytes; the kernel writes
    // at most `nr_map_ids` u32s to `map_ids`, which points at `ids`, that long.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret))
            .context("reading the program's info (bpf_prog_get_info_by_fd)");
    }
    Ok(info.nr_map_ids as usize)
}

/// Refuse files that are missing or are not BPF ELF objects, before libbpf
/// prints its own less helpful complaints.
fn check_bpf_elf(path: &Path) -> Result<()> {
    let problem = |p: ObjProblem| anyhow::Error::new(fact(p));
    let mut file =
        File::open(path).with_context(|| fact(ObjProblem::CannotOpen(path.to_path_buf())))?;
    let mut header = [0u8; 20];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"\x7fELF" {
        return Err(problem(ObjProblem::NotElf(path.to_path_buf())));
    }
    let machine = match header[5] {
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => u16::from_le_bytes([header[18], header[19]]),
    };
    if machine != EM_BPF {
        return Err(problem(ObjProblem::NotBpf(path.to_path_buf(), machine)));
    }
    Ok(())
}
