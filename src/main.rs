//! xdpctl: parse the command line, dispatch, turn errors into one line and an
//! exit status.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use xdpctl::caps;
use xdpctl::cli::{Cli, Command};
use xdpctl::cmd::{
    advice, afxdp, apply, completions, exporter, features, list, load, manpages, redirect, sample,
    stats, status, top, trace, trafficgen, unload,
};
use xdpctl::error::exit_code;
use xdpctl::obj::logging;
use xdpctl::output::{self, is_broken_pipe, Output};

fn main() -> ExitCode {
    let cli = match Cli::try_parse().and_then(|cli| cli.check().map(|()| cli)) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    logging::init(cli.verbose);
    let out = Output { json: cli.json, quiet: cli.quiet };
    let (name, needed) = cli.command.needs();
    let result = caps::require(name, needed).and_then(|()| match &cli.command {
        Command::Load(args) => load::run(args, out),
        Command::Unload(args) => unload::run(args, out),
        Command::Status(args) => status::run(args, out),
        Command::List => list::run(out),
        Command::Stats(args) => stats::run(args, out),
        Command::Top(args) => top::run(args, out),
        Command::Redirect(args) => redirect::run(args, out),
        Command::Trace(args) => trace::run(args, out),
        Command::Sample(args) => sample::run(args, out),
        Command::Afxdp(args) => afxdp::run(args, out),
        Command::Trafficgen(args) => trafficgen::run(args, out),
        Command::Features(args) => features::run(args, out),
        Command::Exporter(args) => exporter::run(args, out),
        Command::Apply(args) => apply::run(args, out),
        Command::Completions(args) => completions::run(args, &Cli::command(), out),
        Command::Manpages(args) => manpages::run(args, Cli::command(), out),
    });
    match result.map_err(advice::phrase_all) {
        Ok(()) => ExitCode::SUCCESS,
        // `xdpctl stats --json | head -1`: the reader has what it wanted.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

/// clap's usage errors as one line, like every other error (exit 2), then
/// clap's tip ("a similar subcommand exists: 'load'") and the usage line of
/// the (sub)command, indented; help and version go out as clap prints them.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    // Paragraphs: what is wrong, then tips, then usage, then "For more
    // information"; clap marks each by its first word.
    let text = err.render().to_string();
    let mut paragraphs = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty());
    let what: Vec<&str> = paragraphs.next().unwrap_or_default().lines().map(str::trim).collect();
    let what = what.join(" ");
    let what = what.strip_prefix("error: ").unwrap_or(&what);
    output::say(&format!("error: {what}; `xdpctl --help` lists the commands and options"));
    let mut rest = String::new();
    for paragraph in paragraphs.filter(|p| p.starts_with("tip:") || p.starts_with("Usage:")) {
        for line in paragraph.lines() {
            let line = line.trim();
            let line = match line.strip_prefix("Usage: ") {
                Some(usage) => format!("usage: {usage}"),
                // Further usages of the same command line up under the first.
                None if paragraph.starts_with("Usage:") => format!("       {line}"),
                None => line.to_owned(),
            };
            rest.push_str(&format!("  {line}\n"));
        }
    }
    output::stderr(&rest);
    ExitCode::from(2)
}
