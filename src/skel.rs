//! The skeletons build.rs generates from `bpf/*.bpf.c`, and the `Plain` impls that
//! let user space read the structs of include/ out of map values.

/// basic02-04: `xdp_pass`, `xdp_drop`, `xdp_abort` and `xdp_stats_map`.
pub mod xdp_prog {
    include!(concat!(env!("OUT_DIR"), "/xdp_prog_kern.skel.rs"));
}

/// Value of `xdp_stats_map`: `struct datarec` of include/common_kern_user.h.
pub use xdp_prog::types::datarec as DataRec;

// SAFETY: `datarec` is generated from BTF as two u64 fields: no padding, no
// pointers, and every bit pattern is a valid value.
unsafe impl plain::Plain for DataRec {}
