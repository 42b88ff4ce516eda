//! `xdpctl load`: load one program, attach it so that it outlives xdpctl, and pin
//! its maps for the interface (basic01-04).

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use libbpf_rs::OpenObject;
use serde::Serialize;

use crate::cmd::{advice, unload};
use crate::error::Exit;
use crate::escape;
use crate::net::iface::{self, Iface};
use crate::net::netlink;
use crate::obj::catalog;
use crate::obj::logging;
use crate::obj::object::{self, Opened, Source};
use crate::output::{self, Output};
use crate::stop;
use crate::xdp::attach::{self, Attachment, Mode, ModeRequest};
use crate::xdp::bpffs;
use crate::xdp::ifstate::{self, prog_name, IfState};
use crate::xdp::leftovers;
use crate::xdp::libxdp;
use crate::xdp::lock::Lock;
use crate::xdp::offload;
use crate::xdp::pins;
use crate::xdp::record::{self, Key, Record};
use crate::xdp::swap::Swap;

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("modes").multiple(false))]
pub struct Args {
    /// Interface to attach to
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Program to load: its short name (xdp_pass) or the tutorial's (xdp_pass_func);
    /// `xdpctl list` shows them
    #[arg(long, visible_alias = "progsec", value_name = "NAME", value_parser = ProgName,
          hide_possible_values = true)]
    pub progname: Option<String>,
    /// Load from your own BPF object file instead of the shipped programs
    /// (its only XDP program, unless --progname names one)
    #[arg(long, alias = "filename", value_name = "FILE")]
    pub obj: Option<PathBuf>,
    /// Attach mode [default: auto: native where the driver has XDP, else skb;
    /// a replacement keeps the mode of the program it replaces]
    #[arg(long, value_enum, group = "modes")]
    pub mode: Option<ModeRequest>,
    /// Attach in native (driver) mode
    #[arg(short = 'N', long, group = "modes")]
    pub native_mode: bool,
    /// Attach in generic (skb) mode
    #[arg(short = 'S', long, group = "modes")]
    pub skb_mode: bool,
    /// Let the kernel pick the mode (the default)
    #[arg(short = 'A', long, group = "modes")]
    pub auto_mode: bool,
    /// The tutorial's --mode hw
    #[arg(long, group = "modes", hide = true)]
    pub offload_mode: bool,
    /// The tutorial's unload: `xdpctl unload --dev IF [--id ID]`, then exit
    #[arg(short = 'U', long, value_name = "ID", num_args = 0..=1, hide = true)]
    pub unload: Option<Option<u32>>,
    /// Replace a program already attached to the interface
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Replace even libxdp's dispatcher, stopping the programs behind it (implies --force)
    #[arg(long)]
    pub force_dispatcher: bool,
    /// Reuse the maps pinned for the interface (where its program has them), so
    /// counters survive the swap
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
        } else if self.offload_mode {
            ModeRequest::Hw
        } else {
            self.mode.unwrap_or(ModeRequest::DEFAULT)
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
    object: &'a str,
    pin_dir: &'a PathBuf,
    maps: &'a [String],
    replaced: Vec<u32>,
    /// Maps pinned by name that were already pinned there: shared.
    shared: &'a [String],
}

/// Which program to load: a shipped one, or one of an object file.
#[derive(Debug, Clone)]
pub struct Program {
    pub source: Source,
    /// None: the object's only XDP program.
    pub name: Option<String>,
    /// The maps a shipped program uses: the only ones created.
    pub maps: Option<&'static [&'static str]>,
    /// Whether it answers with XDP_TX (see `warn_if_peer_drops`).
    pub transmits: bool,
}

impl Program {
    /// `obj` with `name`, or the shipped program `name` (default xdp_pass).
    pub fn find(obj: Option<&Path>, name: Option<&str>) -> Result<Program> {
        Ok(match obj {
            Some(path) => Program {
                source: Source::File(path.to_path_buf()),
                name: name.map(str::to_string),
                maps: None,
                transmits: false,
            },
            None => {
                let prog = catalog::find(name.unwrap_or(catalog::DEFAULT))?;
                Program {
                    source: Source::Shipped(prog.object),
                    name: Some(prog.name.to_string()),
                    maps: Some(prog.maps),
                    transmits: prog.transmits(),
                }
            }
        })
    }
}

/// One load, its inputs checked: what `load` and `apply` ask of [`step`].
pub struct Request<'a> {
    pub dev: &'a Iface,
    pub program: &'a Program,
    /// None: the kernel picks.
    pub mode: Option<Mode>,
    /// Replace whatever is attached.
    pub force: bool,
    pub force_dispatcher: bool,
    pub reuse_maps: bool,
    /// --pin-dir, if given (see `pin_dir`).
    pub pin_dir: Option<&'a Path>,
    /// Replace only this program (the one a plan saw there): refuse if the
    /// interface runs anything else by the time it is locked.
    pub replacing: Option<u32>,
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct Done {
    pub prog_id: u32,
    /// Where its maps are pinned.
    pub pin_dir: PathBuf,
    pub prog_name: String,
    pub mode: Mode,
    pub object: String,
    pub maps: Vec<String>,
    pub replaced: Vec<Attachment>,
    pub shared: Vec<String>,
    /// Maps reused because --reuse-maps asked.
    pub reused: Vec<String>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    if let Some(id) = args.unload {
        let unload = unload::Args {
            dev: args.dev.clone(),
            id,
            force: args.force,
            force_dispatcher: args.force_dispatcher,
        };
        return unload::run(&unload, out);
    }
    // Everything the user typed is checked before anything is loaded.
    let dev = iface::resolve(&args.dev)?;
    offload::check(&dev, args.mode())?;
    let program = Program::find(args.obj.as_deref(), args.progname.as_deref())?;
    bpffs::ensure_mounted()?;
    let done = step(
        &Request {
            dev: &dev,
            program: &program,
            mode: args.mode(),
            force: args.force,
            force_dispatcher: args.force_dispatcher,
            reuse_maps: args.reuse_maps,
            pin_dir: args.pin_dir.as_deref(),
            replacing: None,
        },
        out,
    )?;
    let pin_dir = &done.pin_dir;
    // The program is attached: failing to look at the peer only loses advice.
    if program.transmits {
        if let Err(e) = warn_if_peer_drops(&dev, &done.prog_name, out) {
            out.warn(&format!(
                "warning: could not check {}'s veth peer: {e:#}",
                escape::text(&dev.name)
            ));
        }
    }
    // Auto keeps a replaced program's mode; otherwise skb means no native.
    let kept = done.replaced.iter().any(|a| a.mode == Mode::Skb);
    if args.mode().is_none() && done.mode == Mode::Skb && !kept {
        out.warn(&advice::skb_fallback(&dev.name));
    }
    if out.json {
        return out.json(&Loaded {
            ifname: &dev.name,
            ifindex: dev.index,
            prog_id: done.prog_id,
            prog_name: &done.prog_name,
            mode: done.mode,
            object: &done.object,
            pin_dir,
            maps: &done.maps,
            replaced: done.replaced.iter().map(|a| a.prog_id).collect(),
            shared: &done.shared,
        });
    }
    out.info(format!(
        "Loaded {} from {}: program id {} attached to {} (ifindex {}) in {} mode",
        escape::text(&done.prog_name),
        escape::text(&done.object),
        done.prog_id,
        escape::text(&dev.name),
        dev.index,
        done.mode
    ));
    for a in &done.replaced {
        out.info(format!(" - replaced program id {} ({} mode)", a.prog_id, a.mode));
    }
    let reuse_note = if done.reused.is_empty() {
        String::new()
    } else {
        format!(" (reused: {})", escape::text(&done.reused.join(", ")))
    };
    // A program without maps has nothing pinned to tell of.
    if !done.maps.is_empty() {
        out.info(format!(
            " - pinned maps in {}: {}{reuse_note}",
            escape::path(pin_dir),
            escape::text(&done.maps.join(", "))
        ));
    }
    for name in &done.shared {
        out.info(format!(
            " - shared {}: the object pins it by name (LIBBPF_PIN_BY_NAME) and {} was already \
             pinned, so this program uses that map",
            escape::text(name),
            escape::path(&pin_dir.join(name))
        ));
    }
    Ok(())
}

/// Load `req.program` and attach it to `req.dev` under the interface's
/// lock, transactionally: on any error the interface, its pins and its
/// record are as they were. Signals are held off from the first change on.
pub fn step(req: &Request<'_>, out: Output) -> Result<Done> {
    let dev = req.dev;
    let _lock = Lock::interface(dev)?;
    let pin_dir = pin_dir(dev, req.pin_dir, req.reuse_maps)?;
    let _pin_lock = Lock::pin_dir(&pin_dir)?;
    for note in leftovers::prune_dead_namespaces()? {
        out.warn(&note);
    }
    let state = IfState::read(dev)?;
    let (current, previous) = (&state.attached, state.rec.as_ref());
    if let Some(id) = req.replacing {
        if current.iter().any(|a| a.prog_id != id) {
            let now: Vec<String> = current.iter().map(|a| a.prog_id.to_string()).collect();
            bail!(
                "{} changed meanwhile: it runs program id {} now, not {id}; run again",
                dev.name,
                now.join(", ")
            );
        }
    }
    let force = req.force || req.replacing.is_some();
    let dispatchers = libxdp::refuse(dev, current, previous, req.force_dispatcher, "replaces")?;
    for att in current {
        state.refuse_if_link_held(*att)?;
    }
    if let (false, Some(att)) = (force || req.force_dispatcher, current.first()) {
        // The unload hint must work: another tool's program needs --force.
        let (whose, force) = if state.is_ours(*att)? {
            ("loaded by xdpctl", "")
        } else {
            ("not loaded by xdpctl; another tool's", " --force")
        };
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode, {whose}); \
             use --force to replace it, or `xdpctl unload --dev {0}{force}` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }

    let mut storage = MaybeUninit::uninit();
    let source = &req.program.source;
    let mut opened = Opened::open(source, &mut storage, &pin_dir)?;
    let origin = source.describe();
    let wanted = match &req.program.name {
        Some(name) => name.clone(),
        None => object::sole_xdp(opened.object_mut(), &origin)?,
    };
    let prog_name = object::select(opened.object_mut(), &wanted, &origin)?;
    if let Some(maps) = req.program.maps {
        object::keep_maps(opened.object_mut(), maps)?;
    }
    // Programs whose maps may be pinned here: the one this load replaces.
    let mut owners: Vec<u32> = current.iter().map(|a| a.prog_id).collect();
    owners.extend(previous.map(|p| p.prog_id));
    check_pins_are_ours(dev, &pin_dir, opened.object_mut(), previous, &owners, req.reuse_maps)?;
    let reused = pins::reuse(opened.object_mut(), &pin_dir, req.reuse_maps)?;
    offload::bind(opened.object_mut(), dev, req.mode);
    let mut loaded =
        logging::load(&format!("program {prog_name} from {origin}"), || opened.load())?;

    let (prog_fd, prog_id, used_maps) = {
        let prog = loaded
            .object()
            .progs()
            .find(|p| p.name() == prog_name.as_str())
            .ok_or_else(|| anyhow!("program {prog_name} vanished from {origin} after load"))?;
        let fd = prog.as_fd().try_clone_to_owned().context("duplicating the program fd")?;
        let id = libbpf_rs::Program::id_from_fd(prog.as_fd()).context("reading the program id")?;
        (fd, id, object::maps_used_by(prog.as_fd())?)
    };

    // From here on, returning early puts the interface back as it was: the
    // swap guard restores the old program, staged pins remove themselves;
    // and no signal cuts that short. The pins are staged before the attach,
    // so that even a SIGKILL leaves a program `status` can tell is xdpctl's.
    stop::defer_signals()?;
    let staged = pins::stage(loaded.object_mut(), &pin_dir, &reused, &used_maps)?;
    let swap = Swap::attach(dev, prog_fd, prog_id, req.mode, current)
        .with_context(|| Exit::attach(format!("loading {prog_name} on {}", dev.name)))?;
    let mode = match swap.mode() {
        // A fixed mode is where the kernel put it; only `auto` needs asking.
        Some(mode) => mode,
        None => attach::query(dev.index)?
            .into_iter()
            .find(|a| a.prog_id == prog_id)
            .map(|a| a.mode)
            .ok_or_else(|| {
                anyhow!("program {prog_id} is not attached to {} after attach", dev.name)
            })?,
    };

    // A map pinned by name that was there already is its pinner's, unless
    // an earlier load here made it: only pins made here go in the record.
    let made_here =
        |n: &String| previous.is_some_and(|p| p.pin_dir == pin_dir && p.pins.contains(n));
    let shared: Vec<String> =
        reused.by_name.iter().filter(|n| staged.names().contains(n)).cloned().collect();
    let ours: Vec<String> =
        staged.names().iter().filter(|n| !shared.contains(n) || made_here(n)).cloned().collect();
    let (maps, stale) = carry_over(previous, &ours, &pin_dir, req.reuse_maps);
    // What an earlier load into this directory made above it is still ours.
    let made_before = previous.filter(|p| p.pin_dir == pin_dir).map_or(0, |p| p.parents_made);
    let rec = Record {
        ifname: dev.name.clone(),
        prog_id,
        prog_name: prog_name.clone(),
        pin_dir: pin_dir.clone(),
        pins: maps.clone(),
        netns_inode: record::netns_inode()?,
        object: Some(origin.clone()),
        parents_made: staged.parents_made().max(made_before),
    };
    record::write(dev, &rec)?;
    if let Err(e) = staged.commit() {
        // The swap guard puts the old program back; its record goes back too.
        let restored = match previous {
            Some(prev) => record::write(dev, prev),
            None => record::remove(dev),
        };
        if let Err(re) = restored {
            let msg = format!("could not restore the record of {}: {re:#}", dev.name);
            output::say(&msg);
        }
        return Err(e);
    }
    let replaced: Vec<Attachment> = swap.replaced().copied().collect();
    swap.commit();
    libxdp::report_left(&dispatchers, dev, out);
    // The replaced programs may still use those maps for a moment; nobody else may.
    let mut owners: Vec<u32> = replaced.iter().map(|a| a.prog_id).collect();
    owners.extend(previous.map(|p| p.prog_id));
    if let Some((dir, names)) = stale {
        let parents = previous.filter(|p| p.pin_dir == dir).map_or(0, |p| p.parents_made);
        let removed = pins::remove(&dir, &names, &owners).and_then(|_| {
            if dir.exists() {
                Ok(())
            } else {
                bpffs::remove_parents(&dir, parents)
            }
        });
        if let Err(e) = removed {
            out.warn(&format!("warning: stale pins of the replaced program stay: {e:#}"));
        }
    }
    // A killed load's program, if it had one here, was replaced just now.
    for k in &state.killed {
        if let Err(e) = pins::remove(&k.dir, &k.pins, &owners) {
            out.warn(&format!("warning: pins staged by a killed load stay: {e:#}"));
        }
    }
    Ok(Done {
        prog_id,
        pin_dir,
        prog_name,
        mode,
        object: origin,
        maps,
        replaced,
        shared,
        reused: reused.asked,
    })
}

/// Where this load pins: --pin-dir; else, reusing maps, where the
/// interface's record has them (a load with --pin-dir put them elsewhere,
/// and the default directory would start the counters over); else the
/// default directory.
fn pin_dir(dev: &Iface, given: Option<&Path>, reuse_maps: bool) -> Result<PathBuf> {
    if given.is_some() || !reuse_maps {
        return ifstate::load_pin_dir(dev, given);
    }
    let recorded = IfState::read(dev)?.rec.map(|r| r.pin_dir);
    ifstate::load_pin_dir(dev, recorded.as_deref())
}

/// A program answering with XDP_TX on a veth whose peer has no XDP program
/// seems to work but answers no one: the peer drops the frames (GRO on it
/// does not help XDP_TX, unlike redirects; see tests/packet.rs).
fn warn_if_peer_drops(dev: &Iface, prog_name: &str, out: Output) -> Result<()> {
    let link = netlink::get_link(dev.index, None)?;
    let Some(peer) = netlink::peer_of(&link)? else { return Ok(()) };
    if !peer.xdp_attached {
        out.warn(&format!(
            "warning: {} answers with XDP_TX, but {}'s veth peer {} has no XDP program, so it \
             drops every answer (ping gets no reply); load one on it: {}",
            escape::text(prog_name),
            escape::text(&dev.name),
            escape::text(&peer.name),
            advice::load_on_peer(&peer, link.link_netnsid)?
        ));
    }
    Ok(())
}

/// The pins the interface's record lists after this load, and the replaced
/// program's pins to remove. Its pins are stale unless this program uses them,
/// or they are kept (and still ours to remove later) for a swap back under
/// --reuse-maps.
fn carry_over(
    previous: Option<&Record>,
    ours: &[String],
    pin_dir: &Path,
    reuse_maps: bool,
) -> (Vec<String>, Option<(PathBuf, Vec<String>)>) {
    let mut maps = ours.to_vec();
    let Some(prev) = previous else {
        return (maps, None);
    };
    let same_dir = prev.pin_dir == pin_dir;
    let unused: Vec<String> =
        prev.pins.iter().filter(|p| !same_dir || !ours.contains(p)).cloned().collect();
    if reuse_maps && same_dir {
        maps.extend(unused);
        (maps, None)
    } else {
        (maps, Some((prev.pin_dir.clone(), unused)))
    }
}

/// Refuse a pin directory where another interface's live program has pins of
/// the same names: replacing them would cut that program off from its readers.
/// Only a pin there that this interface's record (`previous`) does not claim
/// can be another's, so the other records are read only then.
///
/// Nor a pin whose map a live program xdpctl did not load here (not one of
/// `owners`) uses: its pin would be replaced, unless `reuse_maps` shares it.
fn check_pins_are_ours(
    dev: &Iface,
    dir: &Path,
    obj: &OpenObject,
    previous: Option<&Record>,
    owners: &[u32],
    reuse_maps: bool,
) -> Result<()> {
    // A map pinned by name is shared with whoever pinned it, never replaced.
    let by_name = pins::by_name(obj);
    let names: Vec<String> = obj
        .maps()
        .filter(|m| m.autocreate())
        .map(|m| pins::pin_name(&m.name().to_string_lossy()))
        .filter(|n| !by_name.contains(n))
        .collect();
    let claimed = |n: &String| previous.is_some_and(|p| p.pin_dir == dir && p.pins.contains(n));
    let unclaimed = names.iter().any(|n| !claimed(n) && dir.join(n).exists());
    let others = if unclaimed { record::all()? } else { Vec::new() };
    let mine = if unclaimed { Some(Key::of(dev)?) } else { None };
    for (_, rec) in others.into_iter().filter(|(key, _)| Some(*key) != mine) {
        let clash: Vec<&str> =
            rec.pins.iter().filter(|p| names.contains(p)).map(String::as_str).collect();
        if rec.pin_dir != dir || clash.is_empty() {
            continue;
        }
        let live = match libbpf_rs::Program::fd_from_id(rec.prog_id) {
            Ok(_) => true,
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("checking program id {} of another interface's record", rec.prog_id)
                })
            }
        };
        if live {
            bail!(
                "--pin-dir {} holds the pins of {} on {} ({}); use another directory",
                dir.display(),
                rec.prog_name,
                rec.ifname,
                clash.join(", ")
            );
        }
    }
    if reuse_maps {
        return Ok(());
    }
    let present: Vec<&String> = names.iter().filter(|n| dir.join(n).exists()).collect();
    if let Some((name, prog)) = pins::used_by_others(dir, &present, owners)?.first() {
        bail!(
            "{} is the map of program id {prog}, which xdpctl did not load here, and loading \
             would replace that pin; use another --pin-dir, or --reuse-maps to share the map",
            dir.join(name).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(dir: &str, pins: &[&str]) -> Record {
        Record {
            ifname: "eth0".into(),
            prog_id: 1,
            prog_name: "xdp_pass".into(),
            pin_dir: dir.into(),
            pins: pins.iter().map(|p| p.to_string()).collect(),
            netns_inode: 0,
            object: None,
            parents_made: 0,
        }
    }

    #[test]
    fn pins_of_a_replaced_program_are_stale_unless_kept_for_reuse() {
        let ours = vec!["xdp_stats_map".to_string()];
        let dir = Path::new("/sys/fs/bpf/eth0");
        assert_eq!(carry_over(None, &ours, dir, false), (ours.clone(), None));

        let prev = rec("/sys/fs/bpf/eth0", &["xdp_stats_map", "tx_port"]);
        let (maps, stale) = carry_over(Some(&prev), &ours, dir, false);
        assert_eq!(maps, ours);
        assert_eq!(stale, Some((dir.to_path_buf(), vec!["tx_port".to_string()])));

        let (maps, stale) = carry_over(Some(&prev), &ours, dir, true);
        assert_eq!(maps, ["xdp_stats_map", "tx_port"]);
        assert_eq!(stale, None);

        let moved = rec("/sys/fs/bpf/old", &["xdp_stats_map"]);
        let (_, stale) = carry_over(Some(&moved), &ours, dir, true);
        assert_eq!(stale, Some(("/sys/fs/bpf/old".into(), ours.clone())));
    }
}

/// `--progname`: takes any name, as an --obj may hold any, but lists the
/// shipped programs as its possible values, for completion and the man page;
/// `Cli::check` refuses an unknown name when there is no --obj.
#[derive(Clone, Debug)]
pub struct ProgName;

impl TypedValueParser for ProgName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(catalog::PROGRAMS.iter().map(|p| {
            PossibleValue::new(p.name).help(p.summary).aliases(p.aliases.iter().copied())
        })))
    }
}
