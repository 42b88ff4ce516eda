//! `xdpctl list`: the programs xdpctl ships and what each does.

use anyhow::Result;

use crate::obj::catalog::{PROGRAMS, TRUNCATED_RULE};
use crate::output::Output;

pub fn run(out: Output) -> Result<()> {
    if out.json {
        return out.json(&PROGRAMS);
    }
    let width = PROGRAMS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut text: String = PROGRAMS
        .iter()
        .map(|p| {
            let tutorial = match p.aliases {
                [] => String::new(),
                names => format!(" (tutorial: {})", names.join(", ")),
            };
            format!("{:<width$}  {:<10}  {}{tutorial}\n", p.name, p.lesson, p.summary)
        })
        .collect();
    text.push('\n');
    text.push_str(TRUNCATED_RULE);
    text.push('\n');
    out.print(&text)
}
