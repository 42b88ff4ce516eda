//! The sampling path of the stats helper every shipped program ends in
//! (include/xdp_stats_kern.h): its switch (the global `xdp_sample_ctl`, in
//! a data section of its own, which libbpf makes a one-entry array map
//! `.data.xdpsample`, pinned as `_data_xdpsample`), the perf event array
//! the frames go out through with their verdicts (`xdp_samples`; the
//! buffers are the capture's own) and the per-CPU counts
//! (`xdp_sample_counts`), pinned with the program's other maps.
//! Opened from a pin directory and held to the program attached: a pin the
//! program does not use would switch nothing on.

use std::mem::size_of;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

use crate::obj::maps;
use crate::obj::object;
use crate::obj::skel::{SampleCounts, SampleCtl, XDP_ACTION_MAX};

/// The switch's pin: xdp::pins::pin_name of the map `.data.xdpsample`.
pub const CTL_MAP: &str = "_data_xdpsample";
pub const SAMPLES_MAP: &str = "xdp_samples";
pub const COUNTS_MAP: &str = "xdp_sample_counts";

/// A verdict to sample, as `--verdict` takes it: enum xdp_action in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verdict {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
}

impl Verdict {
    /// Its enum xdp_action value.
    fn action(self) -> u32 {
        self as u32
    }

    /// The switch's mask for `verdicts`: every verdict if none is given.
    pub fn mask(verdicts: &[Verdict]) -> u32 {
        if verdicts.is_empty() {
            return (1 << XDP_ACTION_MAX) - 1;
        }
        verdicts.iter().fold(0, |m, v| m | 1 << v.action())
    }

    /// How a capture names `action`: "drop", or the number if unknown.
    pub fn name_of(action: u32) -> String {
        const NAMES: [&str; XDP_ACTION_MAX as usize] =
            ["aborted", "drop", "pass", "tx", "redirect"];
        NAMES.get(action as usize).map_or_else(|| format!("action{action}"), |n| n.to_string())
    }
}

/// Why a pin directory offers no sampling path for a program: facts, for
/// the command to phrase advice from.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// No switch is pinned there: loaded by an older xdpctl, or from an
    /// object not built with the helper's sampling path.
    NotPinned,
    /// The pins are there but the program does not use them (pinned by
    /// another load).
    NotUsed,
}

/// A program's sampling path, opened from its pins.
pub struct Tap {
    ctl: MapHandle,
    /// Where a capture opens its perf buffers.
    pub samples: MapHandle,
    counts: MapHandle,
}

impl Tap {
    /// The sampling path pinned in `dir`, if program `prog_id` uses it.
    pub fn open(dir: &Path, prog_id: u32) -> Result<std::result::Result<Tap, Missing>> {
        if !dir.join(CTL_MAP).exists() {
            return Ok(Err(Missing::NotPinned));
        }
        let ctl = open_checked(dir, CTL_MAP, MapType::Array, size_of::<SampleCtl>())?;
        let samples = open_checked(dir, SAMPLES_MAP, MapType::PerfEventArray, 4)?;
        let counts =
            open_checked(dir, COUNTS_MAP, MapType::PercpuArray, size_of::<SampleCounts>())?;
        let tap = Tap { ctl, samples, counts };
        Ok(if tap.used_by(prog_id)? { Ok(tap) } else { Err(Missing::NotUsed) })
    }

    /// Whether program `prog_id` uses these maps (not if it is gone).
    pub fn used_by(&self, prog_id: u32) -> Result<bool> {
        let prog = match libbpf_rs::Program::fd_from_id(prog_id) {
            Ok(fd) => fd,
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("opening program id {prog_id}")),
        };
        let used = object::maps_used_by(prog.as_fd())?;
        for map in [&self.ctl, &self.samples, &self.counts] {
            let id = map.info().context("reading map info")?.info.id;
            if !used.contains(&id) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Write the switch.
    pub fn set(&self, ctl: &SampleCtl) -> Result<()> {
        self.ctl
            .update(&0u32.to_ne_bytes(), maps::encode(ctl), MapFlags::ANY)
            .with_context(|| format!("writing {CTL_MAP}"))
    }

    /// Switch sampling off.
    pub fn off(&self) -> Result<()> {
        self.set(&SampleCtl::default())
    }

    /// Frames sampled and records lost since the program was loaded,
    /// summed over CPUs.
    pub fn counts(&self) -> Result<SampleCounts> {
        maps::sum(&self.counts, &0u32.to_ne_bytes(), COUNTS_MAP)
    }
}

/// The map pinned as `name` in `dir`, checked to be what the helper made:
/// 4-byte keys, `value` bytes per value, and one entry (a perf event array
/// has one per CPU).
fn open_checked(dir: &Path, name: &str, kind: MapType, value: usize) -> Result<MapHandle> {
    let path = dir.join(name);
    let map = maps::open_pinned(&path)?;
    let fits = map.map_type() == kind
        && map.key_size() == 4
        && map.value_size() as usize == value
        && (kind == MapType::PerfEventArray || map.max_entries() == 1);
    if !fits {
        bail!(
            "{} is a {:?} map with {}-byte values, not the sampling path's {name} \
             (a {kind:?} map)",
            path.display(),
            map.map_type(),
            map.value_size()
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_have_a_bit_per_verdict_and_none_means_all() {
        assert_eq!(Verdict::mask(&[Verdict::Drop]), 1 << 1);
        assert_eq!(Verdict::mask(&[Verdict::Drop, Verdict::Redirect]), 0b10010);
        assert_eq!(Verdict::mask(&[]), 0b11111);
        assert_eq!(Verdict::name_of(1), "drop");
        assert_eq!(Verdict::name_of(4), "redirect");
        assert_eq!(Verdict::name_of(9), "action9");
        for (v, action) in [
            (Verdict::Aborted, libbpf_rs::libbpf_sys::XDP_ABORTED),
            (Verdict::Drop, libbpf_rs::libbpf_sys::XDP_DROP),
            (Verdict::Pass, libbpf_rs::libbpf_sys::XDP_PASS),
            (Verdict::Tx, libbpf_rs::libbpf_sys::XDP_TX),
            (Verdict::Redirect, libbpf_rs::libbpf_sys::XDP_REDIRECT),
        ] {
            assert_eq!(v.action(), action);
        }
    }
}
