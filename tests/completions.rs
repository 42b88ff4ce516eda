//! Issue 20, item 3: the completion scripts and man pages made from the clap
//! tree. Completion is driven the way bash drives it: the script sourced,
//! COMP_WORDS and COMP_CWORD set, the function it registered called; the
//! man pages are rendered by man-db with groff's warnings on.

#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::process::Command;

use lab::{TempDir, XDPCTL};

/// What bash offers for the command line `words`, whose last word is the one
/// being completed.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"source <("$XDPCTL" completions bash) || exit 1
        complete -p xdpctl >/dev/null || exit 1
        COMP_WORDS=({words})
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        COMP_LINE="${{COMP_WORDS[*]}}"
        COMP_POINT=${{#COMP_LINE}}
        fn=$(complete -p xdpctl | sed -E 's/.* -F ([^ ]+) .*/\1/')
        "$fn" xdpctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env("XDPCTL", XDPCTL)
        .output()
        .expect("running bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands() {
    assert_eq!(bash_complete(&["xdpctl", "lo"]), ["load"]);
    assert_eq!(bash_complete(&["xdpctl", "trace", "mon"]), ["monitor"]);
    // The hidden man page writer is not offered.
    assert_eq!(bash_complete(&["xdpctl", "m"]), Vec::<String>::new());
}

#[test]
fn bash_completes_shipped_program_names() {
    assert_eq!(bash_complete(&["xdpctl", "load", "--progname", "xdp_d"]), ["xdp_drop"]);
    assert_eq!(bash_complete(&["xdpctl", "load", "--progsec", "xdp_redirect"]).len(), 2);
}

/// Interfaces come from the system at completion time: every one in
/// /sys/class/net, for each way of naming the option.
#[test]
fn bash_completes_interfaces() {
    let mut all: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("listing /sys/class/net")
        .map(|e| e.expect("an interface").file_name().to_string_lossy().into_owned())
        .collect();
    all.sort();
    for words in [
        &["xdpctl", "load", "--dev", ""][..],
        &["xdpctl", "stats", "-d", ""],
        &["xdpctl", "redirect", "--dev", "x", "--redirect-dev", ""],
    ] {
        let mut offered = bash_complete(words);
        offered.sort();
        assert_eq!(offered, all, "{words:?}");
    }
    assert_eq!(bash_complete(&["xdpctl", "status", "--dev", "l"]), ["lo"]);
}

/// zsh and fish get their scripts too, with their own interface listers.
#[test]
fn zsh_and_fish_scripts() {
    for (shell, lister) in [("zsh", "_net_interfaces"), ("fish", "__fish_print_interfaces")] {
        let out = Command::new(XDPCTL).args(["completions", shell]).output().expect("xdpctl");
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(lister), "{shell} lists interfaces with {lister}");
        assert!(text.contains("xdp_drop"), "{shell} offers the programs");
    }
}

/// A page for xdpctl and each visible subcommand, each rendered by man
/// without a warning.
#[test]
fn man_pages_render_without_warnings() {
    let dir = TempDir::new();
    let out = Command::new(XDPCTL).args(["-q", "manpages"]).arg(&dir.0).output().expect("xdpctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("listing the pages")
        .map(|e| e.expect("a page").file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in ["xdpctl.1", "xdpctl-load.1", "xdpctl-completions.1", "xdpctl-trace-netdev.1"] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("manpages")), "hidden: {pages:?}");
    for page in &pages {
        render(&dir.0.join(page));
    }
}

fn render(page: &Path) {
    let out = Command::new("man")
        .args(["-l", "--warnings"])
        .arg(page)
        .env("MANWIDTH", "80")
        .output()
        .expect("running man (man-db)");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "{}: {warnings}", page.display());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SYNOPSIS") && text.contains("xdpctl"), "{}: {text}", page.display());
}
