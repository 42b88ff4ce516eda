//! Typed access to BPF maps, the one place that turns their bytes into the
//! skeletons' `types` structs and back: values decoded and encoded through
//! `plain`, per-CPU values read and summed, pinned maps opened and checked.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use plain::Plain;

use crate::obj::skel::{
    DataRec, ExceptionCount, MonitorRec, NetdevCounts, SampleCounts, XskQueueCounts,
};

/// `bytes` as a `T` (a map key, value or ring-buffer record); `what` names
/// it in the error. Copied out: map bytes carry no alignment guarantee.
pub fn decode<T: Plain + Default>(bytes: &[u8], what: &str) -> Result<T> {
    let mut value = T::default();
    plain::copy_from_bytes(&mut value, bytes)
        .map_err(|e| anyhow!("{what} of {} bytes: {e:?}", bytes.len()))?;
    Ok(value)
}

/// `value`'s bytes, to write into a map.
pub fn encode<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: every `Plain` impl of this crate (skel.rs) is for a struct
    // whose fields fill it without padding, so every byte is initialised.
    unsafe { plain::as_bytes(value) }
}

/// Possible CPUs: how many values a per-CPU map holds per key.
pub fn possible_cpus() -> Result<usize> {
    libbpf_rs::num_possible_cpus().context("counting possible CPUs")
}

/// Counters a per-CPU map keeps one of per CPU, and how two of them add up.
pub trait Counters: Plain + Default {
    fn add(&mut self, other: &Self);
}

/// Every CPU's value of `key` in the per-CPU `map`, decoded; none if the key
/// is absent. `what` names the map in errors.
pub fn per_cpu<T: Plain + Default>(map: &impl MapCore, key: &[u8], what: &str) -> Result<Vec<T>> {
    let values = map
        .lookup_percpu(key, MapFlags::ANY)
        .with_context(|| format!("reading {what}"))?
        .unwrap_or_default();
    values.iter().map(|v| decode(v, &format!("{what} value"))).collect()
}

/// The values of `key` in the per-CPU `map`, summed over CPUs (zero if the
/// key is absent).
pub fn sum<T: Counters>(map: &impl MapCore, key: &[u8], what: &str) -> Result<T> {
    Ok(sum_of(&per_cpu::<T>(map, key, what)?))
}

/// `values` added up.
pub fn sum_of<T: Counters>(values: &[T]) -> T {
    let mut total = T::default();
    for v in values {
        total.add(v);
    }
    total
}

/// Every key of `map` with its per-CPU values summed, keys decoded as `K`;
/// a key deleted between listing and lookup is left out.
pub fn sum_all<K: Plain + Default, T: Counters>(
    map: &impl MapCore,
    what: &str,
) -> Result<Vec<(K, T)>> {
    let mut out = Vec::new();
    for raw_key in map.keys() {
        let key = decode(&raw_key, &format!("{what} key"))?;
        let Some(values) = map
            .lookup_percpu(&raw_key, MapFlags::ANY)
            .with_context(|| format!("reading {what}"))?
        else {
            continue;
        };
        let values: Vec<T> =
            values.iter().map(|v| decode(v, &format!("{what} value"))).collect::<Result<_>>()?;
        out.push((key, sum_of(&values)));
    }
    Ok(out)
}

/// The map pinned at `path`, or an error that says what is there instead.
pub fn open_pinned(path: &Path) -> Result<MapHandle> {
    let err = match MapHandle::from_pinned_path(path) {
        // A program or link pin opens too, and its info reads as nonsense.
        Ok(map) if is_map(&map) => return Ok(map),
        Ok(_) => bail!("{} is not a pinned map (a program or link pin?)", path.display()),
        Err(e) => e,
    };
    let denied =
        || anyhow!("{}: permission denied: pins are root's; run xdpctl as root", path.display());
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("nothing is pinned at {}", path.display())
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(denied()),
        Ok(m) if m.is_dir() => bail!("{} is a directory, not a pinned map", path.display()),
        _ if err.kind() == libbpf_rs::ErrorKind::PermissionDenied => Err(denied()),
        _ => Err(err).with_context(|| {
            format!("{} is not a pinned map (a program or link pin?)", path.display())
        }),
    }
}

/// Whether `map`'s fd is a BPF map's, as its /proc link says.
fn is_map(map: &MapHandle) -> bool {
    let link = format!("/proc/self/fd/{}", map.as_fd().as_raw_fd());
    fs::read_link(link).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf-map")
}

// Counters wrap as the kernel's do; a sum never fails.

impl Counters for u64 {
    fn add(&mut self, other: &Self) {
        *self = self.wrapping_add(*other);
    }
}

impl Counters for DataRec {
    fn add(&mut self, other: &Self) {
        self.rx_packets = self.rx_packets.wrapping_add(other.rx_packets);
        self.rx_bytes = self.rx_bytes.wrapping_add(other.rx_bytes);
    }
}

impl Counters for XskQueueCounts {
    fn add(&mut self, other: &Self) {
        self.redirected = self.redirected.wrapping_add(other.redirected);
        self.passed = self.passed.wrapping_add(other.passed);
    }
}

impl Counters for SampleCounts {
    fn add(&mut self, other: &Self) {
        self.seen = self.seen.wrapping_add(other.seen);
        self.lost = self.lost.wrapping_add(other.lost);
    }
}

impl Counters for NetdevCounts {
    fn add(&mut self, other: &Self) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

impl Counters for MonitorRec {
    fn add(&mut self, other: &Self) {
        self.processed = self.processed.wrapping_add(other.processed);
        self.dropped = self.dropped.wrapping_add(other.dropped);
        self.info = self.info.wrapping_add(other.info);
        self.err = self.err.wrapping_add(other.err);
    }
}

impl Counters for ExceptionCount {
    /// Counts add; the name is the first CPU's that wrote one (only the CPU
    /// that made the entry does).
    fn add(&mut self, other: &Self) {
        self.count = self.count.wrapping_add(other.count);
        if self.name[0] == 0 {
            self.name = other.name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_bytes_are_refused() {
        let rec = DataRec { rx_packets: 3, rx_bytes: 180 };
        let back: DataRec = decode(encode(&rec), "a stats record").unwrap();
        assert_eq!((back.rx_packets, back.rx_bytes), (3, 180));
        let err = decode::<DataRec>(&[0; 8], "a stats record").unwrap_err();
        assert!(err.to_string().starts_with("a stats record of 8 bytes"), "{err}");
    }

    #[test]
    fn sums_add_every_cpu_and_keep_the_first_name() {
        let mut named = ExceptionCount { count: 2, ..Default::default() };
        named.name[0] = b'v' as i8;
        let sum = sum_of(&[ExceptionCount { count: 1, ..Default::default() }, named]);
        assert_eq!((sum.count, sum.name[0]), (3, b'v' as i8));
        assert_eq!(sum_of(&[u64::MAX, 2]), 1);
    }
}
