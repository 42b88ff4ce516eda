//! tracefs: tracepoint ids and trace_pipe live there, and it may be unmounted.

use std::path::Path;

use anyhow::{Context, Result};
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

/// Whether this kernel has tracepoint `category:name`.
pub fn has_tracepoint(category: &str, name: &str) -> bool {
    Path::new(ROOT).join("events").join(category).join(name).exists()
}
