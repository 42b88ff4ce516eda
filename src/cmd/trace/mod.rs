//! `xdpctl trace`: the tracing family. Without a subcommand it counts XDP
//! exceptions (tracing01); `printk`, `netdev` and `monitor` are its
//! siblings. Every one loads its part of the one tracing object (`prog`).

pub mod exceptions;
pub mod monitor;
pub mod netdev;
pub mod printk;
mod prog;

use anyhow::Result;

use crate::output::Output;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub what: Option<What>,
    #[command(flatten)]
    pub sampling: exceptions::Args,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Read the trace buffer, decoding the lines of xdp_printk (tracing03)
    Printk(printk::Args),
    /// Packets and bytes each device sends and receives (net:net_dev_queue,
    /// net:netif_receive_skb)
    Netdev(netdev::Args),
    /// Every xdp tracepoint: redirects and their errors, exceptions, cpumap
    /// and devmap, per CPU (tracing02)
    Monitor(monitor::Args),
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    match &args.what {
        Some(What::Printk(a)) => printk::run(a, out),
        Some(What::Netdev(a)) => netdev::run(a, out),
        Some(What::Monitor(a)) => monitor::run(a, out),
        None => exceptions::run(&args.sampling, out),
    }
}
