//! xdpctl: parse the command line, dispatch, turn errors into one line and an
//! exit status.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xdpctl::cmd::{afxdp, list, load, redirect, sample, stats, status, trace, trafficgen, unload};
use xdpctl::error::exit_code;
use xdpctl::logging;
use xdpctl::output::{is_broken_pipe, Output};

/// Load, attach, pin, inspect and measure XDP programs: the XDP tutorial as one tool.
#[derive(Parser, Debug)]
#[command(name = "xdpctl", version)]
struct Cli {
    /// Show libbpf's log, including the verifier's
    #[arg(short, long, global = true, help_heading = "Global options")]
    verbose: bool,
    /// Print only errors (and data)
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
    /// Print data as JSON (one object per line for streams)
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// Point a loaded xdp_redirect or xdp_redirect_map at an interface and MAC
    Redirect(redirect::Args),
    /// Count XDP exceptions (aborted packets) per interface and action
    Trace(trace::Args),
    /// Capture the frames an interface receives to a pcap/pcapng file, from XDP
    Sample(sample::Args),
    /// Receive a queue's frames in user space (AF_XDP) and answer ICMPv6 echo
    Afxdp(afxdp::Args),
    /// Send UDP frames out of an interface, at a set rate or flat out (no pktgen needed)
    Trafficgen(trafficgen::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let out = Output { json: cli.json, quiet: cli.quiet };
    let result = match &cli.command {
        Command::Load(args) => load::run(args, out),
        Command::Unload(args) => unload::run(args, out),
        Command::Status(args) => status::run(args, out),
        Command::List => list::run(out),
        Command::Stats(args) => stats::run(args, out),
        Command::Redirect(args) => redirect::run(args, out),
        Command::Trace(args) => trace::run(args, out),
        Command::Sample(args) => sample::run(args, out),
        Command::Afxdp(args) => afxdp::run(args, out),
        Command::Trafficgen(args) => trafficgen::run(args, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `xdpctl stats --json | head -1`: the reader has what it wanted.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xdpctl: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
