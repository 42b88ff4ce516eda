//! How results reach the user: human text, or JSON for scripts. Text goes
//! out with control characters escaped: names in it are escaped where they
//! are formatted (crate::escape), and this catches whatever else slips by.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::escape;

/// Global output switches, passed to every command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Data the user asked for. A failed write (a closed pipe: `| head`) ends
    /// the command; `main` treats a broken pipe as a quiet exit.
    pub fn print(&self, text: &str) -> Result<()> {
        write_stdout(&escape::controls(text))
    }

    /// Whether text output goes to a terminal, where a live view redraws in
    /// place; in a pipe it stays line-based.
    pub fn live(&self) -> bool {
        !self.json && io::stdout().is_terminal()
    }

    /// Data the user asked for, drawn over the `lines` lines printed last
    /// (a live view on a terminal): the cursor goes back up over them, and
    /// what was below is cleared.
    pub fn redraw(&self, text: &str, lines: usize) -> Result<()> {
        let up = if lines > 0 { format!("\x1b[{lines}A\r\x1b[J") } else { String::new() };
        write_stdout(&format!("{up}{}", escape::controls(text)))
    }

    /// One JSON document on its own line (NDJSON when called per sample).
    pub fn json<T: Serialize>(&self, value: &T) -> Result<()> {
        let mut line = serde_json::to_string(value).context("encoding JSON output")?;
        line.push('\n');
        write_stdout(&escape::json(&line))
    }

    /// Informational text: dropped with --quiet and when JSON is the output.
    /// Best effort: what it reports has already happened.
    pub fn info(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            let _ = writeln!(io::stdout(), "{}", escape::controls(text.as_ref()));
        }
    }
}

impl Output {
    /// A notice in the middle of a data stream: on stderr when stdout carries
    /// JSON, so NDJSON stays clean.
    pub fn note(&self, msg: &str) {
        if self.json {
            say(msg);
        } else {
            self.info(msg);
        }
    }
}

impl Output {
    /// Something the user should know that is not an error, on stderr;
    /// dropped with --quiet.
    pub fn warn(&self, msg: &str) {
        if !self.quiet {
            say(msg);
        }
    }

    /// The error a command ended with, as one line; never silenced.
    pub fn error(&self, err: &anyhow::Error) {
        say(&format!("error: {err:#}"));
    }
}

// The one way to stderr. Every line xdpctl writes there passes through
// `say` or `stderr`, so the `xdpctl:` prefix and the escaping of control
// characters are decided here; --quiet and --json are decided by the
// `Output` methods above, or by the caller that has no `Output` (a lower
// module warning about what it had to leave behind says so whatever the
// switches).

/// `xdpctl: msg` on its own line on stderr, control characters escaped.
/// Best effort, like `eprintln!`: what it reports has already happened.
pub fn say(msg: &str) {
    stderr(&format!("xdpctl: {msg}\n"));
}

/// `text` on stderr as it is (no prefix, no newline added), control
/// characters but line breaks escaped: libbpf's log, the verifier's tail, a
/// summary that goes where the capture does not.
pub fn stderr(text: &str) {
    let _ = io::stderr().lock().write_all(escape::controls(text).as_bytes());
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("writing to stdout")
}

/// Whether `err` comes from writing into a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `n` and `noun`, which takes an "s" unless n is 1: "1 packet", "2 packets".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Now as Unix time in seconds, for JSON samples.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
