//! Reading `xdp_stats_map` from its pin, as basic04's separate stats program
//! does: one record per XDP action, summed over CPUs.

use std::mem::size_of;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

use crate::skel::DataRec;

pub const MAP_NAME: &str = "xdp_stats_map";

/// enum xdp_action, in key order.
pub const ACTIONS: [&str; 5] = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"];

pub fn action_name(key: u32) -> String {
    ACTIONS.get(key as usize).map_or_else(|| format!("XDP_ACTION_{key}"), |s| s.to_string())
}

/// An open stats map; `id` tells whether the pin still refers to it.
pub struct StatsMap {
    map: MapHandle,
    pub id: u32,
}

impl StatsMap {
    /// Open the map pinned at `path` and check it has the stats layout.
    pub fn open(path: &Path) -> Result<Self> {
        let map = MapHandle::from_pinned_path(path)
            .with_context(|| format!("opening pinned map {}", path.display()))?;
        Self::new(map, &path.display().to_string())
    }

    /// Use `map` (described as `what` in errors) once it has the stats layout.
    pub fn new(map: MapHandle, what: &str) -> Result<Self> {
        let value = size_of::<DataRec>() as u32;
        if !matches!(map.map_type(), MapType::PercpuArray | MapType::Array)
            || map.key_size() != 4
            || map.value_size() != value
        {
            bail!(
                "{what} is a {:?} map with {}-byte keys and {}-byte values, not a stats map \
                 (PERCPU_ARRAY of struct datarec: 4-byte keys, {value}-byte values)",
                map.map_type(),
                map.key_size(),
                map.value_size()
            );
        }
        let id = map.info().context("reading map info")?.info.id;
        Ok(StatsMap { map, id })
    }

    /// One summed record per action slot.
    pub fn read(&self) -> Result<Vec<DataRec>> {
        (0..self.map.max_entries()).map(|key| self.read_one(key)).collect()
    }

    fn read_one(&self, key: u32) -> Result<DataRec> {
        let key_bytes = key.to_ne_bytes();
        let values = if self.map.map_type() == MapType::PercpuArray {
            self.map.lookup_percpu(&key_bytes, MapFlags::ANY)
        } else {
            self.map.lookup(&key_bytes, MapFlags::ANY).map(|v| v.map(|v| vec![v]))
        }
        .with_context(|| format!("reading {} of {MAP_NAME}", action_name(key)))?;
        let mut sum = DataRec::default();
        for bytes in values.unwrap_or_default() {
            // Copy out: a Vec<u8> carries no alignment guarantee for u64 fields.
            let mut rec = DataRec::default();
            plain::copy_from_bytes(&mut rec, &bytes)
                .map_err(|e| anyhow::anyhow!("decoding a stats record: {e:?}"))?;
            sum.rx_packets = sum.rx_packets.wrapping_add(rec.rx_packets);
            sum.rx_bytes = sum.rx_bytes.wrapping_add(rec.rx_bytes);
        }
        Ok(sum)
    }
}
