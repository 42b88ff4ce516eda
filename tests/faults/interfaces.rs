//! Interfaces that cannot do what is asked, or change under xdpctl.

use super::*;

// Case c09.
#[test]
#[ignore = "needs root"]
fn native_mode_is_refused_at_this_mtu() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ip", &["link", "set", "dev", &lab.outer, "mtu", "9000"]);
    common::run("ip", &["-n", &lab.ns, "link", "set", "dev", "veth0", "mtu", "9000"]);
    let dev = lab.outer.as_str();
    // The shipped programs are frags-aware and attach here (tests/jumbo.rs);
    // a plain SEC("xdp") program is what the kernel refuses at this MTU.
    let tmp = common::TempDir::new();
    let plain = common::build_bpf(&tmp.0, "plain", XDP_PASS_SRC);
    let load = ["load", "--dev", dev, "--obj", plain.to_str().unwrap(), "--progname", "foreign"];
    let err = refused(&[&load[..], &["--mode", "native"]].concat(), &[dev]);
    assert!(err.contains("native unsupported at this MTU") && err.contains("--skb-mode"), "{err}");
    assert_eq!(xdpctl(&load).status.code(), Some(30), "the attach exit code");

    // Native while generic is attached: the generic one is named.
    xdpctl_ok(&["load", "--dev", dev, "--skb-mode"]);
    let id = lab.attached()[0]["prog_id"].as_u64().unwrap().to_string();
    refused(&["load", "--dev", dev, "--native-mode"], &[dev, "xdp_pass", &id, "skb mode"]);
}

// Case c16.
#[test]
#[ignore = "needs root"]
fn an_interface_deleted_while_attached_and_made_again_starts_clean() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.clone();
    let before = System::settled();
    xdpctl_ok(&["load", "--dev", &dev]);
    let pins = lab.pin_dir();
    common::run("ip", &["link", "del", "dev", &dev]);
    assert!(pins.join("xdp_stats_map").exists(), "the kernel leaves pins alone");

    // Gone: status says what it left and how to clear it.
    let out = xdpctl(&["status", "--dev", &dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = one_line_note(&out, &[&dev, "interface was deleted", "xdp_stats_map"]);
    assert!(err.contains(&format!("xdpctl unload --dev {dev}")), "hint: {err}");

    // A new interface of the same name: reported again, and unload clears
    // the old pins without touching it.
    let peer = unique("xq");
    common::run("ip", &["link", "add", &dev, "type", "veth", "peer", "name", &peer]);
    let _gone = DelLink(dev.clone());
    let out = xdpctl(&["status", "--dev", &dev]);
    one_line_note(&out, &[&dev, "interface was deleted"]);
    let out = xdpctl_ok(&["unload", "--dev", &dev]);
    assert!(out.contains("leftovers"), "{out}");
    assert!(!pins.exists(), "stale pins removed");
    assert!(nix::net::if_::if_nametoindex(dev.as_str()).is_ok(), "the new interface stays");
    let out = xdpctl(&["status", "--dev", &dev]);
    assert!(stderr(&out).is_empty(), "nothing left to report: {}", stderr(&out));
    before.assert_unchanged("load, delete, re-create and unload");

    // Gone for good: unload by name clears what it left, exit 0.
    xdpctl_ok(&["load", "--dev", &dev, "--mode", "skb"]);
    common::run("ip", &["link", "del", "dev", &dev]);
    let out = xdpctl_ok(&["unload", "--dev", &dev]);
    assert!(out.contains("Removed leftovers") && out.contains("nothing to detach"), "{out}");
    assert!(!pins.exists());
    before.assert_unchanged("load, delete and unload by name");
}

// Case c18.
#[test]
#[ignore = "needs root"]
fn afxdp_refuses_a_queue_out_of_range() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    refused(&["afxdp", "--dev", dev, "--queue", "5"], &["--queue 5", dev, "ethtool -l"]);
    refused(&["afxdp", "--dev", dev, "--queue", "64"], &["64"]);
}

/// An interface renamed under its running program: status notes the
/// rename, `unload` by the old name points at the new one and removes
/// nothing, and `unload` by the new name needs no --force.
// Case s05.
#[test]
#[ignore = "needs root"]
fn a_renamed_interface_keeps_its_program() {
    let _s = serial();
    let lab = Lab::new();
    let (old, new) = (lab.outer.clone(), unique("xr"));
    let _back = DelLink(new.clone());
    let before = System::settled();
    xdpctl_ok(&["-q", "load", "--dev", &old]);
    let pin = lab.pin_dir().join("xdp_stats_map");
    for args in [["link", "set", &old, "down"], ["link", "set", &old, "name"]] {
        let mut args = args.to_vec();
        if args[3] == "name" {
            args.push(&new);
        }
        common::run("ip", &args);
    }
    common::run("ip", &["link", "set", &new, "up"]);

    let out = xdpctl(&["--json", "status", "--dev", &new]);
    let note = one_line_note(&out, &[&old, "renamed", &new, "xdp_pass"]);
    assert!(!note.contains("leftovers"), "{note}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["pin_dir"], lab.pin_dir().to_str().unwrap(), "{rows}");

    let held = System::settled();
    refused(&["unload", "--dev", &old], &[&old, &format!("xdpctl unload --dev {new}")]);
    held.assert_unchanged("unload by the old name");
    assert!(pin.exists());

    let out = xdpctl_ok(&["unload", "--dev", &new]);
    assert!(out.contains("Detached xdp_pass"), "{out}");
    assert!(!pin.exists(), "its pins went with it");
    common::run("ip", &["link", "set", &new, "down"]);
    common::run("ip", &["link", "set", &new, "name", &old]);
    common::run("ip", &["link", "set", &old, "up"]);
    before.assert_unchanged("load, rename, unload");
}

/// `features` only asks: on a veth with and without a program on its peer,
/// from either end, and on a bridge, it attaches, loads and pins nothing.
#[test]
#[ignore = "needs root"]
fn features_changes_nothing() {
    let _s = serial();
    let lab = Lab::new();
    let br = DelLink(unique("xfbr"));
    common::run("ip", &["link", "add", &br.0, "type", "bridge"]);
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let features = |cmd: &mut Command, dev: &str| {
        let out = cmd.args([common::XDPCTL, "features", "--dev", dev]).output().unwrap();
        assert!(out.status.success(), "features --dev {dev}: {}", stderr(&out));
    };
    let check = |what: &str| {
        let before = System::settled();
        features(&mut Command::new("env"), &lab.outer);
        features(Command::new("nsenter").arg(&netns), "veth0");
        features(&mut Command::new("env"), &br.0);
        before.assert_unchanged(what);
    };
    check("features of a veth pair and a bridge");
    let pins = Path::new("/sys/fs/bpf").join(unique("xf01"));
    let _rm = common::RemoveDir(&pins); // after the lab's own cleanup
    let pin_dir = pins.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "-q", "load", "--dev", "veth0", "--pin-dir", pin_dir],
    );
    check("features with a program on the peer");
    common::run("nsenter", &[&netns, common::XDPCTL, "-q", "unload", "--dev", "veth0"]);
}

/// `--mode hw` on a device that does not offload (a veth; this VM has no
/// netdevsim) is refused in one line before anything is loaded: exit 1, where
/// an attach refused after loading exits 30.
#[test]
#[ignore = "needs root"]
fn hw_mode_without_offload_is_refused_up_front() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let features =
        xdpctl::xdp::attach::features(ifindex(dev)).unwrap().expect("6.18 announces features");
    assert_eq!(features & xdpctl::net::features::HW_OFFLOAD, 0, "a veth offloads nothing");
    let names = [dev, "--mode hw", "no XDP hardware offload", "--mode native", "--mode skb"];
    for args in [
        &["load", "--dev", dev, "--mode", "hw"][..],
        &["load", "--dev", dev, "--progname", "xdp_drop", "--mode", "hw", "--force"],
    ] {
        refused(args, &names);
        assert_eq!(xdpctl(args).status.code(), Some(1), "refused before loading");
    }
    // A program running in another mode stays as it is.
    xdpctl_ok(&["load", "--dev", dev, "--mode", "skb"]);
    refused(&["load", "--dev", dev, "--mode", "hw", "--force"], &names);
    xdpctl_ok(&["unload", "--dev", dev]);
}

#[test]
#[ignore = "needs root"]
fn native_mode_unsupported_says_try_skb_mode_for_load_and_sample() {
    let _s = serial();
    // A bridge has no native XDP; ours is private to this test.
    let br = unique("xbr");
    common::run("ip", &["link", "add", &br, "type", "bridge"]);
    let _guard = DelLink(br.clone());
    // The default (auto) takes the best mode there is, skb here, and says so.
    let out = xdpctl(&["--json", "load", "--dev", &br]);
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(loaded["mode"], "skb", "{loaded}");
    let note = stderr(&out);
    assert!(note.contains("no native XDP") && note.contains("skb (generic) mode"), "{note}");
    assert_eq!(note.lines().count(), 1, "{note}");
    xdpctl_ok(&["unload", "--dev", &br]);
    // Native, asked for, is refused with the way out.
    let out = xdpctl(&["load", "--dev", &br, "--mode", "native"]);
    let err = one_line_naming(&out, 30, &br);
    assert!(err.contains("try --mode skb"), "{err}");
    let status = xdpctl_ok(&["--json", "status", "--dev", &br]);
    assert_eq!(status.trim(), "[]");
    assert!(!Path::new("/sys/fs/bpf").join(&br).exists());

    // The sampler fails the same way, after opening its file: it removes it.
    let file = std::env::temp_dir().join(format!("{}.pcap", unique("native")));
    let out = xdpctl(&["sample", "--dev", &br, "-m", "native", "-w", file.to_str().unwrap()]);
    let err = one_line_naming(&out, 30, &br);
    assert!(err.contains("try --mode skb"), "{err}");
    assert!(!file.exists(), "the file of a failed start is removed");
    let status = xdpctl_ok(&["--json", "status", "--dev", &br]);
    assert_eq!(status.trim(), "[]");

    // And the suggestion works.
    xdpctl_ok(&["load", "--dev", &br, "--mode", "skb"]);
    xdpctl_ok(&["unload", "--dev", &br]);
}

/// `stats` on an interface that is deleted meanwhile: its pins stay and
/// would read the same forever, so stats says so and ends, non-zero.
#[test]
#[ignore = "needs root"]
fn stats_ends_when_its_interface_is_deleted() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.clone();
    xdpctl_ok(&["load", "--dev", &dev]);
    let child = spawn_xdpctl(&["--json", "stats", "--dev", &dev, "--interval", "0.2"]);
    sleep(Duration::from_millis(500));
    common::run("ip", &["link", "del", "dev", &dev]);
    let out = crate::files::output_within(child, 5, "stats after its interface was deleted");
    let err = one_line_naming(&out, 1, &dev);
    assert!(err.contains("is gone"), "{err}");
    let samples = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(samples >= 2, "it sampled until then: {samples}");
    xdpctl_ok(&["unload", "--dev", &dev]);
}
