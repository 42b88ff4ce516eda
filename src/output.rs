//! How results reach the user: human text, or JSON for scripts.

use anyhow::{Context, Result};
use serde::Serialize;

/// Global output switches, passed to every command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Print one JSON document on its own line (NDJSON when called per sample).
    pub fn json<T: Serialize>(&self, value: &T) -> Result<()> {
        let line = serde_json::to_string(value).context("encoding JSON output")?;
        println!("{line}");
        Ok(())
    }

    /// Informational text: dropped with --quiet and when JSON is the output.
    pub fn info(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            println!("{}", text.as_ref());
        }
    }
}
