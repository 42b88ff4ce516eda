//! tracefs: tracepoint ids and trace_pipe live there, and it may be unmounted.

use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, TRACEFS_MAGIC};

/// Where tracefs is mounted nowadays (libbpf looks here too).
pub const ROOT: &str = "/sys/kernel/tracing";

/// Mount tracefs at [`ROOT`] unless it is there already. Unlike pins, nothing
/// of it needs to outlive xdpctl, so a private mount namespace is fine.
pub fn ensure_mounted() -> Result<()> {
    let here = statfs(Path::new(ROOT)).with_context(|| {
        format!("{ROOT} is missing: this kernel has no tracefs (CONFIG_TRACING) to mount there")
    })?;
    if here.filesystem_type() == TRACEFS_MAGIC {
        return Ok(());
    }
    mount(
        Some("tracefs"),
        ROOT,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .with_context(|| {
        format!("mounting tracefs on {ROOT} (as root: `mount -t tracefs tracefs {ROOT}`) failed")
    })
}

/// Write `text` into the trace buffer (trace_marker), as one line of its
/// own: a mark that readers of trace_pipe can find.
pub fn mark(text: &str) -> Result<()> {
    let path = Path::new(ROOT).join("trace_marker");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("writing to {}", path.display()))
}

/// Whether this kernel has tracepoint `category:name`: its `id` file is what
/// libbpf reads to attach, so that is what must be there.
pub fn has_tracepoint(category: &str, name: &str) -> bool {
    Path::new(ROOT).join("events").join(category).join(name).join("id").exists()
}

/// The tracepoints of `wanted` (in `category`) this kernel has; a notice on
/// stderr for each one skipped, and an error if none is left for `what`.
pub fn present<'a>(
    category: &str,
    wanted: &[&'a str],
    what: &str,
    note: impl Fn(&str),
) -> Result<Vec<&'a str>> {
    let (have, missing): (Vec<&str>, Vec<&str>) =
        wanted.iter().partition(|name| has_tracepoint(category, name));
    if have.is_empty() {
        let names: Vec<String> = missing.iter().map(|m| format!("{category}:{m}")).collect();
        bail!(
            "{what}: this kernel has no {} tracepoint (no id file under {ROOT}/events/{category}/), \
             so there is nothing to trace; `ls {ROOT}/events/{category}` shows what it has",
            names.join(" or ")
        );
    }
    for m in &missing {
        note(&format!("note: this kernel has no {category}:{m} tracepoint; skipping it"));
    }
    Ok(have)
}
