//! xdpctl: the XDP tutorial rebuilt as one tool. `main.rs` only parses the command
//! line; everything it runs lives here, where tests and benchmarks reach it too.

pub mod bpffs;
pub mod caps;
pub mod capture;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod echo;
pub mod error;
pub mod escape;
pub mod ethtool;
pub mod frame;
pub mod iface;
pub mod leftovers;
pub mod lock;
pub mod logging;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod object;
pub mod offload;
pub mod outfile;
pub mod output;
pub mod pins;
pub mod private;
pub mod record;
pub mod skel;
pub mod spool;
pub mod statsmap;
pub mod stop;
pub mod swap;
pub mod tracefs;
pub mod trafficgen;
pub mod xdp;
pub mod xsk;
