//! Reading `xdp_stats_map` from its pin, as basic04's separate stats program
//! does: one record per XDP action, summed over CPUs, all of them fetched
//! with one BPF_MAP_LOOKUP_BATCH.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use libbpf_rs::libbpf_sys::{self, bpf_map_batch_opts};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

use crate::obj::maps::{self, Counters};
use crate::obj::skel::DataRec;
use crate::sampler::Rate;

pub const MAP_NAME: &str = "xdp_stats_map";

/// enum xdp_action, in key order.
pub use crate::obj::skel::XDP_ACTION_NAMES as ACTIONS;

pub fn action_name(key: u32) -> String {
    ACTIONS.get(key as usize).map_or_else(|| format!("XDP_ACTION_{key}"), |s| s.to_string())
}

/// Why a map is not a stats map, in words naming it (`what`): its layout
/// is not struct datarec per action, or it has more entries than actions
/// (its size is not ours to allocate).
fn misfit(map: &MapHandle, what: &str) -> Option<String> {
    let value = size_of::<DataRec>() as u32;
    if !matches!(map.map_type(), MapType::PercpuArray | MapType::Array)
        || map.key_size() != 4
        || map.value_size() != value
    {
        return Some(format!(
            "{what} is a {:?} map with {}-byte keys and {}-byte values, not a stats map \
             (PERCPU_ARRAY of struct datarec: 4-byte keys, {value}-byte values)",
            map.map_type(),
            map.key_size(),
            map.value_size()
        ));
    }
    if map.max_entries() as usize > ACTIONS.len() {
        return Some(format!(
            "{what} has {} entries, more than the {} XDP actions: not a stats map \
             (xdp_stats_map has one entry per action)",
            map.max_entries(),
            ACTIONS.len()
        ));
    }
    None
}

/// A pinned map named like the stats map that has another layout: why.
#[derive(Debug)]
pub struct Misfit(pub String);

/// An open stats map; `id` tells whether the pin still refers to it.
/// One reading of every action slot.
pub struct Reading {
    pub at: Instant,
    pub recs: Vec<DataRec>,
}

impl Reading {
    /// Each action's totals and its rates over the period since `prev`.
    pub fn rates_since(&self, prev: &Reading) -> (f64, Vec<(String, Rate)>) {
        let period = self.at.duration_since(prev.at).as_secs_f64();
        let rows = self
            .recs
            .iter()
            .zip(&prev.recs)
            .enumerate()
            .map(|(key, (c, p))| {
                let r = Rate::new((p.rx_packets, p.rx_bytes), (c.rx_packets, c.rx_bytes), period);
                (action_name(key as u32), r)
            })
            .collect();
        (period, rows)
    }
}

pub struct StatsMap {
    map: MapHandle,
    pub id: u32,
    /// Values per key: one per possible CPU for a per-CPU map.
    copies: usize,
    /// Room for every key and value of one batch lookup, reused.
    keys: Vec<u32>,
    values: Vec<u8>,
}

impl StatsMap {
    /// Open the map pinned at `path` and check it has the stats layout.
    pub fn open(path: &Path) -> Result<Self> {
        let map = maps::open_pinned(path)?;
        Self::new(map, &path.display().to_string())
    }

    /// The map pinned at `path` if it has the stats layout; if it has
    /// another (a map of that name in someone else's object), why not, as a
    /// fact apart from errors: a view of many interfaces skips that one.
    pub fn open_fitting(path: &Path) -> Result<std::result::Result<Self, Misfit>> {
        let map = maps::open_pinned(path)?;
        match misfit(&map, &path.display().to_string()) {
            Some(why) => Ok(Err(Misfit(why))),
            None => Self::fitted(map).map(Ok),
        }
    }

    /// Use `map` (described as `what` in errors) once it has the stats layout.
    pub fn new(map: MapHandle, what: &str) -> Result<Self> {
        if let Some(why) = misfit(&map, what) {
            bail!(why);
        }
        Self::fitted(map)
    }

    /// `map`, checked by misfit() to have the stats layout, ready to read.
    fn fitted(map: MapHandle) -> Result<Self> {
        let value = size_of::<DataRec>();
        let id = map.info().context("reading map info")?.info.id;
        let copies =
            if map.map_type() == MapType::PercpuArray { maps::possible_cpus()? } else { 1 };
        let entries = map.max_entries() as usize;
        // value_size is 16 (checked above): already the 8-byte per-CPU stride.
        let values = vec![0u8; entries * copies * value];
        Ok(StatsMap { map, id, copies, keys: vec![0; entries], values })
    }

    /// One summed record per action slot, with when it was read.
    pub fn reading(&mut self) -> Result<Reading> {
        Ok(Reading { at: Instant::now(), recs: self.read()? })
    }

    /// One summed record per action slot.
    pub fn read(&mut self) -> Result<Vec<DataRec>> {
        match self.read_batch() {
            Ok(count) => self.sum_batch(count),
            // Kernels before 5.6 have no batch ops for arrays: one key at a time.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                (0..self.map.max_entries()).map(|key| self.read_one(key)).collect()
            }
            Err(e) => Err(e).with_context(|| format!("reading {MAP_NAME}")),
        }
    }

    /// Fetch every key's values into `keys` and `values`; how many came.
    fn read_batch(&mut self) -> io::Result<u32> {
        let opts =
            bpf_map_batch_opts { sz: size_of::<bpf_map_batch_opts>() as _, ..Default::default() };
        let mut count = self.map.max_entries();
        let mut next_key = 0u32;
        // SAFETY: `keys` holds max_entries u32 keys and `values` max_entries
        // × copies values of value_size bytes, what the kernel writes for
        // `count` = max_entries; `next_key` takes the 4-byte batch cursor;
        // all live across the call, and `opts` is correctly sized.
        let ret = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                self.map.as_fd().as_raw_fd(),
                std::ptr::null_mut(),
                (&raw mut next_key).cast(),
                self.keys.as_mut_ptr().cast(),
                self.values.as_mut_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        // ENOENT: the batch reached the end of the map, as it does here.
        if ret < 0 && ret != -libc::ENOENT {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(count)
    }

    /// The first `count` keys of the last batch, their values summed.
    fn sum_batch(&self, count: u32) -> Result<Vec<DataRec>> {
        let mut recs = vec![DataRec::default(); self.map.max_entries() as usize];
        let per_key = self.copies * size_of::<DataRec>();
        for (key, values) in
            self.keys.iter().zip(self.values.chunks_exact(per_key)).take(count as usize)
        {
            let Some(sum) = recs.get_mut(*key as usize) else { continue };
            for bytes in values.chunks_exact(size_of::<DataRec>()) {
                sum.add(&maps::decode(bytes, "a stats record")?);
            }
        }
        Ok(recs)
    }

    fn read_one(&self, key: u32) -> Result<DataRec> {
        let key_bytes = key.to_ne_bytes();
        let what = format!("{} of {MAP_NAME}", action_name(key));
        if self.map.map_type() == MapType::PercpuArray {
            return maps::sum(&self.map, &key_bytes, &what);
        }
        let value = self
            .map
            .lookup(&key_bytes, MapFlags::ANY)
            .with_context(|| format!("reading {what}"))?;
        value.map_or_else(|| Ok(DataRec::default()), |v| maps::decode(&v, "a stats record"))
    }
}
