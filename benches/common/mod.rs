//! Shared by the benchmark drivers; each uses part of it.
#![allow(dead_code)]

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Mean and its standard error.
pub struct Mean {
    pub mean: f64,
    pub stderr: f64,
}

impl Mean {
    pub fn of(values: impl Iterator<Item = f64>) -> Mean {
        let v: Vec<f64> = values.collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Mean { mean, stderr: (var / n).sqrt() }
    }
}

/// Run `cmd`; its stderr becomes the error if it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub fn ip(args: &[&str]) -> Result<()> {
    sh("ip", args)
}

/// `struct xdp_md` for ctx_in: the kernel wants data and data_meta 0 and
/// data_end the frame's length; the frame arrives on `ifindex`, queue 0.
pub fn xdp_md(frame: &[u8], ifindex: u32) -> [u8; 24] {
    let fields = [0, frame.len() as u32, 0, ifindex, 0, 0];
    let mut md = [0u8; 24];
    for (chunk, v) in md.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    md
}
