//! `xdpctl list`: the programs xdpctl ships and what each does.

use anyhow::Result;

use crate::catalog::PROGRAMS;
use crate::output::Output;

pub fn run(out: Output) -> Result<()> {
    if out.json {
        return out.json(&PROGRAMS);
    }
    let width = PROGRAMS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in PROGRAMS {
        println!("{:<width$}  {:<10}  {}", p.name, p.lesson, p.summary);
    }
    Ok(())
}
