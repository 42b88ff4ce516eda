//! The programs xdpctl ships: their short names, the tutorial's names, the object
//! each lives in, and one line on what each does.

use anyhow::{anyhow, Result};
use serde::Serialize;

/// The shipped BPF objects (one skeleton each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectFile {
    /// bpf/xdp_prog_kern.bpf.c
    XdpProgKern,
}

impl ObjectFile {
    pub fn name(self) -> &'static str {
        match self {
            ObjectFile::XdpProgKern => "xdp_prog_kern",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Shipped {
    /// Short name, also the C function and kernel program name.
    pub name: &'static str,
    pub object: ObjectFile,
    /// The tutorial lesson it comes from.
    pub lesson: &'static str,
    pub summary: &'static str,
    /// The maps it uses: the only ones `load` creates (a test checks the
    /// kernel agrees), so loading xdp_pass does not build the redirect maps.
    /// `.rodata` is the object's constants (bpf_printk's format strings).
    pub maps: &'static [&'static str],
}

pub const DEFAULT: &str = "xdp_pass";

pub const PROGRAMS: &[Shipped] = &[
    Shipped {
        name: "xdp_pass",
        object: ObjectFile::XdpProgKern,
        lesson: "basic01-04",
        summary: "pass every packet on to the network stack; counts it under XDP_PASS",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_drop",
        object: ObjectFile::XdpProgKern,
        lesson: "basic02-04",
        summary: "drop every packet; counts it under XDP_DROP",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_abort",
        object: ObjectFile::XdpProgKern,
        lesson: "basic02-04",
        summary: "drop every packet as an error: counts it under XDP_ABORTED and \
                  fires the xdp:xdp_exception tracepoint",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_parser",
        object: ObjectFile::XdpProgKern,
        lesson: "packet01",
        summary: "drop ICMP and ICMPv6 echo requests with an even sequence number, pass \
                  the rest; parses up to 2 VLAN tags, IPv4/IPv6, ICMP/ICMPv6, UDP, TCP",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_port_rewrite",
        object: ObjectFile::XdpProgKern,
        lesson: "packet02",
        summary: "UDP and TCP destination port minus one (IPv4, IPv6), checksum updated",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_vlan_swap",
        object: ObjectFile::XdpProgKern,
        lesson: "packet02",
        summary: "pop the outer VLAN tag if there is one, else push VLAN id 1",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_icmp_echo",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        summary: "answer unicast ICMP and ICMPv6 echo requests with XDP_TX (MACs and \
                  addresses swapped, checksum updated)",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_redirect",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        summary: "redirect every packet to one interface and MAC, set with `xdpctl \
                  redirect` (passes until then)",
        maps: &["redirect_target", "xdp_stats_map"],
    },
    Shipped {
        name: "xdp_redirect_map",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        summary: "redirect packets from known source MACs through the tx_port devmap, \
                  rewriting the destination MAC; set with `xdpctl redirect`",
        maps: &["redirect_params", "tx_port", "xdp_stats_map"],
    },
    Shipped {
        name: "xdp_router",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        summary: "forward IPv4/IPv6 by the kernel's routes and neighbours (bpf_fib_lookup), \
                  TTL/hop limit minus one; no route to it: pass; blackhole, \
                  unreachable, prohibit: drop",
        maps: &["xdp_stats_map"],
    },
    Shipped {
        name: "xdp_printk",
        object: ObjectFile::XdpProgKern,
        lesson: "tracing03",
        summary: "pass every frame, logging its source MAC, destination MAC and protocol \
                  to the trace buffer (read them with `xdpctl trace printk`)",
        maps: &[".rodata", "xdp_stats_map"],
    },
];

/// The rule every parsing program follows for frames cut short; `list` says it.
pub const TRUNCATED_RULE: &str = "Programs that parse headers (packet01-03) abort a frame too \
    short for its Ethernet header and VLAN tags (XDP_ABORTED, seen by `xdpctl trace`) and \
    pass anything cut short further in untouched.";

/// A shipped program by its short name or the tutorial's function name
/// (`xdp_pass_func`).
pub fn find(name: &str) -> Result<&'static Shipped> {
    let short = name.strip_suffix("_func").unwrap_or(name);
    PROGRAMS.iter().find(|p| p.name == short).ok_or_else(|| {
        anyhow!(
            "program {name:?} is not one xdpctl ships; valid names: {} (`xdpctl list` says what each does)",
            names().join(", ")
        )
    })
}

pub fn names() -> Vec<&'static str> {
    PROGRAMS.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_names_resolve_to_short_names() {
        assert_eq!(find("xdp_pass").unwrap().name, "xdp_pass");
        assert_eq!(find("xdp_drop_func").unwrap().name, "xdp_drop");
        assert_eq!(find("xdp_abort_func").unwrap().name, "xdp_abort");
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = find("xdp_nope").unwrap_err().to_string();
        assert!(err.contains("\"xdp_nope\""), "{err}");
        for p in PROGRAMS {
            assert!(err.contains(p.name), "{err}");
        }
    }
}
