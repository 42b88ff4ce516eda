//! `xdpctl completions SHELL`: a completion script for bash, zsh or fish,
//! generated from the clap tree, so it never lags behind the options.
//! `--progname` offers the shipped programs (its parser lists the catalog);
//! interface arguments are listed by the shell at completion time, so a veth
//! made a second ago completes too.

use anyhow::{ensure, Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Command, ValueEnum};

use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to print the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Stands for "the interfaces" in the generated script until it is replaced
/// by each shell's own way of listing them.
const INTERFACES: &str = "__xdpctl_interfaces__";

/// `root`: xdpctl's whole command line, which main owns.
pub fn run(args: &Args, root: &Command, out: Output) -> Result<()> {
    out.print(&script(args.shell, root)?)
}

/// The script for `shell`.
pub fn script(shell: Shell, root: &Command) -> Result<String> {
    let mut cmd = for_completion(root);
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(generator, &mut cmd, "xdpctl", &mut buf);
    let text = String::from_utf8(buf).context("the generated completion script is not UTF-8")?;
    // What each generator writes for a one-value list, and the shell's own
    // lister of interfaces: the current namespace's, as `ip link` shows.
    let (marked, lister) = match shell {
        Shell::Bash => (format!("\"{INTERFACES}\""), "\"$(ls /sys/class/net 2>/dev/null)\""),
        Shell::Zsh => (format!("({INTERFACES})"), "_net_interfaces"),
        Shell::Fish => (format!("\"{INTERFACES}\\t''\""), "\"(__fish_print_interfaces)\""),
    };
    // A newer clap_complete writing value lists differently must fail here
    // (and in the tests), not ship a script that offers the marker.
    ensure!(
        text.contains(&marked),
        "the {shell:?} completion script has no interface list to fill in"
    );
    let text = text.replace(&marked, lister);
    ensure!(!text.contains(INTERFACES), "the {shell:?} completion script kept a marker");
    Ok(text)
}

/// The tree as completion should see it: without the hidden options and
/// subcommands (the generators would offer them), and with the marker as
/// the only possible value of every interface argument (`value_name = "IF"`).
fn for_completion(cmd: &Command) -> Command {
    let args = cmd.get_arguments().filter(|a| !a.is_hide_set()).map(|a| {
        if a.get_value_names().is_some_and(|n| n.iter().any(|n| n == "IF")) {
            a.clone().value_parser(PossibleValuesParser::new([INTERFACES]))
        } else {
            a.clone()
        }
    });
    let subs = cmd.get_subcommands().filter(|s| !s.is_hide_set()).map(for_completion);
    let mut out = Command::new(cmd.get_name().to_owned()).args(args).subcommands(subs);
    // Fish and zsh show what each subcommand does; `-V` needs a version.
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shell's script has its interface lister and the shipped
    /// programs, and offers nothing hidden.
    #[test]
    fn scripts_list_interfaces_and_programs_but_nothing_hidden() {
        use clap::Args as _;
        // load's own options (hidden spellings included) and a hidden command.
        let root = Command::new("xdpctl")
            .subcommand(crate::cmd::load::Args::augment_args(Command::new("load")))
            .subcommand(Command::new("manpages").hide(true));
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell, &root).unwrap();
            assert!(text.contains("xdp_redirect_map"), "{shell:?}");
            // Printed as it is: nothing in it for the output's escaping.
            assert_eq!(crate::escape::controls(&text), text.as_str(), "{shell:?}");
            for hidden in ["manpages", "offload-mode", "filename"] {
                assert!(!text.contains(hidden), "{shell:?} offers {hidden}");
            }
        }
    }
}
