//! `xdpctl apply`: make the machine match a file of wanted attachments.
//! One snapshot of every interface and the file give a plan (plan.rs, a
//! pure function); `--diff` prints it, otherwise each step runs through
//! load's and unload's own transactional steps, one interface at a time.
//! `--watch` applies again whenever the interfaces or the file change.

pub mod config;
pub mod plan;
mod watch;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::cmd::advice;
use crate::cmd::load::{self, Request};
use crate::cmd::redirect::Setting;
use crate::cmd::unload;
use crate::escape;
use crate::net::iface::{self, Iface};
use crate::output::Output;
use crate::xdp::attach::Mode;
use crate::xdp::bpffs;
use crate::xdp::ifstate::{prog_name, IfState, Namespace};

use config::{Config, Entry};
use plan::{Action, Ours, Plan, Seen, Step};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file of wanted attachments
    #[arg(short, long, value_name = "FILE", default_value = config::DEFAULT_FILE)]
    pub file: PathBuf,
    /// Print what would be done, and do nothing
    #[arg(long)]
    pub diff: bool,
    /// Also unload xdpctl's programs from interfaces the file does not list
    #[arg(long)]
    pub prune: bool,
    /// Keep running: apply again when interfaces appear, on SIGHUP and when the file changes
    #[arg(long, conflicts_with = "diff")]
    pub watch: bool,
}

/// Whether a pass that changed nothing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Always,
    IfChanged,
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// --diff: what would be done.
    Planned,
    /// Nothing to do: as wanted.
    Unchanged,
    Done,
    /// Undone: the interface is as it was.
    Failed,
    /// Another tool's program is there: left alone.
    Skipped,
    /// An earlier step failed.
    NotAttempted,
}

#[derive(Serialize)]
struct StepReport {
    #[serde(flatten)]
    step: Step,
    status: Status,
    /// The program now attached, when this step attached it.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_prog_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
    /// The redirect settings were written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    redirect_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One pass, as printed with --json.
#[derive(Serialize)]
struct Report<'a> {
    file: &'a std::path::Path,
    diff: bool,
    prune: bool,
    /// Steps that changed (or, with --diff, would change) an interface.
    changed: usize,
    ok: bool,
    steps: &'a [StepReport],
    /// Interfaces named in the file that are not here (yet).
    absent: &'a [String],
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    if args.watch {
        return watch::run(args, out);
    }
    let config = Config::read(&args.file)?;
    pass(&config, args, Shown::Always, out)
}

/// Read every interface, plan, and (without --diff) act; print the outcome.
fn pass(config: &Config, args: &Args, shown: Shown, out: Output) -> Result<()> {
    bpffs::ensure_mounted()?;
    let seen = snapshot()?;
    let plan = plan::plan(&config.entries, &seen, args.prune)?;
    let (reports, failure) = execute(config, &plan, args.diff, out);
    let changed = reports
        .iter()
        .filter(|r| r.step.changes() && matches!(r.status, Status::Done | Status::Planned))
        .count()
        + reports.iter().filter(|r| r.redirect_set).count();
    let conflicts: Vec<&StepReport> =
        reports.iter().filter(|r| r.status == Status::Skipped).collect();
    let ok = failure.is_none() && conflicts.is_empty();
    if shown == Shown::IfChanged && ok && changed == 0 {
        return Ok(());
    }
    if out.json {
        out.json(&Report {
            file: &config.path,
            diff: args.diff,
            prune: args.prune,
            changed,
            ok,
            steps: &reports,
            absent: &plan.absent,
        })?;
    } else {
        print_text(config, &plan, &reports, args.diff, (changed, ok), out)?;
    }
    if let Some(err) = failure {
        return Err(err);
    }
    if let Some(c) = conflicts.first() {
        let (id, name) = match &c.step.action {
            Action::Conflict { prog_id, prog_name } => (*prog_id, prog_name.as_str()),
            _ => (0, "?"),
        };
        bail!(
            "{}: {} (id {id}) is another tool's program, left in place; `xdpctl unload --dev {0} \
             --force` first if the file's program is to replace it{}",
            c.step.dev,
            name,
            if conflicts.len() > 1 {
                format!(" ({} interfaces like this)", conflicts.len())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Every interface of this namespace, as the plan needs it.
fn snapshot() -> Result<Vec<Seen>> {
    let ns = Namespace::read(true)?;
    let mut seen = Vec::with_capacity(ns.ifaces.len());
    for s in &ns.ifaces {
        let (mut ours, mut foreign) = (None, None);
        for att in &s.attached {
            if s.is_ours(*att)? {
                let rec = s.rec.as_ref().filter(|_| s.recorded(*att));
                ours = Some(Ours {
                    prog_id: att.prog_id,
                    mode: att.mode,
                    prog_name: rec.map(|r| r.prog_name.clone()),
                    object: rec.and_then(|r| r.object.clone()),
                    pin_dir: rec.map(|r| r.pin_dir.clone()),
                });
            } else {
                foreign = Some((att.prog_id, prog_name(att.prog_id)));
            }
        }
        seen.push(Seen {
            name: s.dev.name.clone(),
            index: s.dev.index,
            attached: s.attached.clone(),
            ours,
            foreign,
        });
    }
    Ok(seen)
}

/// Run the plan's steps in order (none with `diff`); the first failure
/// stops the rest, its own step undone by load/unload.
fn execute(
    config: &Config,
    plan: &Plan,
    diff: bool,
    out: Output,
) -> (Vec<StepReport>, Option<anyhow::Error>) {
    let mut reports = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    for step in &plan.steps {
        let mut report = StepReport {
            step: step.clone(),
            status: Status::Unchanged,
            new_prog_id: None,
            mode: None,
            redirect_set: false,
            error: None,
        };
        let entry = step.entry.and_then(|i| config.entries.get(i));
        report.status = match (&step.action, failure.is_some(), diff) {
            (Action::Conflict { .. }, _, _) => Status::Skipped,
            (_, true, _) => Status::NotAttempted,
            (Action::Keep { .. }, _, true) => Status::Unchanged,
            (_, _, true) => Status::Planned,
            (_, false, false) => match act(step, entry, &mut report, out) {
                Ok(status) => status,
                Err(e) => {
                    let e = advice::for_file(e);
                    report.error = Some(format!("{e:#}"));
                    let done: Vec<String> = reports
                        .iter()
                        .filter(|r: &&StepReport| r.status == Status::Done)
                        .map(|r| r.step.dev.clone())
                        .collect();
                    let done = if done.is_empty() { "none".to_string() } else { done.join(", ") };
                    let rest = plan.steps.iter().skip(reports.len() + 1).filter(|s| s.changes());
                    let rest: Vec<&str> = rest.map(|s| s.dev.as_str()).collect();
                    let rest = if rest.is_empty() {
                        String::new()
                    } else {
                        format!("; not attempted: {}", rest.join(", "))
                    };
                    failure = Some(e.context(format!(
                        "applying {}: {} left as it was (done: {done}{rest})",
                        config.path.display(),
                        step.dev
                    )));
                    Status::Failed
                }
            },
        };
        reports.push(report);
    }
    (reports, failure)
}

/// Carry out one step; how it went.
fn act(step: &Step, entry: Option<&Entry>, report: &mut StepReport, out: Output) -> Result<Status> {
    let dev = Iface { name: step.dev.clone(), index: step.ifindex };
    let replacing = match &step.action {
        Action::Load => None,
        Action::Replace { prog_id, .. } => Some(*prog_id),
        Action::Keep { .. } => {
            let set = match entry.and_then(|e| e.redirect.as_ref().map(|r| (e, r))) {
                Some((_, r)) => redirect(&dev, r, true)?,
                None => false,
            };
            report.redirect_set = set;
            return Ok(if set { Status::Done } else { Status::Unchanged });
        }
        Action::Unload { prog_id, .. } => {
            unload::step(&dev, Some(*prog_id), false, false, out)?;
            return Ok(Status::Done);
        }
        Action::Conflict { .. } => return Ok(Status::Skipped),
    };
    let entry = entry.ok_or_else(|| anyhow!("{}: the plan names no entry", step.dev))?;
    // Always given: the plan compared the interface's record with this
    // directory, not with where a reuse of maps would look.
    let pin_dir = entry.pin_dir_of(&dev.name)?;
    let done = load::step(
        &Request {
            dev: &dev,
            program: &entry.program,
            mode: entry.mode,
            force: false,
            force_dispatcher: false,
            reuse_maps: entry.reuse_maps,
            pin_dir: Some(&pin_dir),
            replacing,
        },
        out,
    )?;
    report.new_prog_id = Some(done.prog_id);
    report.mode = Some(done.mode);
    if let Some(r) = &entry.redirect {
        report.redirect_set = redirect(&dev, r, false)?;
    }
    Ok(Status::Done)
}

/// Point `dev`'s redirect program where `r` says; with `only_if_needed`,
/// only when its maps say otherwise. Whether it wrote them.
fn redirect(dev: &Iface, r: &config::Redirect, only_if_needed: bool) -> Result<bool> {
    let target = iface::resolve(&r.redirect_dev)?;
    let dir = IfState::read(dev)?.pin_dir(None)?;
    let set = Setting::settle(dev, &target, r.src_mac, r.dest_mac, &dir)?;
    if only_if_needed && set.is_set()? {
        return Ok(false);
    }
    set.write()?;
    Ok(true)
}

fn print_text(
    config: &Config,
    plan: &Plan,
    reports: &[StepReport],
    diff: bool,
    (changed, ok): (usize, bool),
    out: Output,
) -> Result<()> {
    let file = escape::path(&config.path);
    let mut lines = Vec::new();
    for r in reports {
        let dev = escape::text(&r.step.dev);
        let program = escape::text(r.step.program.as_deref().unwrap_or("?")).into_owned();
        let mode = r.mode.map(|m| format!(", {m} mode")).unwrap_or_default();
        let new = r.new_prog_id.map(|id| format!(" (id {id}{mode})")).unwrap_or_default();
        let line = match (&r.step.action, r.status) {
            (_, Status::NotAttempted) => format!("  {dev}: not attempted"),
            (_, Status::Failed) => format!("! {dev}: failed, left as it was"),
            (Action::Load, _) if diff => format!("+ {dev}: load {program}"),
            (Action::Load, _) => format!("+ {dev}: loaded {program}{new}"),
            (Action::Replace { prog_id, why }, _) if diff => {
                format!(
                    "~ {dev}: replace program id {prog_id} with {program}: {}",
                    escape::text(why)
                )
            }
            (Action::Replace { prog_id, why }, _) => format!(
                "~ {dev}: replaced program id {prog_id} with {program}{new}: {}",
                escape::text(why)
            ),
            (Action::Keep { prog_id }, _) if r.redirect_set => {
                format!("~ {dev}: {program} (id {prog_id}) kept; redirect settings written")
            }
            (Action::Keep { prog_id }, _) => format!("= {dev}: {program} (id {prog_id}) as wanted"),
            (Action::Unload { prog_id, prog_name }, _) if diff => {
                format!("- {dev}: unload {} (id {prog_id})", escape::text(prog_name))
            }
            (Action::Unload { prog_id, prog_name }, _) => {
                format!("- {dev}: unloaded {} (id {prog_id})", escape::text(prog_name))
            }
            (Action::Conflict { prog_id, prog_name }, _) => format!(
                "! {dev}: another tool's program {} (id {prog_id}) is attached; left alone",
                escape::text(prog_name)
            ),
        };
        lines.push(line);
    }
    for name in &plan.absent {
        lines.push(format!("? {}: no such interface here (yet)", escape::text(name)));
    }
    let summary = match (diff, ok, changed) {
        (true, _, 0) => format!("{file}: nothing to do"),
        (true, _, n) => format!("{file}: {n} change(s) to make; run without --diff to make them"),
        (false, false, n) => format!("{file}: not applied in full; {n} change(s) made"),
        (false, true, 0) => format!("{file}: nothing to do; the interfaces are as it wants"),
        (false, true, n) => format!("{file}: applied, {n} change(s)"),
    };
    lines.push(summary);
    if diff {
        // The plan is the data --diff asks for.
        let mut text = lines.join("\n");
        text.push('\n');
        out.print(&text)
    } else {
        for l in lines {
            out.info(l);
        }
        Ok(())
    }
}
