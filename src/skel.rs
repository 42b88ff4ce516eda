//! The skeletons build.rs generates from `bpf/*.bpf.c`, and the `Plain` impls that
//! let user space read the structs of include/ out of map values.

/// basic02-04 and packet01-03: every program `load` ships and their maps.
pub mod xdp_prog {
    include!(concat!(env!("OUT_DIR"), "/xdp_prog_kern.skel.rs"));
}

/// tracing01-02: the xdp tracepoint programs of `xdpctl trace`.
pub mod trace_prog {
    include!(concat!(env!("OUT_DIR"), "/trace_prog_kern.skel.rs"));
}

/// Value of `xdp_stats_map`: `struct datarec` of include/common_kern_user.h.
pub use xdp_prog::types::datarec as DataRec;

// SAFETY: `datarec` is generated from BTF as two u64 fields: no padding, no
// pointers, and every bit pattern is a valid value.
unsafe impl plain::Plain for DataRec {}

/// Value of `redirect_target` (xdp_redirect): `struct redirect_target`.
pub use xdp_prog::types::redirect_target as RedirectTarget;

// SAFETY: generated from BTF as a u32 and two byte arrays that fill the struct
// exactly (4 + 6 + 2 bytes): no padding, no pointers, any bits valid.
unsafe impl plain::Plain for RedirectTarget {}

/// Key and per-CPU value of `exceptions` (trace): `struct exception_key`
/// and `struct exception_count`.
pub use trace_prog::types::{exception_count as ExceptionCount, exception_key as ExceptionKey};

// SAFETY: generated from BTF as a u64, an i32 and a u32: 16 bytes, no
// padding, no pointers, any bits valid.
unsafe impl plain::Plain for ExceptionKey {}
// SAFETY: a u64 and 16 name bytes (24 bytes, align 8): no padding, no
// pointers, any bits valid.
unsafe impl plain::Plain for ExceptionCount {}

/// `netdev_stats` key and value, and a `netdev_events` record (trace netdev).
pub use trace_prog::types::{
    netdev_counts as NetdevCounts, netdev_event as NetdevEvent, netdev_key as NetdevKey,
};

// SAFETY: a u64, 16 name bytes and two u32 (32 bytes, align 8): no padding,
// no pointers, any bits valid.
unsafe impl plain::Plain for NetdevKey {}
// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for NetdevCounts {}
// SAFETY: two u64, two u32 and 16 name bytes (40 bytes, align 8): no
// padding, no pointers, any bits valid.
unsafe impl plain::Plain for NetdevEvent {}

/// Value of the monitor's per-CPU arrays (trace monitor).
pub use trace_prog::types::monitor_rec as MonitorRec;

// SAFETY: four u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for MonitorRec {}

/// tracing04: the packet sampler of `xdpctl sample`.
pub mod sample_prog {
    include!(concat!(env!("OUT_DIR"), "/xdp_sample_pkts_kern.skel.rs"));
}

/// A sample record's header and the sampler's per-CPU counters.
pub use sample_prog::types::{sample_counts as SampleCounts, sample_hdr as SampleHdr};

// SAFETY: a u64 and two u32 (16 bytes, align 8): no padding, no pointers, any
// bits valid.
unsafe impl plain::Plain for SampleHdr {}
// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for SampleCounts {}

/// advanced03: the AF_XDP redirect program of `xdpctl afxdp`.
pub mod af_xdp {
    include!(concat!(env!("OUT_DIR"), "/af_xdp_kern.skel.rs"));
}

/// Value of `xsk_counts`: the program's per-queue, per-CPU counters.
pub use af_xdp::types::xsk_queue_counts as XskQueueCounts;

// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for XskQueueCounts {}

/// The live-frames source of `xdpctl trafficgen`.
pub mod trafficgen {
    include!(concat!(env!("OUT_DIR"), "/trafficgen.skel.rs"));
}
