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
    /// The tutorial's names of the function (`--progname` takes them too).
    pub aliases: &'static [&'static str],
    pub summary: &'static str,
    /// The maps it uses: the only ones `load` creates (a test checks the
    /// kernel agrees), so loading xdp_pass does not build the redirect maps.
    /// `.rodata` is the object's constants (bpf_printk's format strings);
    /// every program has the stats helper's (`xdp_stats_map` and the
    /// sampling path's three, see obj::verdicts).
    pub maps: &'static [&'static str],
}

pub const DEFAULT: &str = "xdp_pass";

pub const PROGRAMS: &[Shipped] = &[
    Shipped {
        name: "xdp_pass",
        object: ObjectFile::XdpProgKern,
        lesson: "basic01-04",
        aliases: &["xdp_pass_func", "xdp_prog_simple", "xdp_stats1_func"],
        summary: "pass every packet on to the network stack; counts it under XDP_PASS",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_drop",
        object: ObjectFile::XdpProgKern,
        lesson: "basic02-04",
        aliases: &["xdp_drop_func"],
        summary: "drop every packet; counts it under XDP_DROP",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_abort",
        object: ObjectFile::XdpProgKern,
        lesson: "basic02-04",
        aliases: &["xdp_abort_func"],
        summary: "drop every packet as an error: counts it under XDP_ABORTED and \
                  fires the xdp:xdp_exception tracepoint",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_parser",
        object: ObjectFile::XdpProgKern,
        lesson: "packet01",
        aliases: &["xdp_parser_func"],
        summary: "drop ICMP and ICMPv6 echo requests with an even sequence number, pass \
                  the rest; parses up to 2 VLAN tags, IPv4/IPv6, ICMP/ICMPv6, UDP, TCP",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_port_rewrite",
        object: ObjectFile::XdpProgKern,
        lesson: "packet02",
        aliases: &["xdp_patch_ports_func"],
        summary: "UDP and TCP destination port minus one (IPv4, IPv6), checksum updated",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_vlan_swap",
        object: ObjectFile::XdpProgKern,
        lesson: "packet02",
        aliases: &["xdp_vlan_swap_func"],
        summary: "pop the outer VLAN tag if there is one, else push VLAN id 1",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_icmp_echo",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        aliases: &["xdp_icmp_echo_func"],
        summary: "answer unicast ICMP and ICMPv6 echo requests with XDP_TX (MACs and \
                  addresses swapped, checksum updated)",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_redirect",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        aliases: &["xdp_redirect_func"],
        summary: "redirect every packet to one interface and MAC, set with `xdpctl \
                  redirect` (passes until then)",
        maps: &[
            "redirect_target",
            "xdp_stats_map",
            ".data.xdpsample",
            "xdp_samples",
            "xdp_sample_counts",
        ],
    },
    Shipped {
        name: "xdp_redirect_map",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        aliases: &["xdp_redirect_map_func"],
        summary: "redirect packets from known source MACs through the tx_port devmap, \
                  rewriting the destination MAC; set with `xdpctl redirect`",
        maps: &[
            "redirect_params",
            "tx_port",
            "xdp_stats_map",
            ".data.xdpsample",
            "xdp_samples",
            "xdp_sample_counts",
        ],
    },
    Shipped {
        name: "xdp_router",
        object: ObjectFile::XdpProgKern,
        lesson: "packet03",
        aliases: &["xdp_router_func"],
        summary: "forward IPv4/IPv6 by the kernel's routes and neighbours (bpf_fib_lookup), \
                  TTL/hop limit minus one; no route to it: pass; blackhole, \
                  unreachable, prohibit: drop",
        maps: &["xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
    Shipped {
        name: "xdp_printk",
        object: ObjectFile::XdpProgKern,
        lesson: "tracing03",
        aliases: &[],
        summary: "pass every frame, logging its source MAC, destination MAC and protocol \
                  to the trace buffer (read them with `xdpctl trace printk`)",
        maps: &[".rodata", "xdp_stats_map", ".data.xdpsample", "xdp_samples", "xdp_sample_counts"],
    },
];

/// The rule every parsing program follows for frames cut short; `list` says it.
pub const TRUNCATED_RULE: &str = "Programs that parse headers (packet01-03) abort a frame too \
    short for its Ethernet header and VLAN tags (XDP_ABORTED, seen by `xdpctl trace`) and \
    pass anything cut short further in untouched.";

/// A shipped program by its short name or the tutorial's names for it
/// (`xdp_pass_func`, `xdp_prog_simple`), each also without `_func` (the
/// tutorial's section names: `--progsec xdp_patch_ports`).
pub fn find(name: &str) -> Result<&'static Shipped> {
    let short = name.strip_suffix("_func").unwrap_or(name);
    let known = |n: &str| n == name || n.strip_suffix("_func").unwrap_or(n) == short;
    PROGRAMS.iter().find(|p| known(p.name) || p.aliases.iter().any(|a| known(a))).ok_or_else(|| {
        anyhow!(
            "program {name:?} is not one xdpctl ships; valid names: {} (`xdpctl list` says what each does)",
            names().join(", ")
        )
    })
}

impl Shipped {
    /// Whether it sends frames back out of its interface with XDP_TX (on a
    /// veth they reach the peer only if that has an XDP program).
    pub fn transmits(&self) -> bool {
        self.name == "xdp_icmp_echo"
    }
}

pub fn names() -> Vec<&'static str> {
    PROGRAMS.iter().map(|p| p.name).collect()
}

/// The shipped name (or tutorial alias) most like `name`, if one is like it
/// at all: clap's own measure and threshold for its "did you mean".
pub fn nearest(name: &str) -> Option<&'static str> {
    PROGRAMS
        .iter()
        .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
        .map(|candidate| (strsim::jaro(name, candidate), candidate))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_names_resolve_to_short_names() {
        assert_eq!(find("xdp_pass").unwrap().name, "xdp_pass");
        assert_eq!(find("xdp_drop_func").unwrap().name, "xdp_drop");
        assert_eq!(find("xdp_abort_func").unwrap().name, "xdp_abort");
        // The lessons' own function and section names.
        assert_eq!(find("xdp_patch_ports_func").unwrap().name, "xdp_port_rewrite");
        assert_eq!(find("xdp_patch_ports").unwrap().name, "xdp_port_rewrite");
        assert_eq!(find("xdp_prog_simple").unwrap().name, "xdp_pass");
        assert_eq!(find("xdp_stats1").unwrap().name, "xdp_pass");
        assert_eq!(find("xdp_router_func").unwrap().name, "xdp_router");
    }

    #[test]
    fn no_alias_names_two_programs() {
        let mut seen = std::collections::BTreeMap::new();
        for p in PROGRAMS {
            for n in std::iter::once(&p.name).chain(p.aliases) {
                let short = n.strip_suffix("_func").unwrap_or(n);
                let first = *seen.entry(short).or_insert(p.name);
                assert_eq!(first, p.name, "{n} names both");
            }
        }
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
