//! Command-line input: random, malformed, usage errors.

use super::*;

/// `redirect` with malformed MACs or an unknown interface: one line each, and
/// neither the system nor the program's tx_port map changes.
// Case c17.
#[test]
#[ignore = "needs root"]
fn redirect_refuses_malformed_macs_and_unknown_interfaces() {
    let _s = serial();
    let (left, right) = (Lab::new(), Lab::new());
    xdpctl_ok(&["load", "--dev", &left.outer, "--progname", "xdp_redirect_map"]);
    let tx_port = left.pin_dir().join("tx_port");
    let dump = || common::run("bpftool", &["map", "dump", "pinned", tx_port.to_str().unwrap()]);
    let before = dump();
    for flag in ["--src-mac", "--dest-mac"] {
        for bad in
            ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "0xa:b:c:d:e:f", "aa:bb:cc:dd:ee:ffjunk", ""]
        {
            let args =
                ["redirect", "--dev", &left.outer, "--redirect-dev", &right.outer, flag, bad];
            let err = refused(&args, &[&format!("{flag}: {bad:?}")]);
            assert!(err.contains("six two-digit hex octets"), "hint: {err}");
        }
    }
    let nowhere = unique("xnone");
    refused(
        &["redirect", "--dev", &left.outer, "--redirect-dev", &nowhere],
        &[&format!("--redirect-dev {nowhere}")],
    );
    assert_eq!(before.stdout, dump().stdout, "tx_port is as before");
    // No redirect program loaded on the right lab: nothing to write into.
    refused(
        &["redirect", "--dev", &right.outer, "--redirect-dev", &left.outer],
        &[&right.outer, "xdp_redirect_map"],
    );
    xdpctl_ok(&["-q", "unload", "--dev", &left.outer]);
}

/// Random arguments through the real parser: errors, never a panic.
#[test]
fn random_arguments_never_panic_the_parser() {
    let words = [
        "load",
        "unload",
        "status",
        "list",
        "stats",
        "redirect",
        "trace",
        "sample",
        "afxdp",
        "trafficgen",
        "features",
        "printk",
        "netdev",
        "monitor",
        "--dev",
        "-d",
        "--progname",
        "--obj",
        "--mode",
        "native",
        "skb",
        "hw",
        "auto",
        "-N",
        "-S",
        "-A",
        "--force",
        "-F",
        "-M",
        "--pin-dir",
        "--id",
        "-i",
        "--interval",
        "-c",
        "--count",
        "-w",
        "-s",
        "--snaplen",
        "-f",
        "pcapng",
        "-B",
        "--queue",
        "-Q",
        "--zero-copy",
        "--copy",
        "--frames",
        "--batch",
        "-r",
        "--rate",
        "-n",
        "-t",
        "--duration",
        "--size",
        "--udp-dst",
        "--dst-mac",
        "--src-ip",
        "0",
        "-1",
        "65536",
        "1e309",
        "NaN",
        "inf",
        "5000-4000",
        "0-65535",
        "aa:bb",
        "::1",
        "",
        "-",
        "--",
        "lo",
        "é",
        "\u{0}",
        "--json",
        "-q",
        "-v",
        "99999999999999999999",
    ];
    // A fixed-seed xorshift: the same sequence every run, reproducible.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50_000 {
        let n = (next() % 8) as usize;
        let args: Vec<&str> = std::iter::once("xdpctl")
            .chain((0..n).map(|_| words[(next() % words.len() as u64) as usize]))
            .collect();
        let parsed = std::panic::catch_unwind(|| {
            if let Ok(cli) = xdpctl::cli::Cli::try_parse_from(&args) {
                let _ = cli.command.needs();
            }
        });
        assert!(parsed.is_ok(), "the parser panicked on {args:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let _s = serial();
    for args in [
        &["load", "--dev", "lo", "--skb-mode", "--native-mode"][..],
        &["load", "--dev", "lo", "--mode", "turbo"],
        &["stats", "--dev", "lo", "--interval", "0"],
        &["stats", "--dev", "lo", "--interval", "soon"],
        &["load"],
    ] {
        let out = xdpctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

/// Usage errors keep clap's help (issue 20, item 4): the one-line error
/// first, then clap's "did you mean" and the usage line of the command meant.
#[test]
fn usage_errors_suggest_the_near_name_and_show_usage() {
    let _s = serial();
    let cases: [(&[&str], &str, &str, &str); 4] = [
        (
            &["lod", "--dev", "lo"],
            "'lod'",
            "subcommand exists: 'load'",
            "xdpctl [OPTIONS] <COMMAND>",
        ),
        (&["load", "--device", "lo"], "'--device'", "argument exists: '--dev'", "xdpctl load "),
        (
            &["load", "--dev", "lo", "--progname", "xdp_dorp"],
            "'xdp_dorp'",
            "value exists: 'xdp_drop'",
            "xdpctl load ",
        ),
        // The tutorial's spelling of the option, and of the program.
        (
            &["load", "--dev", "lo", "--progsec", "xdp_drop_fnuc"],
            "'xdp_drop_fnuc'",
            "value exists: 'xdp_drop_func'",
            "xdpctl load ",
        ),
    ];
    for (args, wrong, tip, usage) in cases {
        let out = xdpctl(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "error, tip, usage: {err}");
        assert!(lines[0].starts_with("xdpctl: error: ") && lines[0].contains(wrong), "{err}");
        assert!(lines[0].contains("`xdpctl --help`"), "the one line keeps its hint: {err}");
        assert_eq!(lines[1], format!("  tip: a similar {tip}"), "{err}");
        let shown = lines[2].strip_prefix("  usage: ").unwrap_or_else(|| panic!("usage: {err}"));
        assert!(shown.starts_with(usage), "{err}");
    }
    // A name far from every shipped one: no guess, the list is there.
    let err = stderr(&xdpctl(&["load", "--dev", "lo", "--progname", "firewall"]));
    assert!(!err.contains("tip:") && err.contains("xdp_pass, xdp_drop"), "{err}");
    // With --obj, --progname names a program of that object: any name parses.
    let out = xdpctl(&["load", "--dev", "lo", "--obj", "/nonexistent.o", "--progname", "mine"]);
    assert_ne!(out.status.code(), Some(2), "not a usage error: {}", stderr(&out));
}
