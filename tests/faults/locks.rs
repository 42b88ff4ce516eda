//! Locks and holders: racing loads, a pinned bpf_link.

use super::*;

// Case c08.
#[test]
#[ignore = "needs root"]
fn a_pinned_bpf_link_holds_the_interface() {
    let _s = serial();
    let lab = Lab::new();
    let pin = Path::new("/sys/fs/bpf").join(unique("xlink"));
    let _rm = RemoveFile(pin.clone());
    {
        let mut storage = std::mem::MaybeUninit::uninit();
        let skel = XdpProgKernSkelBuilder::default().open(&mut storage).unwrap().load().unwrap();
        let ifindex = nix::net::if_::if_nametoindex(lab.outer.as_str()).unwrap();
        let mut link = skel.progs.xdp_pass.attach_xdp(ifindex as i32).unwrap();
        link.pin(&pin).unwrap();
    } // the pin alone holds it now
    let dev = lab.outer.as_str();
    for args in [
        &["load", "--dev", dev][..],
        &["load", "--dev", dev, "--force"],
        &["unload", "--dev", dev],
        &["unload", "--dev", dev, "--force"],
    ] {
        let err = refused(args, &[dev, "BPF link", "Can't replace active BPF XDP link"]);
        assert!(err.contains("bpftool link show"), "hint: {err}");
    }
}

// Case c15.
#[test]
#[ignore = "needs root"]
fn racing_loads_one_wins_the_rest_are_told_why() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for force in [false, true] {
        let mut args = vec!["load", "--dev", dev];
        if force {
            args.push("--force");
        }
        let children: Vec<_> = (0..20)
            .map(|_| {
                Command::new(common::XDPCTL)
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> =
            children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        if force {
            assert!(won >= 1, "with --force at least one succeeds");
        } else {
            assert_eq!(won, 1, "exactly one wins");
        }
        let mut busy = 0;
        for out in outs.iter().filter(|o| !o.status.success()) {
            let err = one_line(out, &[dev]);
            assert!(err.contains("busy") || err.contains("already has an XDP program"), "{err}");
            busy += usize::from(err.contains("busy"));
        }
        eprintln!("force={force}: {won} won, {busy} busy");
        // One program, its pins, nothing staged or orphaned.
        assert_eq!(lab.attached().len(), 1);
        let mut pins: Vec<String> = std::fs::read_dir(lab.pin_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pins.sort();
        let want = ["_data_xdpsample", "xdp_sample_counts", "xdp_samples", "xdp_stats_map"];
        assert_eq!(pins, want, "no staged or orphan pins");
        no_lock_left();
    }
    xdpctl_ok(&["unload", "--dev", dev]);
    no_lock_left();
}
