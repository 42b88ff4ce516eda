//! Capabilities: missing ones are named, and the named ones suffice.

use super::*;

// Case c13.
#[test]
#[ignore = "needs root"]
fn missing_capabilities_are_named() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for (args, caps) in [
        (&["load", "--dev", dev][..], &["CAP_NET_ADMIN", "CAP_SYS_ADMIN"][..]),
        (&["unload", "--dev", dev], &["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]),
        (&["sample", "--dev", dev, "-w", "-"], &["CAP_BPF", "CAP_NET_ADMIN"]),
        (&["afxdp", "--dev", dev], &["CAP_NET_RAW", "CAP_IPC_LOCK"]),
        (&["trafficgen", "--dev", dev], &["CAP_SYS_ADMIN"]),
        (&["trace", "-c", "1"], &["CAP_BPF", "CAP_PERFMON"]),
        (&["redirect", "--dev", dev, "--redirect-dev", dev], &["CAP_NET_ADMIN"]),
    ] {
        let before = System::settled();
        let out = Command::new("setpriv")
            .args(["--inh-caps=-all", "--bounding-set=-all", common::XDPCTL])
            .args(args)
            .output()
            .unwrap();
        let err = one_line(&out, caps);
        assert!(err.contains("run it as root"), "hint: {err}");
        before.assert_unchanged(&args.join(" "));
    }
}

/// setpriv's name of a capability.
fn setpriv_name(cap: xdpctl::caps::Cap) -> String {
    cap.to_string().trim_start_matches("CAP_").to_lowercase()
}

/// `xdpctl args` with exactly the capabilities `caps` (and root's uid); a
/// command that runs until stopped gets SIGINT after `run_for`.
fn with_caps(caps: &[String], args: &[&str], run_for: Option<&str>) -> Output {
    let bounding: String = caps.iter().map(|c| format!(",+{c}")).collect();
    let mut cmd = Command::new("timeout");
    cmd.args(["--preserve-status", "-s", "INT", run_for.unwrap_or("20")]);
    cmd.args(["setpriv", "--inh-caps=-all", &format!("--bounding-set=-all{bounding}")]);
    cmd.arg(common::XDPCTL).args(args).output().unwrap()
}

/// Each command works with exactly the capabilities it names, and without
/// any one of them is refused up front with one line naming it: the set is
/// what the kernel asks, not a guess. `status` works for a normal user.
// Case s06.
#[test]
#[ignore = "needs root"]
fn each_command_works_with_exactly_the_capabilities_it_names() {
    let _s = serial();
    let (lab, other) = (Lab::new(), Lab::new());
    let dev = lab.outer.as_str();
    let textdir = common::TempDir::new();
    let textfile = textdir.0.to_str().unwrap();
    std::fs::set_permissions(&textdir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    // trafficgen sends to the lab's inner end, which must take the frames.
    lab.exec(&["ethtool", "-K", "veth0", "gro", "on"]);
    let load = |args: &[&str]| xdpctl_ok(&[&["-q", "load", "--dev", dev][..], args].concat());
    let unload = || xdpctl_ok(&["-q", "unload", "--dev", dev, "--force"]);
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let nothing: Setup = Box::new(|| {});
    let xdpctl_prog: Setup = Box::new(|| {
        load(&[]);
    });
    let redirect_prog: Setup = Box::new(|| {
        load(&["--progname", "xdp_redirect_map"]);
    });
    let cases: Vec<(Vec<&str>, &Setup, Option<&str>)> = vec![
        (vec!["load", "--dev", dev, "--progname", "xdp_parser"], &nothing, None),
        (vec!["load", "--dev", dev, "--force"], &xdpctl_prog, None),
        (vec!["unload", "--dev", dev], &xdpctl_prog, None),
        (vec!["stats", "--dev", dev, "-c", "1", "-i", "0.05"], &xdpctl_prog, None),
        (vec!["top", "-c", "1", "-i", "0.05"], &xdpctl_prog, None),
        (vec!["redirect", "--dev", dev, "--redirect-dev", &other.outer], &redirect_prog, None),
        (vec!["sample", "--dev", dev, "-w", "-"], &nothing, Some("1")),
        (vec!["afxdp", "--dev", dev], &nothing, Some("1")),
        (vec!["trafficgen", "--dev", dev, "-n", "100"], &nothing, None),
        (vec!["trace", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["trace", "monitor", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["trace", "netdev", "-c", "1", "-i", "0.05"], &nothing, None),
        (vec!["status"], &xdpctl_prog, None),
        (vec!["features", "--dev", dev], &xdpctl_prog, None),
        (vec!["exporter", "--textfile", textfile], &xdpctl_prog, None),
    ];
    for (args, setup, run_for) in cases {
        let cli = xdpctl::cli::Cli::try_parse_from([&["xdpctl"][..], &args].concat()).unwrap();
        let needed: Vec<String> = cli.command.needs().1.iter().map(|c| setpriv_name(*c)).collect();
        let what = format!("xdpctl {} with {needed:?}", args.join(" "));
        setup();
        let out = with_caps(&needed, &args, run_for);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        unload();
        for drop in &needed {
            setup();
            let fewer: Vec<String> = needed.iter().filter(|c| *c != drop).cloned().collect();
            let before = System::settled();
            let out = with_caps(&fewer, &args, run_for);
            let err = one_line(&out, &[&format!("CAP_{}", drop.to_uppercase())]);
            assert!(err.contains("run it as root"), "{what} without {drop}: {err}");
            before.assert_unchanged(&format!("{what} without {drop}"));
            unload();
        }
    }

    // A normal user sees what netlink tells: the program, not its name.
    load(&[]);
    let id = lab.attached()[0]["prog_id"].clone();
    let out = as_nobody("exec \"$1\" --json status --dev \"$2\"", &[common::XDPCTL, dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["prog_id"], id, "{rows}");
    assert_eq!(rows[0]["name"], serde_json::Value::Null, "{rows}");
    one_line_note(&out, &["not root", "netlink"]);
    unload();
}
