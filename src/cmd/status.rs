//! `xdpctl status`: every interface's XDP programs, as `xdp-loader status` shows.

use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::ProgramHandle;
use serde::Serialize;

use crate::caps::{self, Cap};
use crate::escape;
use crate::net::iface;
use crate::output::{self, Output};
use crate::xdp::attach::Mode;
use crate::xdp::ifstate::{IfState, Namespace};
use crate::xdp::leftovers;
use crate::xdp::libxdp::{self, Dispatcher};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this interface
    #[arg(short, long, value_name = "IF")]
    pub dev: Option<String>,
}

#[derive(Serialize)]
struct Row {
    ifname: String,
    ifindex: u32,
    prog_id: u32,
    /// None without the privilege to ask the kernel.
    name: Option<String>,
    tag: Option<String>,
    mode: Mode,
    /// Set when xdpctl pinned this program's maps.
    pin_dir: Option<PathBuf>,
    /// Only on libxdp's dispatcher: what it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    libxdp: Option<Dispatcher>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // Program names and xdpctl's records need root; netlink answers anyone.
    let privileged = caps::has(Cap::SysAdmin)?;
    if !privileged {
        out.warn(
            "note: not root (no CAP_SYS_ADMIN): showing what netlink tells anyone; program \
             names, tags, pin directories and leftovers need root",
        );
    }
    let dev = args.dev.as_deref();
    if let Some(name) = dev {
        iface::check_name(name)?;
    }
    let ns = Namespace::read(privileged)?;
    if privileged {
        report_leftovers(&ns, dev, out)?;
    }
    let states: Vec<&IfState> =
        ns.ifaces.iter().filter(|s| dev.is_none_or(|d| d == s.dev.name)).collect();
    if let (Some(name), true) = (dev, states.is_empty()) {
        // Said above: the name is only what an old interface left.
        if privileged && ns.stale.iter().any(|l| l.rec.ifname == name) {
            return Ok(());
        }
        // The one message for a name no interface has.
        iface::resolve(name)?;
    }
    let mut rows = Vec::new();
    for state in states {
        let dev = &state.dev;
        for k in &state.killed {
            output::say(&format!(
                "leftovers: {}; `xdpctl unload --dev {}` removes them",
                k.describe(&dev.name, state.held_by(k)?),
                escape::text(&dev.name)
            ));
        }
        for att in &state.attached {
            let (name, tag) = if privileged { describe(att.prog_id, state)? } else { (None, None) };
            let pin_dir =
                state.rec.as_ref().filter(|_| state.recorded(*att)).map(|r| r.pin_dir.clone());
            // Only a program of the dispatcher's name is worth a closer look.
            let libxdp = match name.as_deref() {
                Some(libxdp::PROG_NAME) => libxdp::dispatcher(dev.index, att.prog_id)?,
                _ => None,
            };
            rows.push(Row {
                ifname: dev.name.clone(),
                ifindex: dev.index,
                prog_id: att.prog_id,
                name,
                tag,
                mode: att.mode,
                pin_dir,
                libxdp,
            });
        }
    }

    if out.json {
        return out.json(&rows);
    }
    if rows.is_empty() {
        return out.print(&match &args.dev {
            Some(name) => format!("{}: no XDP program attached\n", escape::text(name)),
            None => "No XDP programs attached\n".to_string(),
        });
    }
    // Columns as wide as their widest cell (and no narrower than they
    // always were): names longer than 16 characters (escaped ones, BTF's
    // full names) keep the table straight.
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                escape::text(&r.ifname).into_owned(),
                r.prog_id.to_string(),
                escape::text(r.name.as_deref().unwrap_or("-")).into_owned(),
                r.tag.as_deref().unwrap_or("-").to_string(),
                r.mode.to_string(),
                r.pin_dir.as_deref().map_or_else(|| "-".to_string(), escape::path),
            ]
        })
        .collect();
    let header = ["INTERFACE", "PROG ID", "NAME", "TAG", "MODE", "PIN DIR"].map(String::from);
    let mut w = [0usize; 6];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, cell) in w.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |c: &[String; 6]| {
        format!(
            "{:<w0$} {:>w1$}  {:<w2$} {:<w3$}  {:<w4$}  {}\n",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0].max(16),
            w1 = w[1],
            w2 = w[2].max(16),
            w3 = w[3].max(16),
            w4 = w[4].max(6)
        )
    };
    let mut text = line(&header);
    for (r, c) in rows.iter().zip(&cells) {
        text.push_str(&line(c));
        for line in r.libxdp.iter().flat_map(Dispatcher::lines) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    out.print(&text)
}

/// Leftovers, renames and dead namespaces' records, on stderr with the fix.
fn report_leftovers(ns: &Namespace, dev: Option<&str>, out: Output) -> Result<()> {
    for note in leftovers::prune_dead_namespaces()? {
        out.warn(&note);
    }
    // Leftovers first: they outlive the interface they were about.
    for l in ns.stale.iter().filter(|l| dev.is_none_or(|d| d == l.rec.ifname)) {
        output::say(&format!(
            "leftovers: {}; `xdpctl unload --dev {}` removes them",
            l.describe(),
            escape::text(&l.rec.ifname)
        ));
    }
    for r in &ns.renamed {
        if dev.is_none_or(|d| d == r.rec.ifname || d == r.now) {
            out.warn(&format!("note: {}", r.describe()));
        }
    }
    Ok(())
}

/// The program's name and tag. One that vanished since the query shows
/// as "?"; being refused is an error, never "nothing there".
fn describe(id: u32, state: &IfState) -> Result<(Option<String>, Option<String>)> {
    match ProgramHandle::from_prog_id(id) {
        Ok(h) => {
            let name = h.name().to_string_lossy().into_owned();
            Ok((Some(state.full_name(id, name)), Some(hex(&h.tag()))))
        }
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {
            Ok((Some("?".to_string()), Some("?".to_string())))
        }
        Err(e) => Err(e).with_context(|| format!("reading program id {id}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
