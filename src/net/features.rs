//! What native XDP can do on a device before anything is attached: the
//! feature flags the kernel announces (enum netdev_xdp_act) by name, and the
//! largest MTU a native program takes where the kernel's rule is known. The
//! kernel has no query for that limit: each driver decides when a program
//! is attached, and for veth the rule is computable from this kernel's own
//! sizes.

use anyhow::{Context, Result};
use libbpf_rs::btf::types::{Array, Struct};
use libbpf_rs::btf::{Btf, HasSize};

pub const BASIC: u64 = 1 << 0;
pub const REDIRECT: u64 = 1 << 1;
pub const NDO_XMIT: u64 = 1 << 2;
pub const XSK_ZEROCOPY: u64 = 1 << 3;
pub const HW_OFFLOAD: u64 = 1 << 4;
pub const RX_SG: u64 = 1 << 5;
pub const NDO_XMIT_SG: u64 = 1 << 6;

/// Each flag with its name in the kernel's netdev family (what `ynl` prints).
const FLAGS: [(u64, &str); 7] = [
    (BASIC, "basic"),
    (REDIRECT, "redirect"),
    (NDO_XMIT, "ndo-xmit"),
    (XSK_ZEROCOPY, "xsk-zerocopy"),
    (HW_OFFLOAD, "hw-offload"),
    (RX_SG, "rx-sg"),
    (NDO_XMIT_SG, "ndo-xmit-sg"),
];

/// The names of the flags set in `flags`, in bit order; a bit this xdpctl
/// does not know (a newer kernel's) as `bit7`.
pub fn names(flags: u64) -> Vec<String> {
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|b| flags & b != 0)
        .map(|b| match FLAGS.iter().find(|(f, _)| *f == b) {
            Some((_, name)) => name.to_string(),
            None => format!("bit{}", b.trailing_zeros()),
        })
        .collect()
}

/// The names of the flags xdpctl knows that `flags` lacks.
pub fn lacking(flags: u64) -> Vec<&'static str> {
    FLAGS.iter().filter(|(f, _)| flags & f == 0).map(|(_, n)| *n).collect()
}

/// The largest MTU of a veth's peer at which a native program attaches to
/// the veth, as drivers/net/veth.c (veth_xdp_set) computes it: a frame
/// must fit one page with the XDP headroom before it and the
/// skb_shared_info after it; a program declaring frags (`xdp.frags`) takes
/// up to MAX_SKB_FRAGS more pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethLimit {
    pub page: u32,
    /// XDP_PACKET_HEADROOM + NET_IP_ALIGN (VETH_XDP_HEADROOM).
    pub headroom: u32,
    /// sizeof(struct skb_shared_info), aligned to the cache line (SKB_DATA_ALIGN).
    pub shared_info: u32,
    /// The peer's Ethernet header (its hard_header_len).
    pub header: u32,
    /// MAX_SKB_FRAGS: the length of skb_shared_info's frags array.
    pub max_frags: u32,
}

impl VethLimit {
    pub fn without_frags(&self) -> u32 {
        self.page.saturating_sub(self.headroom + self.shared_info + self.header)
    }

    pub fn with_frags(&self) -> u32 {
        self.without_frags().saturating_add(self.page.saturating_mul(self.max_frags))
    }
}

/// XDP_PACKET_HEADROOM, fixed in the kernel's UAPI-visible behaviour.
const XDP_PACKET_HEADROOM: u32 = 256;
const ETH_HLEN: u32 = 14;

/// This architecture's NET_IP_ALIGN and cache line (SMP_CACHE_BYTES), which
/// no interface tells. Known for x86_64 only (arch/x86: NET_IP_ALIGN 0,
/// X86_L1_CACHE_SHIFT 6); elsewhere the limit is reported unknown.
fn arch_sizes() -> Option<(u32, u32)> {
    cfg!(target_arch = "x86_64").then_some((0, 64))
}

/// veth's limits on this kernel, from the page size and the kernel's own
/// BTF (/sys/kernel/btf/vmlinux); None where a size cannot be known.
pub fn veth_limit() -> Result<Option<VethLimit>> {
    let Some((ip_align, cache_line)) = arch_sizes() else { return Ok(None) };
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u32::try_from(page).context("reading the page size")?;
    let btf = match Btf::from_vmlinux() {
        Ok(btf) => btf,
        // A kernel without BTF: the sizes are not to be had.
        Err(_) => return Ok(None),
    };
    let Some((size, max_frags)) = shared_info(&btf) else { return Ok(None) };
    Ok(Some(VethLimit {
        page,
        headroom: XDP_PACKET_HEADROOM + ip_align,
        shared_info: size.div_ceil(cache_line) * cache_line,
        header: ETH_HLEN,
        max_frags,
    }))
}

/// sizeof(struct skb_shared_info) and the length of its frags array.
fn shared_info(btf: &Btf<'_>) -> Option<(u32, u32)> {
    let info: Struct<'_> = btf.type_by_name("skb_shared_info")?;
    let frags = info.iter().find(|m| m.name.is_some_and(|n| n == "frags"))?;
    let frags: Array<'_> = btf.type_by_id(frags.ty)?;
    Some((u32::try_from(info.size()).ok()?, u32::try_from(frags.capacity()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_as_the_netdev_family_names_them() {
        assert_eq!(names(0), Vec::<String>::new());
        assert_eq!(names(BASIC | REDIRECT | RX_SG), ["basic", "redirect", "rx-sg"]);
        assert_eq!(names(0x7f).len(), 7);
        assert_eq!(names(1 << 7 | NDO_XMIT), ["ndo-xmit", "bit7"]);
        assert_eq!(lacking(0x7f), Vec::<&str>::new());
        assert_eq!(
            lacking(BASIC | REDIRECT | RX_SG | XSK_ZEROCOPY | HW_OFFLOAD),
            ["ndo-xmit", "ndo-xmit-sg"]
        );
    }

    #[test]
    fn the_veth_limit_is_a_page_less_headroom_and_shared_info() {
        // x86_64 with 4 KiB pages and 17 frags: 4096 - 256 - 320 - 14.
        let l =
            VethLimit { page: 4096, headroom: 256, shared_info: 320, header: 14, max_frags: 17 };
        assert_eq!(l.without_frags(), 3506);
        assert_eq!(l.with_frags(), 3506 + 17 * 4096);
    }

    #[test]
    fn this_kernel_has_the_sizes() {
        let l = veth_limit().unwrap().expect("BTF and a known architecture");
        assert!(l.max_frags >= 17 && l.shared_info % 64 == 0, "{l:?}");
    }
}
