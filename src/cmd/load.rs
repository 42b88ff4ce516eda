//! `xdpctl load`: load one program, attach it so that it outlives xdpctl, and pin
//! its maps for the interface (basic01-04).

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::Program;
use serde::Serialize;

use crate::bpffs;
use crate::catalog;
use crate::cmd::prog_name;
use crate::error::Exit;
use crate::iface::{self, Iface};
use crate::logging;
use crate::object::{self, Opened, Source};
use crate::output::Output;
use crate::pins;
use crate::record::{self, Record};
use crate::xdp::{self, Attachment, Mode, ModeRequest};

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("modes").multiple(false))]
pub struct Args {
    /// Interface to attach to
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Program to load: its short name (xdp_pass) or the tutorial's (xdp_pass_func)
    #[arg(long, visible_alias = "progsec", value_name = "NAME")]
    pub progname: Option<String>,
    /// Load from your own BPF object file instead of the shipped programs
    #[arg(long, value_name = "FILE")]
    pub obj: Option<PathBuf>,
    /// Attach mode [default: native]
    #[arg(long, value_enum, group = "modes")]
    pub mode: Option<ModeRequest>,
    /// Attach in native (driver) mode
    #[arg(short = 'N', long, group = "modes")]
    pub native_mode: bool,
    /// Attach in generic (skb) mode
    #[arg(short = 'S', long, group = "modes")]
    pub skb_mode: bool,
    /// Let the kernel pick the mode
    #[arg(short = 'A', long, group = "modes")]
    pub auto_mode: bool,
    /// Replace a program already attached to the interface
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Reuse the maps pinned for the interface, so counters survive the swap
    #[arg(short = 'M', long)]
    pub reuse_maps: bool,
    /// Pin maps here instead of /sys/fs/bpf/<IF>
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
}

impl Args {
    fn mode(&self) -> Option<Mode> {
        let request = if self.skb_mode {
            ModeRequest::Skb
        } else if self.auto_mode {
            ModeRequest::Auto
        } else if self.native_mode {
            ModeRequest::Native
        } else {
            self.mode.unwrap_or(ModeRequest::Native)
        };
        request.fixed()
    }
}

#[derive(Serialize)]
struct Loaded<'a> {
    ifname: &'a str,
    ifindex: u32,
    prog_id: u32,
    prog_name: &'a str,
    mode: Mode,
    object: String,
    pin_dir: &'a PathBuf,
    maps: &'a [String],
    replaced: Vec<u32>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // Everything the user typed is checked before anything is loaded.
    let dev = iface::resolve(&args.dev)?;
    let (source, wanted) = match &args.obj {
        Some(path) => {
            let name = args.progname.as_deref().unwrap_or(catalog::DEFAULT);
            (Source::File(path.clone()), name.to_string())
        }
        None => {
            let prog = catalog::find(args.progname.as_deref().unwrap_or(catalog::DEFAULT))?;
            (Source::Shipped(prog.object), prog.name.to_string())
        }
    };
    bpffs::ensure_mounted()?;
    let pin_dir = match &args.pin_dir {
        Some(dir) => {
            bpffs::check_pin_dir(dir)?;
            dir.clone()
        }
        None => bpffs::default_pin_dir(&dev.name),
    };
    let current = xdp::query(dev.index)?;
    if let (false, Some(att)) = (args.force, current.first()) {
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode); \
             use --force to replace it, or `xdpctl unload --dev {0}` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    let previous = record::read(&dev)?;

    let mut storage = MaybeUninit::uninit();
    let mut opened = Opened::open(&source, &mut storage)?;
    let origin = source.describe();
    let prog_name = object::select(opened.object_mut(), &wanted, &origin)?;
    let reused =
        if args.reuse_maps { pins::reuse(opened.object_mut(), &pin_dir)? } else { Vec::new() };
    logging::clear();
    let mut loaded = opened.load().map_err(|e| load_error(e, &prog_name, &origin))?;

    let (prog_fd, prog_id) = {
        let prog = loaded
            .object()
            .progs()
            .find(|p| p.name() == prog_name.as_str())
            .ok_or_else(|| anyhow!("program {prog_name} vanished from {origin} after load"))?;
        let fd = prog.as_fd().try_clone_to_owned().context("duplicating the program fd")?;
        let id = Program::id_from_fd(prog.as_fd()).context("reading the program id")?;
        (fd, id)
    };
    let (attach_mode, undo) = attach_over(&dev, prog_fd.as_fd(), args.mode(), &current)
        .with_context(|| Exit::attach(format!("loading {prog_name} on {}", dev.name)))?;

    let settled = (|| -> Result<(Mode, Vec<String>)> {
        // A fixed mode is where the kernel put it; only `auto` needs asking
        // (a netlink dump the common path skips).
        let mode = match attach_mode {
            Some(mode) => mode,
            None => xdp::query(dev.index)?
                .into_iter()
                .find(|a| a.prog_id == prog_id)
                .map(|a| a.mode)
                .ok_or_else(|| {
                    anyhow!("program {prog_id} is not attached to {} after attach", dev.name)
                })?,
        };
        let maps = pins::pin_maps(loaded.object_mut(), &pin_dir, &reused)?;
        Ok((mode, maps))
    })();
    let (mode, mut maps) = match settled {
        Ok(v) => v,
        Err(e) => {
            if let Err(undo_err) = undo.run(&dev, prog_id) {
                eprintln!("xdpctl: could not restore {}: {undo_err:#}", dev.name);
            }
            return Err(e);
        }
    };

    // Pins left by the program this one replaced: stale unless they were reused,
    // or kept for a later swap back under --reuse-maps.
    if let Some(prev) = previous {
        let (keep, stale): (Vec<String>, Vec<String>) = if prev.pin_dir == pin_dir {
            prev.pins.into_iter().filter(|p| !maps.contains(p)).partition(|_| args.reuse_maps)
        } else {
            (Vec::new(), prev.pins)
        };
        pins::remove(&prev.pin_dir, &stale)?;
        maps.extend(keep);
    }
    record::write(
        &dev,
        &Record {
            ifname: dev.name.clone(),
            prog_id,
            prog_name: prog_name.clone(),
            pin_dir: pin_dir.clone(),
            pins: maps.clone(),
        },
    )?;

    let replaced: Vec<u32> = undo.replaced.iter().map(|(a, _)| a.prog_id).collect();
    if out.json {
        return out.json(&Loaded {
            ifname: &dev.name,
            ifindex: dev.index,
            prog_id,
            prog_name: &prog_name,
            mode,
            object: origin,
            pin_dir: &pin_dir,
            maps: &maps,
            replaced,
        });
    }
    out.info(format!(
        "Loaded {prog_name} from {origin}: program id {prog_id} attached to {} (ifindex {}) in {mode} mode",
        dev.name, dev.index
    ));
    for (att, _) in &undo.replaced {
        out.info(format!(" - replaced program id {} ({} mode)", att.prog_id, att.mode));
    }
    let reuse_note =
        if reused.is_empty() { String::new() } else { format!(" (reused: {})", reused.join(", ")) };
    out.info(format!(" - pinned maps in {}: {}{reuse_note}", pin_dir.display(), maps.join(", ")));
    Ok(())
}

fn load_error(err: libbpf_rs::Error, prog: &str, origin: &str) -> anyhow::Error {
    let tail = logging::verifier_tail(20);
    if !logging::verbose() {
        for line in &tail {
            eprintln!("  {line}");
        }
    }
    let what = if tail.is_empty() {
        format!("loading program {prog} from {origin} failed (-v shows libbpf's log)")
    } else {
        format!("the kernel refused program {prog} from {origin}; the end of its log is above (-v shows all)")
    };
    anyhow::Error::new(err).context(Exit::load(what))
}

/// What attach_over changed, so a later failure can put it back.
struct Undo {
    /// Programs taken off the interface, with an fd that keeps each alive.
    replaced: Vec<(Attachment, OwnedFd)>,
}

impl Undo {
    /// Take the new program off and put back what it replaced.
    fn run(&self, dev: &Iface, new_id: u32) -> Result<()> {
        for att in xdp::query(dev.index)?.into_iter().filter(|a| a.prog_id == new_id) {
            xdp::detach(dev, att)?;
        }
        for (att, fd) in &self.replaced {
            xdp::attach(dev, fd.as_fd(), Some(att.mode), None)?;
        }
        Ok(())
    }
}

/// Attach `prog` in `mode`, replacing what `current` lists (the caller checked
/// --force). A program in the same mode is swapped atomically; one in the other
/// of native/skb (which cannot coexist) is detached first and put back if the
/// attach fails. `auto` keeps the mode of a program it replaces. Returns the
/// mode asked of the kernel (None: it chose) and how to undo.
fn attach_over(
    dev: &Iface,
    prog: BorrowedFd<'_>,
    mode: Option<Mode>,
    current: &[Attachment],
) -> Result<(Option<Mode>, Undo)> {
    let mode = mode.or_else(|| current.first().map(|a| a.mode));
    let mut undo = Undo { replaced: Vec::new() };
    let mut same = None;
    for att in current {
        let fd = Program::fd_from_id(att.prog_id)
            .with_context(|| format!("opening attached program id {}", att.prog_id))?;
        if Some(att.mode) == mode {
            same = Some(undo.replaced.len());
        } else if att.mode == Mode::Hw || mode == Some(Mode::Hw) {
            // Offloaded programs coexist with either other mode.
            continue;
        } else {
            xdp::detach(dev, *att)?;
        }
        undo.replaced.push((*att, fd));
    }
    let old = same.map(|i| undo.replaced[i].1.as_fd());
    if let Err(e) = xdp::attach(dev, prog, mode, old) {
        for (att, fd) in undo.replaced.iter().filter(|(a, _)| Some(a.mode) != mode) {
            if let Err(re) = xdp::attach(dev, fd.as_fd(), Some(att.mode), None) {
                eprintln!("xdpctl: could not re-attach program id {}: {re:#}", att.prog_id);
            }
        }
        return Err(e);
    }
    Ok((mode, undo))
}
