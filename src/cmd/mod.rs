//! One module per subcommand; each owns its arguments and its output.

pub mod afxdp;
pub mod features;
pub mod list;
pub mod load;
pub mod redirect;
pub mod sample;
pub mod stats;
pub mod stats_all;
pub mod status;
pub mod trace;
pub mod trafficgen;
pub mod unload;

use anyhow::Result;

/// `--interval`: seconds between samples, as a positive finite number.
pub(crate) fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0.01 and 86400")),
    }
}
