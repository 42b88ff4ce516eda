//! `xdpctl unload`: detach in whatever mode the program runs, confirm with the
//! kernel, and remove the pins xdpctl made for the interface.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::escape;
use crate::net::iface::{self, Iface};
use crate::output::Output;
use crate::stop;
use crate::xdp::attach::{self, Mode};
use crate::xdp::bpffs;
use crate::xdp::ifstate::{prog_name, IfState};
use crate::xdp::leftovers::{self, Leftover};
use crate::xdp::libxdp;
use crate::xdp::lock::Lock;
use crate::xdp::pins;
use crate::xdp::record;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to detach from
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Only detach the program with this id
    #[arg(long, value_name = "ID")]
    pub id: Option<u32>,
    /// Also detach a program xdpctl did not load (another tool's)
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Detach even libxdp's dispatcher, stopping the programs behind it (implies --force)
    #[arg(long)]
    pub force_dispatcher: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detached {
    pub prog_id: u32,
    pub prog_name: String,
    pub mode: Mode,
}

#[derive(Serialize)]
struct Report<'a> {
    ifname: &'a str,
    detached: Vec<Detached>,
    removed_pins: Vec<String>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    let dev = match iface::resolve(&args.dev) {
        Ok(dev) => dev,
        Err(e) => {
            // Renamed: its program and pins are to be reached by the new name.
            if let Some(r) = leftovers::renamed(Some(&args.dev))?.first() {
                bail!(
                    "--dev {}: no such interface here: {}; `xdpctl unload --dev {}` detaches it",
                    args.dev,
                    r.describe(),
                    r.now
                );
            }
            // Gone, but it left pins: clearing them is what is left to do.
            match leftovers::find(Some(&args.dev))? {
                left if left.is_empty() => return Err(e),
                left => return clear_leftovers(&left, out, &args.dev),
            }
        }
    };
    let Unloaded { detached, removed_pins } =
        step(&dev, args.id, args.force, args.force_dispatcher, out)?;
    if out.json {
        return out.json(&Report { ifname: &dev.name, detached, removed_pins });
    }
    if detached.is_empty() {
        out.info(format!("No XDP program attached to {}", escape::text(&dev.name)));
    }
    for d in &detached {
        out.info(format!(
            "Detached {} (id {}, {} mode) from {}",
            escape::text(&d.prog_name),
            d.prog_id,
            d.mode,
            escape::text(&dev.name)
        ));
    }
    if !removed_pins.is_empty() {
        out.info(format!(" - removed pins: {}", escape::text(&removed_pins.join(", "))));
    }
    Ok(())
}

/// What an unload did.
#[derive(Debug, Clone, Serialize)]
pub struct Unloaded {
    pub detached: Vec<Detached>,
    pub removed_pins: Vec<String>,
}

/// Detach `dev`'s programs (only `id` if given) and remove the pins and the
/// record xdpctl made for them, under the interface's lock; another tool's
/// program only with `force`. Signals are held off from the first change on.
pub fn step(
    dev: &Iface,
    id: Option<u32>,
    force: bool,
    force_dispatcher: bool,
    out: Output,
) -> Result<Unloaded> {
    let _lock = Lock::interface(dev)?;
    for note in leftovers::prune_dead_namespaces()? {
        out.warn(&note);
    }
    let state = IfState::read(dev)?;
    let targets = state.targets(id);
    if let (Some(id), true, false) = (id, targets.is_empty(), state.attached.is_empty()) {
        let have: Vec<String> = state
            .attached
            .iter()
            .map(|a| format!("{} (id {}, {} mode)", prog_name(a.prog_id), a.prog_id, a.mode))
            .collect();
        bail!("--id {id}: no such program on {}; attached there: {}", dev.name, have.join(", "));
    }

    let _pin_lock = state.rec.as_ref().map(|r| Lock::pin_dir(&r.pin_dir)).transpose()?;
    let dispatchers =
        libxdp::refuse(dev, &targets, state.rec.as_ref(), force_dispatcher, "detaches")?;
    for att in &targets {
        state.refuse_if_link_held(*att)?;
        if !force && !force_dispatcher && !state.is_ours(*att)? {
            bail!(
                "{}: {} (id {}, {} mode) was not loaded by xdpctl; use --force to detach \
                 another tool's program",
                dev.name,
                prog_name(att.prog_id),
                att.prog_id,
                att.mode
            );
        }
    }
    // Detach, pins and record go together: no signal stops them halfway.
    stop::defer_signals()?;
    let mut detached = Vec::new();
    for att in &targets {
        let name = state.name_of(att.prog_id);
        attach::detach(dev, *att)?;
        detached.push(Detached { prog_id: att.prog_id, prog_name: name, mode: att.mode });
    }
    let left = attach::query(dev.index)?;
    if let Some(still) = left.iter().find(|a| targets.contains(a)) {
        bail!(
            "program id {} is still attached to {} ({} mode) after detaching it",
            still.prog_id,
            dev.name,
            still.mode
        );
    }

    libxdp::report_left(&dispatchers, dev, out);

    // Our pins go once the program they served is gone, or when nothing is
    // left; the programs just detached may still hold their maps a moment.
    let mut owners: Vec<u32> = detached.iter().map(|d| d.prog_id).collect();
    owners.extend(state.rec.as_ref().map(|r| r.prog_id));
    let mut removed_pins = Vec::new();
    match &state.rec {
        Some(rec) if left.is_empty() || targets.iter().any(|a| a.prog_id == rec.prog_id) => {
            // The record goes even if a pin will not: a record that can never
            // be cleared would fail every later unload.
            let removed = pins::remove(&rec.pin_dir, &rec.pins, &owners);
            record::remove(dev)?;
            removed_pins = removed?;
            // The directories load made above a nested --pin-dir, once empty.
            if !rec.pin_dir.exists() {
                bpffs::remove_parents(&rec.pin_dir, rec.parents_made)?;
            }
        }
        Some(_) => {}
        // A load killed before its record was complete may have left a
        // half-written one.
        None => record::remove_half_written(dev)?,
    }

    // A killed load's staged pins go once no program here uses them.
    for k in &state.killed {
        let mut held = false;
        for a in &left {
            held |= k.holds(a.prog_id)?;
        }
        if !held {
            removed_pins.extend(pins::remove(&k.dir, &k.pins, &owners)?);
        }
    }
    // A load killed between making its pin directory and pinning left it
    // empty; with nothing in it, it is no one's.
    if left.is_empty() {
        pins::remove(&bpffs::default_pin_dir(&dev.name)?, &[], &[])?;
    }

    // An earlier interface of this name (deleted, its index gone) may have
    // left pins: those go too; this interface's own are not among them.
    let left: Vec<_> = leftovers::deleted(&dev.name)?;
    removed_pins.extend(clear(&left, out)?);

    Ok(Unloaded { detached, removed_pins })
}

/// Clear `left`, saying so; the pins removed.
fn clear(left: &[Leftover], out: Output) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for l in left {
        removed.extend(leftovers::clear(l)?);
        out.info(format!("Removed leftovers: {}", l.describe()));
    }
    Ok(removed)
}

/// `unload` of a name no interface has any more: clear what it left.
fn clear_leftovers(left: &[Leftover], out: Output, name: &str) -> Result<()> {
    stop::defer_signals()?;
    let removed_pins = clear(left, out)?;
    if out.json {
        return out.json(&Report { ifname: name, detached: Vec::new(), removed_pins });
    }
    out.info(format!("No interface {} here any more; nothing to detach", escape::text(name)));
    Ok(())
}
