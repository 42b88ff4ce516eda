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

/// Pin this process (the live-frames sender) to `cpu`; the tools under test
/// run on the other one.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(cpu).context("CPU set")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus)
        .with_context(|| format!("pinning the sender to CPU {cpu} (the benchmark needs 2 CPUs)"))
}

/// The programs of the object at `path`, loaded for the life of the process
/// (benchmarks use them throughout); `take` hands them out by name.
pub struct Programs {
    path: String,
    progs: Vec<libbpf_rs::ProgramMut<'static>>,
}

impl Programs {
    pub fn load(path: &str) -> Result<Programs> {
        let object: &'static mut libbpf_rs::Object = Box::leak(Box::new(
            libbpf_rs::ObjectBuilder::default()
                .open_file(path)
                .with_context(|| format!("opening {path}"))?
                .load()
                .with_context(|| format!("loading {path}"))?,
        ));
        Ok(Programs { path: path.to_string(), progs: object.progs_mut().collect() })
    }

    pub fn take(&mut self, name: &str) -> Result<libbpf_rs::ProgramMut<'static>> {
        let at = self
            .progs
            .iter()
            .position(|p| p.name() == name)
            .with_context(|| format!("{name} in {}", self.path))?;
        Ok(self.progs.swap_remove(at))
    }
}
