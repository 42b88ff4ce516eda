//! The skeletons build.rs generates from `bpf/*.bpf.c`, and the `Plain` impls that
//! let user space read the structs of include/ out of map values.

use libbpf_rs::libbpf_sys;

/// basic02-04 and packet01-03: every program `load` ships and their maps.
pub mod xdp_prog {
    include!(concat!(env!("OUT_DIR"), "/xdp_prog_kern.skel.rs"));
}

/// tracing01-02: the xdp tracepoint programs of `xdpctl trace`.
pub mod trace_prog {
    include!(concat!(env!("OUT_DIR"), "/trace_prog_kern.skel.rs"));
}

/// Slots of xdp_stats_map, one per action: include/common_kern_user.h's
/// XDP_ACTION_MAX, defined the same way from the same UAPI enum (bindgen's
/// copy in libbpf-sys; the map's key stays a plain __u32 in BTF, which array
/// maps require).
pub const XDP_ACTION_MAX: u32 = libbpf_sys::XDP_REDIRECT + 1;

/// The XDP actions by name, indexed by their `enum xdp_action` value (a test
/// holds each name to the UAPI's value).
pub const XDP_ACTION_NAMES: [&str; XDP_ACTION_MAX as usize] =
    ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"];

/// `struct xdp_md`, an XDP program's context: a test run's ctx_in.
pub use xdp_prog::types::xdp_md as XdpMd;

// SAFETY: six u32 (24 bytes, align 4): no padding, no pointers, any bits valid.
unsafe impl plain::Plain for XdpMd {}

/// `md` as the bytes BPF_PROG_TEST_RUN takes for ctx_in.
pub fn ctx_bytes(md: &mut XdpMd) -> &mut [u8] {
    // SAFETY: XdpMd is Plain (no padding), so every byte of it is initialized
    // and any bytes written through the slice make a valid XdpMd.
    unsafe { plain::as_mut_bytes(md) }
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

/// Whose frames a slot of the monitor's redirect and devmap_xmit maps
/// counts: `enum monitor_source` (trace monitor).
pub use trace_prog::types::monitor_source as MonitorSource;

/// Key and per-CPU value of `exceptions` (trace): `struct exception_key`
/// and `struct exception_count`.
pub use trace_prog::types::{exception_count as ExceptionCount, exception_key as ExceptionKey};

// SAFETY: generated from BTF as a u64, an i32 and a u32: 16 bytes, no
// padding, no pointers, any bits valid.
unsafe impl plain::Plain for ExceptionKey {}
// SAFETY: a u64 and 16 name bytes (24 bytes, align 8): no padding, no
// pointers, any bits valid.
unsafe impl plain::Plain for ExceptionCount {}

/// `netdev_stats` key and value, a `netdev_events` record (trace netdev),
/// and `enum netdev_dir`, the direction either carries.
pub use trace_prog::types::{
    netdev_counts as NetdevCounts, netdev_dir as NetdevDir, netdev_event as NetdevEvent,
    netdev_key as NetdevKey,
};

// SAFETY: a u64, 16 name bytes, a netdev_dir (a transparent u32) and a u32
// (32 bytes, align 8): no padding, no pointers, any bits valid.
unsafe impl plain::Plain for NetdevKey {}
// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for NetdevCounts {}
// SAFETY: two u64, a u32, a netdev_dir (a transparent u32) and 16 name bytes
// (40 bytes, align 8): no padding, no pointers, any bits valid.
unsafe impl plain::Plain for NetdevEvent {}

/// Value of the monitor's per-CPU arrays (trace monitor).
pub use trace_prog::types::monitor_rec as MonitorRec;

// SAFETY: four u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for MonitorRec {}

/// tracing04: the packet sampler of `xdpctl sample`.
pub mod sample_prog {
    include!(concat!(env!("OUT_DIR"), "/xdp_sample_pkts_kern.skel.rs"));
}

/// The largest sample the program takes: SAMPLE_MAX_SNAPLEN of
/// include/sample_common.h.
pub const SAMPLE_MAX_SNAPLEN: u32 = sample_prog::types::sample_limits::SAMPLE_MAX_SNAPLEN.0;

/// A sample record's header and the sampler's per-CPU counters.
pub use sample_prog::types::{sample_counts as SampleCounts, sample_hdr as SampleHdr};

// SAFETY: a u64 and two u32 (16 bytes, align 8): no padding, no pointers, any
// bits valid.
unsafe impl plain::Plain for SampleHdr {}
// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for SampleCounts {}

/// The stats helper's sampling switch (the global `xdp_sample_ctl`, the one
/// entry of the map `.data.xdpsample`)
/// and the header of each record its `xdp_samples` perf buffers carry, from
/// include/sample_common.h.
pub use xdp_prog::types::{verdict_hdr as VerdictHdr, xdp_sample_ctl as SampleCtl};

// SAFETY: a u64 and four u32 (24 bytes, align 8): no padding, no pointers,
// any bits valid.
unsafe impl plain::Plain for SampleCtl {}
// SAFETY: a sample_hdr (a u64 and two u32) and four u32 (32 bytes, align
// 8): no padding, no pointers, any bits valid.
unsafe impl plain::Plain for VerdictHdr {}

/// advanced03: the AF_XDP redirect program of `xdpctl afxdp`.
pub mod af_xdp {
    include!(concat!(env!("OUT_DIR"), "/af_xdp_kern.skel.rs"));
}

/// Receive queues xdp_sock serves: XSK_MAX_QUEUES of include/af_xdp_common.h.
pub const XSK_MAX_QUEUES: u32 = af_xdp::types::xsk_limits::XSK_MAX_QUEUES.0;

/// Value of `xsk_counts`: the program's per-queue, per-CPU counters.
pub use af_xdp::types::xsk_queue_counts as XskQueueCounts;

// SAFETY: two u64: no padding, no pointers, any bits valid.
unsafe impl plain::Plain for XskQueueCounts {}

/// The live-frames source of `xdpctl trafficgen`.
pub mod trafficgen {
    include!(concat!(env!("OUT_DIR"), "/trafficgen.skel.rs"));
}

#[cfg(test)]
mod tests {
    use std::mem::{size_of, MaybeUninit};

    use libbpf_rs::skel::SkelBuilder;

    use super::*;

    #[test]
    fn action_names_sit_at_the_uapi_values() {
        for (action, name) in [
            (libbpf_sys::XDP_ABORTED, "XDP_ABORTED"),
            (libbpf_sys::XDP_DROP, "XDP_DROP"),
            (libbpf_sys::XDP_PASS, "XDP_PASS"),
            (libbpf_sys::XDP_TX, "XDP_TX"),
            (libbpf_sys::XDP_REDIRECT, "XDP_REDIRECT"),
        ] {
            assert_eq!(XDP_ACTION_NAMES[action as usize], name);
        }
    }

    /// The maps the C side sizes with the constants have the sizes the Rust
    /// side uses (opening a skeleton reads the object; no privilege needed).
    #[test]
    fn maps_are_sized_by_the_constants_rust_uses() {
        let mut storage = MaybeUninit::uninit();
        let open = xdp_prog::XdpProgKernSkelBuilder::default().open(&mut storage).unwrap();
        assert_eq!(open.maps.xdp_stats_map.max_entries(), XDP_ACTION_MAX);
        assert_eq!(XDP_ACTION_MAX, 5);

        let mut storage = MaybeUninit::uninit();
        let open = af_xdp::AfXdpKernSkelBuilder::default().open(&mut storage).unwrap();
        for map in [&open.maps.xsks_map, &open.maps.xsk_counts, &open.maps.xsk_alternate] {
            assert_eq!(map.max_entries(), XSK_MAX_QUEUES);
        }
        assert_eq!(XSK_MAX_QUEUES, 64);

        let mut storage = MaybeUninit::uninit();
        let open = xdp_prog::XdpProgKernSkelBuilder::default().open(&mut storage).unwrap();
        assert_eq!(open.maps.data_xdpsample.max_entries(), 1);
        assert_eq!(open.maps.data_xdpsample.value_size() as usize, size_of::<SampleCtl>());
        assert_eq!(open.maps.xdp_sample_counts.max_entries(), 1);
        assert_eq!(size_of::<SampleCtl>(), 24);
        assert_eq!(size_of::<VerdictHdr>(), 32);

        let data = size_of::<sample_prog::types::sample>() - size_of::<SampleHdr>();
        assert_eq!(data, SAMPLE_MAX_SNAPLEN as usize);
        assert_eq!(SAMPLE_MAX_SNAPLEN, 9216);
    }

    #[test]
    fn a_test_run_context_is_struct_xdp_md() {
        let mut md = XdpMd { data_end: 60, ingress_ifindex: 7, ..XdpMd::default() };
        assert_eq!(size_of::<XdpMd>(), 24);
        let bytes = ctx_bytes(&mut md);
        assert_eq!(bytes[4..8], 60u32.to_ne_bytes());
        assert_eq!(bytes[12..16], 7u32.to_ne_bytes());
    }
}
