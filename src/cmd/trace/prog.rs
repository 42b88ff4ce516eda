//! The one tracing object (trace_prog_kern) that every trace command loads a
//! part of, and the exceptions map that two of them read.

use std::collections::HashMap;

use anyhow::Result;
use libbpf_rs::skel::OpenSkel;
use libbpf_rs::MapCore;

use crate::obj::maps;
use crate::obj::object;
use crate::obj::skel::trace_prog::OpenTraceProgKernSkel;
use crate::obj::skel::{ExceptionCount, ExceptionKey};

/// A key of the exceptions map: namespace cookie, interface index, action.
pub(crate) type Key = (u64, i32, u32);

/// One key's events summed over CPUs, and the interface's name as the
/// program read it (empty if it could not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counted {
    pub count: u64,
    pub name: Vec<u8>,
}

/// Load only the programs `progs` of the tracing object and create only the
/// maps `maps`: each command uses its own part of it.
pub(crate) fn only(open: &mut OpenTraceProgKernSkel, progs: &[&str], maps: &[&str]) -> Result<()> {
    for mut prog in open.open_object_mut().progs_mut() {
        let keep = progs.iter().any(|p| prog.name() == *p);
        prog.set_autoload(keep);
    }
    object::keep_maps(open.open_object_mut(), maps)
}

/// Every key's events, summed over CPUs, with the name a CPU recorded.
pub(crate) fn read_counts(map: &impl MapCore) -> Result<HashMap<Key, Counted>> {
    let all = maps::sum_all::<ExceptionKey, ExceptionCount>(map, "the exceptions map")?;
    Ok(all
        .into_iter()
        .map(|(key, total)| {
            let counted = Counted { count: total.count, name: c_name(&total.name) };
            ((key.netns, key.ifindex, key.action), counted)
        })
        .collect())
}

/// A kernel name buffer's bytes, up to the first NUL.
pub(crate) fn c_name(raw: &[i8]) -> Vec<u8> {
    raw.iter().map(|&b| b as u8).take_while(|&b| b != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_end_at_the_first_nul() {
        let mut raw = [0i8; 16];
        for (slot, b) in raw.iter_mut().zip(b"veth0") {
            *slot = *b as i8;
        }
        assert_eq!(c_name(&raw), b"veth0");
        assert_eq!(c_name(&[b'x' as i8; 16]), b"xxxxxxxxxxxxxxxx");
    }
}
