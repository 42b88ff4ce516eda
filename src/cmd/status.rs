//! `xdpctl status`: every interface's XDP programs, as `xdp-loader status` shows.

use std::path::PathBuf;

use anyhow::Result;
use libbpf_rs::ProgramHandle;
use serde::Serialize;

use crate::cmd::full_name;
use crate::escape;
use crate::iface;
use crate::leftovers;
use crate::output::Output;
use crate::record;
use crate::xdp::{self, Mode};

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
    name: String,
    tag: String,
    mode: Mode,
    /// Set when xdpctl pinned this program's maps.
    pin_dir: Option<PathBuf>,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // Leftovers first: they outlive the interface they were about.
    let left = leftovers::find(args.dev.as_deref())?;
    for l in &left {
        eprintln!(
            "xdpctl: leftovers: {}; `xdpctl unload --dev {}` removes them",
            l.describe(),
            escape::text(&l.rec.ifname)
        );
    }
    let devs = match &args.dev {
        Some(name) => match iface::resolve(name) {
            Ok(dev) => vec![dev],
            // Said above: the name is only what an old interface left.
            Err(_) if !left.is_empty() => return Ok(()),
            Err(e) => return Err(e),
        },
        None => iface::all()?,
    };
    let mut rows = Vec::new();
    for dev in &devs {
        let attached = xdp::query(dev.index)?;
        let rec = record::read(dev)?;
        for k in leftovers::killed(&dev.name, rec.as_ref())? {
            let held = attached.iter().find(|a| k.holds(a.prog_id));
            eprintln!(
                "xdpctl: leftovers: {}; `xdpctl unload --dev {}` removes them",
                k.describe(&dev.name, held),
                escape::text(&dev.name)
            );
        }
        for att in attached {
            // The program can vanish between query and open; show what we know.
            let (name, tag) = match ProgramHandle::from_prog_id(att.prog_id) {
                Ok(h) => {
                    let name = h.name().to_string_lossy().into_owned();
                    (full_name(att.prog_id, name, rec.as_ref()), hex(&h.tag()))
                }
                Err(_) => ("?".to_string(), "?".to_string()),
            };
            let pin_dir =
                rec.as_ref().filter(|r| r.prog_id == att.prog_id).map(|r| r.pin_dir.clone());
            rows.push(Row {
                ifname: dev.name.clone(),
                ifindex: dev.index,
                prog_id: att.prog_id,
                name,
                tag,
                mode: att.mode,
                pin_dir,
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
    let mut text = format!(
        "{:<16} {:>7}  {:<16} {:<16}  {:<6}  PIN DIR\n",
        "INTERFACE", "PROG ID", "NAME", "TAG", "MODE"
    );
    for r in rows {
        let pin_dir = r.pin_dir.map_or_else(|| "-".to_string(), |p| escape::path(&p));
        text.push_str(&format!(
            "{:<16} {:>7}  {:<16} {:<16}  {:<6}  {pin_dir}\n",
            escape::text(&r.ifname),
            r.prog_id,
            escape::text(&r.name),
            r.tag,
            r.mode.to_string()
        ));
    }
    out.print(&text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
