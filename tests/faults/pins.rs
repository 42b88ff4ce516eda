//! Pin directories and pinned maps: outside bpffs, swapped, stale, shared, pinned by name.

use super::*;

// Case c03.
#[test]
#[ignore = "needs root"]
fn pin_dirs_outside_bpffs_are_refused() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let escape = "/sys/fs/bpf/../../tmp/xdpctl-escape";
    refused(&["load", "--dev", &lab.outer, "--pin-dir", escape], &[escape, "'..'"]);
    // A symlink inside bpffs that leads out of it.
    let link = Path::new("/sys/fs/bpf").join(unique("xlink"));
    std::os::unix::fs::symlink(&tmp.0, &link).unwrap();
    let _rm = RemoveFile(link.clone());
    let through = link.join("pins");
    let through = through.to_str().unwrap();
    refused(&["load", "--dev", &lab.outer, "--pin-dir", through], &[through, "/sys/fs/bpf"]);
    let outside = tmp.0.join("pins");
    let outside = outside.to_str().unwrap();
    refused(&["load", "--dev", &lab.outer, "--pin-dir", outside], &[outside, "/sys/fs/bpf"]);
    assert_eq!(std::fs::read_dir(&tmp.0).unwrap().count(), 0, "nothing made outside");
}

/// A checked pin directory's parent swapped for a symlink out of bpffs while
/// load makes the directory (held up there by strace): nothing is made out
/// there, and the load fails with nothing attached.
// Case c03.
#[test]
#[ignore = "needs root"]
fn load_makes_nothing_through_a_pin_dir_swapped_while_it_is_made() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let base = Path::new("/sys/fs/bpf").join(unique("xrace"));
    let moved = base.with_file_name(unique("xmoved"));
    std::fs::create_dir(&base).unwrap();
    let (_rm_base, _rm_moved) = (RemoveFile(base.clone()), common::RemoveDir(&moved));
    let pin_dir = base.join("b").join("c");
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mkdirat"])
        .args(["-e", "inject=mkdirat:delay_enter=1500000:when=1", common::XDPCTL, "load"])
        .args(["--dev", &lab.outer, "--pin-dir", pin_dir.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(700));
    std::fs::rename(&base, &moved).unwrap();
    std::os::unix::fs::symlink(&tmp.0, &base).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_dir(&tmp.0).unwrap().count(), 0, "nothing made outside bpffs");
    assert!(lab.attached().is_empty());
}

/// A pin directory swapped for a symlink out of bpffs after the load:
/// unload detaches but deletes nothing there.
// Case c03.
#[test]
#[ignore = "needs root"]
fn unload_deletes_nothing_outside_bpffs() {
    let _s = serial();
    let lab = Lab::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xswap"));
    let _rm = common::RemoveDir(&dir);
    xdpctl_ok(&["load", "--dev", &lab.outer, "--pin-dir", dir.to_str().unwrap()]);
    let tmp = common::TempDir::new();
    std::fs::write(tmp.0.join("xdp_stats_map"), "not a pin").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&tmp.0, &dir).unwrap();
    let out = xdpctl(&["unload", "--dev", &lab.outer]);
    let err = one_line(&out, &[dir.to_str().unwrap(), "not on a BPF filesystem"]);
    assert!(tmp.0.join("xdp_stats_map").exists(), "left alone: {err}");
    std::fs::remove_file(&dir).unwrap();
}

// Case c11.
#[test]
#[ignore = "needs root"]
fn reuse_maps_refuses_a_stale_pin_of_another_layout() {
    let _s = serial();
    let lab = Lab::new();
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("xdp_stats_map");
    let stale_s = stale.to_str().unwrap();
    common::pin_map(&stale, "hash", 8, 7, "stale");
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev, "--reuse-maps"], &[stale_s, "--reuse-maps"]);
    for diff in ["type Hash, not PercpuArray", "value 8 B, not 16 B", "7 entries, not 5"] {
        assert!(err.contains(diff), "lists {diff}: {err}");
    }
    assert!(!err.contains("key"), "only the differences: {err}");
}

// Case c12.
#[test]
#[ignore = "needs root"]
fn stats_refuses_a_pin_that_is_not_a_stats_map() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xstats"));
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    let dir_s = dir.to_str().unwrap();
    let stats = ["stats", "--dev", &lab.outer, "--pin-dir", dir_s, "-c", "1", "-i", "0.01"];
    let err = refused(&stats, &[dir_s, "xdpctl load"]);
    assert!(err.contains("no xdp_stats_map"), "{err}");

    std::fs::create_dir(&pin).unwrap();
    refused(&stats, &[pin_s, "is a directory, not a pinned map"]);
    std::fs::remove_dir(&pin).unwrap();

    let obj = common::build_bpf(&tmp.0, "prog", XDP_PASS_SRC);
    common::run("bpftool", &["prog", "load", obj.to_str().unwrap(), pin_s]);
    refused(&stats, &[pin_s, "not a pinned map"]);
    std::fs::remove_file(&pin).unwrap();

    common::pin_map(&pin, "hash", 8, 7, "stale");
    refused(&stats, &[pin_s, "not a stats map"]);
}

/// A pin in the interface's directory whose map another tool's live program
/// uses: load refuses to replace it (naming the program), `--reuse-maps`
/// shares the map, and unload leaves the pin to its other user.
// Case s03.
#[test]
#[ignore = "needs root"]
fn a_pin_another_program_uses_is_never_replaced() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dir = lab.pin_dir();
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm, _rm_other) = (common::RemoveDir(&dir), common::RemoveDir(&other));
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&other).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    common::pin_map(&pin, "percpu_array", 16, 5, "xdp_stats_map");
    let obj = common::build_bpf(&tmp.0, "reader", STATS_READER_SRC);
    let reader = other.join("reader");
    common::run(
        "bpftool",
        &[
            "prog",
            "load",
            obj.to_str().unwrap(),
            reader.to_str().unwrap(),
            "map",
            "name",
            "xdp_stats_map",
            "pinned",
            pin_s,
        ],
    );
    let theirs = map_id_of(&pin);
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev], &[pin_s, "program id", "--reuse-maps"]);
    assert!(err.contains("did not load here"), "{err}");
    assert_eq!(map_id_of(&pin), theirs);

    let before = System::settled();
    xdpctl_ok(&["-q", "load", "--dev", dev, "--reuse-maps"]);
    assert_eq!(map_id_of(&pin), theirs, "shared, not replaced");
    let out = xdpctl(&["unload", "--dev", dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stays"), "a warning says why: {}", stderr(&out));
    assert_eq!(map_id_of(&pin), theirs, "left to its other user");
    before.assert_unchanged("load --reuse-maps and unload beside another tool");
    std::fs::remove_file(&reader).unwrap();
}

/// Two interfaces loaded into one --pin-dir at the same moment: one wins;
/// the other is told the directory is busy or holds the winner's pins. The
/// pinned map is the winner's, whose record says so.
// Case s04.
#[test]
#[ignore = "needs root"]
fn two_interfaces_racing_into_one_pin_dir() {
    use libbpf_rs::Program;
    let _s = serial();
    let (a, b) = (Lab::new(), Lab::new());
    let dir = Path::new("/sys/fs/bpf").join(unique("xshared"));
    let _rm = common::RemoveDir(&dir);
    let dir_s = dir.to_str().unwrap();
    let before = System::settled();
    for round in 0..10 {
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|lab| {
                Command::new(common::XDPCTL)
                    .args(["-q", "load", "--dev", &lab.outer, "--pin-dir", dir_s])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> =
            children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let won: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one wins: {outs:?}");
        let (winner, loser) = if won[0] == 0 { (&a, 1) } else { (&b, 0) };
        let err = one_line(&outs[loser], &[dir_s]);
        assert!(err.contains("busy") || err.contains("holds the pins"), "{err}");
        let status = winner.attached();
        assert_eq!(status[0]["pin_dir"], dir_s, "round {round}: {status:?}");
        let prog = status[0]["prog_id"].as_u64().unwrap() as u32;
        let fd = Program::fd_from_id(prog).unwrap();
        let maps = xdpctl::obj::object::maps_used_by(std::os::fd::AsFd::as_fd(&fd)).unwrap();
        assert!(maps.contains(&map_id_of(&dir.join("xdp_stats_map"))), "round {round}");
        xdpctl_ok(&["-q", "unload", "--dev", &winner.outer]);
    }
    no_lock_left();
    before.assert_unchanged("ten races into one pin directory");
}

/// A pinned map with more entries than there are XDP actions is no stats
/// map, and stats does not allocate or print by its size.
// Case s08.
#[test]
#[ignore = "needs root"]
fn stats_refuses_a_map_larger_than_the_actions() {
    let _s = serial();
    let lab = Lab::new();
    let dir = Path::new("/sys/fs/bpf").join(unique("xbig"));
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    common::pin_map(&pin, "percpu_array", 16, 65536, "big");
    let dir_s = dir.to_str().unwrap();
    let stats = ["stats", "--dev", &lab.outer, "--pin-dir", dir_s, "-c", "1", "-i", "0.01"];
    let err = refused(&stats, &[pin_s, "65536 entries"]);
    assert!(err.contains("not a stats map"), "{err}");
}

/// A stats map pinned by name, as the tutorial's common/xdp_stats_kern.h
/// declares it; `LAYOUT` is its type, key, value and entries.
const PIN_BY_NAME_SRC: &str = "#include <linux/bpf.h>\n\
    #include <bpf/bpf_helpers.h>\n\
    #include \"common_kern_user.h\"\n\
    struct {\n\
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);\n\
        __type(key, __u32);\n\
        __type(value, struct datarec);\n\
        __uint(max_entries, XDP_ACTION_MAX);\n\
        __uint(pinning, LIBBPF_PIN_BY_NAME);\n\
    } xdp_stats_map SEC(\".maps\");\n\
    SEC(\"xdp\") int by_name(struct xdp_md *ctx)\n\
    {\n\
        __u32 key = XDP_PASS;\n\
        struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &key);\n\
        if (!rec)\n\
            return XDP_ABORTED;\n\
        rec->rx_packets++;\n\
        return XDP_PASS;\n\
    }\n\
    char LICENSE[] SEC(\"license\") = \"GPL\";\n";

/// Pins a map of xdp_stats_map's layout at `pin`, as another tool would.
fn pin_stats_map(pin: &Path) {
    common::pin_map(pin, "percpu_array", 16, 5, "xdp_stats_map");
}

/// Loads that fail after the map exists (the attach refused at this MTU)
/// leave no pin anywhere: not in the interface's directory, not at
/// libbpf's default /sys/fs/bpf/xdp_stats_map. A pin of that name another
/// program shares stays as it was.
#[test]
#[ignore = "needs root"]
fn a_failed_load_leaves_no_pin_of_a_map_pinned_by_name() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let obj = obj.to_str().unwrap();
    common::run("ip", &["link", "set", "dev", &lab.outer, "mtu", "9000"]);
    common::run("ip", &["-n", &lab.ns, "link", "set", "dev", "veth0", "mtu", "9000"]);
    let dev = lab.outer.as_str();
    let load = ["load", "--dev", dev, "--obj", obj, "--progname", "by_name", "--mode", "native"];
    let err = refused(&load, &[dev, "native unsupported at this MTU"]);
    assert!(!err.contains("pinning"), "{err}");
    assert_eq!(xdpctl(&load).status.code(), Some(30), "the attach exit code");

    // Already pinned there, and used by another tool's live program.
    let dir = lab.pin_dir();
    let other = Path::new("/sys/fs/bpf").join(unique("xother"));
    let (_rm, _rm_other) = (common::RemoveDir(&dir), common::RemoveDir(&other));
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&other).unwrap();
    let pin = dir.join("xdp_stats_map");
    pin_stats_map(&pin);
    let reader = common::build_bpf(&tmp.0, "reader", STATS_READER_SRC);
    let reader_pin = other.join("reader");
    let (reader, reader_pin) = (reader.to_str().unwrap(), reader_pin.to_str().unwrap());
    let shared = ["map", "name", "xdp_stats_map", "pinned", pin.to_str().unwrap()];
    common::run("bpftool", &[&["prog", "load", reader, reader_pin][..], &shared].concat());
    let theirs = map_id_of(&pin);
    refused(&load, &[dev, "native unsupported at this MTU"]);
    assert_eq!(map_id_of(&pin), theirs, "shared, never replaced");
}

/// A map of that name pinned there with another layout: refused before
/// anything is loaded, naming the pin and each difference; the pin stays.
#[test]
#[ignore = "needs root"]
fn a_pin_by_name_of_another_layout_is_refused() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    std::fs::create_dir(&dir).unwrap();
    let pin = dir.join("xdp_stats_map");
    let pin_s = pin.to_str().unwrap();
    common::pin_map(&pin, "hash", 8, 7, "xdp_stats_map");
    let stale = map_id_of(&pin);
    let dev = lab.outer.as_str();
    let err = refused(
        &["load", "--dev", dev, "--obj", obj.to_str().unwrap(), "--progname", "by_name"],
        &[pin_s, "LIBBPF_PIN_BY_NAME", "--pin-dir"],
    );
    for diff in ["type Hash, not PercpuArray", "value 8 B, not 16 B", "7 entries, not 5"] {
        assert!(err.contains(diff), "lists {diff}: {err}");
    }
    assert!(!err.contains("key"), "only the differences: {err}");
    assert_eq!(map_id_of(&pin), stale, "left alone");
}

/// A map of that name pinned by another tool while the load runs (held up
/// by strace just before its pin goes into place, the program already
/// attached): that pin is never replaced; the load fails and undoes itself.
#[test]
#[ignore = "needs root"]
fn a_pin_by_name_made_meanwhile_is_never_replaced() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "by_name", PIN_BY_NAME_SRC);
    let dir = lab.pin_dir();
    let _rm = common::RemoveDir(&dir);
    let pin = dir.join("xdp_stats_map");
    let before = System::settled();
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=renameat2"])
        .args(["-e", "inject=renameat2:delay_enter=2000000:when=1", common::XDPCTL, "load"])
        .args(["--dev", &lab.outer, "--obj", obj.to_str().unwrap(), "--progname", "by_name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while xdpctl::xdp::attach::query(ifindex(&lab.outer)).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the load never attached");
        sleep(Duration::from_millis(10));
    }
    pin_stats_map(&pin);
    let theirs = map_id_of(&pin);
    let out = child.wait_with_output().unwrap();
    let err = one_line(&out, &[pin.to_str().unwrap(), "someone else", "load again"]);
    assert_eq!(map_id_of(&pin), theirs, "their pin stays: {err}");
    // Their pin kept the directory; with it gone, all is as before.
    std::fs::remove_file(&pin).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    before.assert_unchanged("a load that lost its pin by name");
}

#[test]
#[ignore = "needs root"]
fn load_names_a_pin_dir_outside_bpffs() {
    let _s = serial();
    let lab = Lab::new();
    let dir = std::env::temp_dir().join(unique("xpins"));
    let out = xdpctl(&["load", "--dev", &lab.outer, "--pin-dir", dir.to_str().unwrap()]);
    let err = one_line_naming(&out, 1, dir.to_str().unwrap());
    assert!(err.contains("/sys/fs/bpf"), "hint: {err}");
    assert!(!dir.exists(), "the directory was not created");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn load_refuses_the_root_of_bpffs_as_pin_dir() {
    let _s = serial();
    let lab = Lab::new();
    let out = xdpctl(&["load", "--dev", &lab.outer, "--pin-dir", "/sys/fs/bpf"]);
    let err = one_line_naming(&out, 1, "/sys/fs/bpf");
    assert!(err.contains("root of a bpffs mount"), "{err}");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn load_refuses_a_pin_dir_holding_another_interfaces_pins() {
    let _s = serial();
    let (a, b) = (Lab::new(), Lab::new());
    let dir = Path::new("/sys/fs/bpf").join(unique("xshared"));
    let _cleanup = common::RemoveDir(&dir);
    let dir_arg = dir.to_str().unwrap();
    xdpctl_ok(&["load", "--dev", &a.outer, "--pin-dir", dir_arg]);
    assert!(a.ping(2));

    let out = xdpctl(&["load", "--dev", &b.outer, "--pin-dir", dir_arg]);
    let err = one_line_naming(&out, 1, dir_arg);
    assert!(err.contains(&a.outer) && err.contains("xdp_stats_map"), "names the owner: {err}");
    assert!(b.attached().is_empty());
    assert_eq!(a.stats().packets("XDP_PASS"), 2, "a's pins untouched");
}

/// A nested --pin-dir: unload removes the directories load made above it,
/// and only those: a parent that was there before, or that holds something
/// else by then, stays.
#[test]
#[ignore = "needs root"]
fn unload_removes_the_parents_load_made_and_no_others() {
    let _s = serial();
    let lab = Lab::new();
    let top = Path::new("/sys/fs/bpf").join(unique("xnest"));
    let _cleanup = common::RemoveDir(&top);
    // Made by the user: stays.
    std::fs::create_dir(&top).unwrap();
    let dir = top.join("a/b/c");
    let dir_arg = dir.to_str().unwrap();
    xdpctl_ok(&["load", "--dev", &lab.outer, "--pin-dir", dir_arg]);
    assert!(dir.join("xdp_stats_map").exists());
    // A reload into the same directory keeps knowing what the first made.
    xdpctl_ok(&["load", "--dev", &lab.outer, "--pin-dir", dir_arg, "--force", "-M"]);
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    assert!(!top.join("a").exists(), "a, a/b and a/b/c were load's: removed");
    assert!(top.is_dir(), "the user's directory stays");

    // A parent someone else put something in by then stays, with that.
    xdpctl_ok(&["load", "--dev", &lab.outer, "--pin-dir", dir_arg]);
    std::fs::create_dir(top.join("a/other")).unwrap();
    xdpctl_ok(&["unload", "--dev", &lab.outer]);
    assert!(!top.join("a/b").exists(), "a/b and a/b/c removed");
    assert!(top.join("a/other").is_dir(), "another's directory stays");
}
