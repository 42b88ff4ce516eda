//! The command line: what `main` parses and dispatches, in the library so
//! tests can drive the parser directly.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

use crate::caps::Cap;
use crate::cmd::{
    afxdp, apply, completions, exporter, features, load, manpages, redirect, sample, stats, status,
    top, trace, trafficgen, unload,
};
use crate::obj::catalog;

/// Load, attach, pin, inspect and measure XDP programs: the XDP tutorial as one tool.
#[derive(Parser, Debug)]
#[command(name = "xdpctl", version)]
pub struct Cli {
    /// Show libbpf's log, including the verifier's
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub verbose: bool,
    /// Print only errors (and data)
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Print data as JSON (one object per line for streams)
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load a program, attach it to an interface and pin its maps
    Load(load::Args),
    /// Detach the XDP program of an interface and remove its pins
    Unload(unload::Args),
    /// Show the XDP programs attached to interfaces
    Status(status::Args),
    /// List the programs xdpctl ships
    List,
    /// Show per-action packet and byte counters of an interface's program
    Stats(stats::Args),
    /// Watch every interface's XDP programs live: rates per action, ns per packet, CPU share
    Top(top::Args),
    /// Point a loaded xdp_redirect or xdp_redirect_map at an interface and MAC
    Redirect(redirect::Args),
    /// Count XDP exceptions per interface; `trace monitor|netdev|printk`: redirects, devices, printk
    Trace(trace::Args),
    /// Capture the frames an interface receives to a pcap/pcapng file, from XDP
    Sample(sample::Args),
    /// Receive a queue's frames in user space (AF_XDP) and answer ICMPv6 echo
    Afxdp(afxdp::Args),
    /// Send UDP frames out of an interface, at a set rate or flat out (no pktgen needed)
    Trafficgen(trafficgen::Args),
    /// What an interface can do with XDP before anything is attached: flags, MTU limits, queues
    Features(features::Args),
    /// Serve Prometheus metrics of the interfaces' XDP programs, read on each scrape
    Exporter(exporter::Args),
    /// Make the interfaces match a file of wanted attachments (/etc/xdpctl/xdpctl.toml)
    Apply(apply::Args),
    /// Print a completion script for bash, zsh or fish
    Completions(completions::Args),
    /// Write the man pages into a directory (`make build` does)
    #[command(hide = true)]
    Manpages(manpages::Args),
}

impl Command {
    /// The subcommand's name and the capabilities it cannot work without,
    /// as measured: each command works with exactly these and fails without
    /// any one of them (tests/faults/capabilities.rs, s06). Pins and records are root's
    /// files, so the commands that only read them need root's uid, no
    /// capability.
    pub fn needs(&self) -> (&'static str, &'static [Cap]) {
        use Cap::*;
        match self {
            // Telling whose program is attached, and whether a pin's map is
            // still in use, means reading other programs: CAP_SYS_ADMIN,
            // which also covers CAP_BPF and CAP_PERFMON for the verifier.
            Command::Load(_) => ("load", &[NetAdmin, SysAdmin]),
            Command::Unload(_) => ("unload", &[NetAdmin, SysAdmin]),
            // Loads and unloads.
            Command::Apply(_) => ("apply", &[NetAdmin, SysAdmin]),
            // XDP programs are networking programs: CAP_NET_ADMIN to load.
            // Capturing through a loaded program adds CAP_SYS_ADMIN, asked then.
            Command::Sample(_) => ("sample", &[Bpf, NetAdmin]),
            // An AF_XDP socket is a raw socket whose UMEM is locked memory;
            // its program does pointer arithmetic (CAP_PERFMON).
            Command::Afxdp(_) => ("afxdp", &[Bpf, NetAdmin, NetRaw, IpcLock, Perfmon]),
            // The generator's private network namespace needs CAP_SYS_ADMIN.
            Command::Trafficgen(_) => ("trafficgen", &[NetAdmin, SysAdmin]),
            Command::Trace(_) => ("trace", &[Bpf, Perfmon]),
            // Reads pinned maps: root's files, no capability.
            Command::Stats(_) => ("stats", &[]),
            // Programs by id and BPF_ENABLE_STATS take CAP_SYS_ADMIN; the
            // pins are root's files.
            Command::Top(_) => ("top", &[SysAdmin]),
            // Writes pinned maps, and asks for veth peers in other
            // namespaces, which takes CAP_NET_ADMIN.
            Command::Redirect(_) => ("redirect", &[NetAdmin]),
            // Work without privileges, telling less.
            Command::Status(_) => ("status", &[]),
            Command::List => ("list", &[]),
            // rtnetlink, the netdev family and ethtool's reads answer anyone;
            // a veth peer in another namespace then shows by index only.
            Command::Features(_) => ("features", &[]),
            // Pinned maps and records are root's files; naming attached
            // programs by id (and telling the initial namespace from
            // another) takes CAP_SYS_ADMIN.
            Command::Exporter(_) => ("exporter", &[SysAdmin]),
            // Text from the clap tree.
            Command::Completions(_) => ("completions", &[]),
            Command::Manpages(_) => ("manpages", &[]),
        }
    }
}

impl Cli {
    /// What the parser cannot tell alone, as a usage error: without --obj,
    /// `load --progname` must name a shipped program (with --obj it names a
    /// program of that object, whatever its name).
    pub fn check(&self) -> Result<(), clap::Error> {
        match &self.command {
            Command::Load(load::Args { progname: Some(name), obj: None, .. })
                if catalog::find(name).is_err() =>
            {
                Err(unknown_program(name))
            }
            _ => Ok(()),
        }
    }
}

/// clap's own "invalid value" error for `load --progname NAME`, with the
/// nearest shipped name as its tip and load's usage line.
fn unknown_program(name: &str) -> clap::Error {
    let mut root = Cli::command();
    root.build();
    let load = root.find_subcommand("load").cloned().unwrap_or_else(|| root.clone());
    let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(&load);
    err.insert(ContextKind::InvalidArg, ContextValue::String("--progname <NAME>".into()));
    err.insert(ContextKind::InvalidValue, ContextValue::String(name.into()));
    let names = catalog::names().into_iter().map(String::from).collect();
    err.insert(ContextKind::ValidValue, ContextValue::Strings(names));
    if let Some(near) = catalog::nearest(name) {
        err.insert(ContextKind::SuggestedValue, ContextValue::String(near.into()));
    }
    err.insert(ContextKind::Usage, ContextValue::StyledStr(load.clone().render_usage()));
    err
}
