//! One module per subcommand; each owns its arguments and its output.

pub mod advice;
pub mod afxdp;
pub mod apply;
pub mod completions;
pub mod exporter;
pub mod features;
pub mod list;
pub mod load;
pub mod manpages;
pub mod redirect;
pub mod sample;
pub mod stats;
pub mod stats_all;
pub mod status;
pub mod top;
pub mod trace;
pub mod trafficgen;
pub mod unload;
