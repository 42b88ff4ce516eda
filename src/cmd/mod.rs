//! One module per subcommand; each owns its arguments and its output.

pub mod advice;
pub mod afxdp;
pub mod features;
pub mod list;
pub mod load;
pub mod redirect;
pub mod sample;
pub mod stats;
pub mod status;
pub mod trace;
pub mod trace_monitor;
pub mod trace_netdev;
pub mod trace_printk;
pub mod trafficgen;
pub mod unload;

use anyhow::{bail, Result};
use libbpf_rs::ProgramHandle;

use crate::iface::Iface;
use crate::leftovers::Killed;
use crate::record::Record;
use crate::xdp::{self, Attachment};

/// A program's kernel name by id, for messages ("?" if it vanished meanwhile).
pub(crate) fn prog_name(id: u32) -> String {
    ProgramHandle::from_prog_id(id)
        .map(|h| h.name().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".to_string())
}

/// The name xdpctl loaded program `id` under, if `rec` is its record: the
/// kernel keeps only 15 characters (`xdp_redirect_ma`).
pub(crate) fn full_name(id: u32, kernel_name: String, rec: Option<&Record>) -> String {
    match rec {
        Some(r) if r.prog_id == id && r.prog_name.starts_with(&kernel_name) => r.prog_name.clone(),
        _ => kernel_name,
    }
}

/// `--interval`: seconds between samples, as a positive finite number.
pub(crate) fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0.01 and 86400")),
    }
}

/// Refuse to touch `att` when a bpf_link holds it: the kernel would answer
/// only "Can't replace active BPF XDP link". The link's owner must let go.
pub(crate) fn refuse_if_link_held(dev: &Iface, att: Attachment) -> Result<()> {
    if let Some(link) = xdp::holding_link(dev.index, att)? {
        bail!(
            "{} is held by BPF link id {link}: {} (id {}, {} mode) was attached through a \
             link, and the kernel will not replace or detach it (\"Can't replace active BPF \
             XDP link\"); stop the program that owns the link or remove its pin \
             (`bpftool link show id {link}` names both)",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    Ok(())
}

/// Whether xdpctl attached `att` (its record names it, or a load killed
/// before writing the record left it), as opposed to another tool or an
/// xdpctl command that holds it through a link.
pub(crate) fn is_ours(att: Attachment, rec: Option<&Record>, killed: &[Killed]) -> Result<bool> {
    if rec.is_some_and(|r| r.prog_id == att.prog_id) {
        return Ok(true);
    }
    for k in killed {
        if k.holds(att.prog_id)? {
            return Ok(true);
        }
    }
    Ok(false)
}
