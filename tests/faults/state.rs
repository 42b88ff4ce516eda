//! xdpctl's records: planted by others, missing, naming what is attached.

use super::*;

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode()
        & 0o7777
}

/// Sets a path's mode when dropped.
struct RestoreMode(PathBuf, u32);

impl Drop for RestoreMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

/// Where an older xdpctl, or one run under `umask 000`, left /run/xdpctl
/// writable by all, another user plants a record naming another tool's
/// program and pin, and a `.tmp` symlink where root writes a record first.
/// Root's `unload` ignores the record (a warning names it) and refuses the
/// program; root's `load` under `umask 000` writes nothing through the
/// symlink, and what it makes is root's alone.
// Case s02.
#[test]
#[ignore = "needs root"]
fn state_other_users_planted_is_not_trusted() {
    let _s = serial();
    let (mine, theirs) = (Lab::new(), Lab::new());
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "foreign", XDP_PASS_SRC);
    ip_link_attach(&theirs.outer, &obj);
    let their_id = theirs.attached()[0]["prog_id"].as_u64().unwrap();
    let victim_dir = Path::new("/sys/fs/bpf").join(unique("xvictim"));
    let _rm = common::RemoveDir(&victim_dir);
    std::fs::create_dir(&victim_dir).unwrap();
    let victim = victim_dir.join("their_map");
    common::pin_map(&victim, "array", 8, 1, "their_map");
    let precious = tmp.0.join("precious");
    std::fs::write(&precious, "root's own\n").unwrap();

    let run_dir = Path::new("/run/xdpctl");
    std::fs::create_dir_all(run_dir).unwrap();
    let _restore = RestoreMode(run_dir.to_path_buf(), 0o700);
    let before = System::settled();
    common::run("chmod", &["0777", "/run/xdpctl"]);
    let (cookie, ino) =
        (xdpctl::net::netns::cookie().unwrap(), xdpctl::net::netns::inode().unwrap());
    let (their_if, my_if) = (ifindex(&theirs.outer), ifindex(&mine.outer));
    let forged = serde_json::json!({
        "ifname": theirs.outer, "prog_id": their_id, "prog_name": "xdp_pass",
        "pin_dir": victim_dir, "pins": ["their_map"], "netns_inode": ino,
    })
    .to_string();
    // Under the names this xdpctl and the one before it read and write.
    let planted = [
        format!("n{cookie}-i{their_if}.json"),
        format!("{ino}-{their_if}.json"),
        format!("n{cookie}-i{my_if}.json.tmp"),
        format!("{ino}-{my_if}.tmp"),
    ];
    let _gone: Vec<RemoveFile> = planted.iter().map(|p| RemoveFile(run_dir.join(p))).collect();
    let precious_s = precious.to_str().unwrap();
    for name in &planted[..2] {
        let out =
            as_nobody("printf %s \"$1\" > \"$2\"", &[&forged, &format!("/run/xdpctl/{name}")]);
        assert!(out.status.success(), "planting: {}", stderr(&out));
    }
    for name in &planted[2..] {
        let out = as_nobody("ln -s \"$1\" \"$2\"", &[precious_s, &format!("/run/xdpctl/{name}")]);
        assert!(out.status.success(), "planting: {}", stderr(&out));
    }

    let out = xdpctl(&["unload", "--dev", &theirs.outer]);
    let err = stderr(&out);
    assert!(!out.status.success(), "another tool's program detached: {err}");
    assert!(err.contains("not loaded by xdpctl"), "{err}");
    assert!(err.contains("ignoring") && err.contains(&planted[0]), "a warning names it: {err}");
    assert_eq!(theirs.attached()[0]["prog_id"].as_u64(), Some(their_id));
    assert!(victim.exists(), "another tool's pin removed");

    let out = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" -q load --dev \"$1\"", common::XDPCTL, &mine.outer])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root's own\n");
    assert_eq!(mode_of(run_dir), 0o700, "/run/xdpctl");
    let record = run_dir.join(format!("n{cookie}-i{my_if}.json"));
    assert_eq!(mode_of(&record), 0o600, "{}", record.display());
    assert!(!run_dir.join(&planted[2]).exists(), "the planted .tmp went, not through");
    assert_eq!(mode_of(&xdpctl::xdp::lock::root()), 0o700, "the lock root");
    assert_eq!(mode_of(&mine.pin_dir()), 0o700, "the pin directory");
    assert_eq!(mode_of(&mine.pin_dir().join("xdp_stats_map")), 0o600);

    xdpctl_ok(&["-q", "unload", "--dev", &mine.outer]);
    drop(_gone);
    before.assert_unchanged("planted records, then load and unload");
}

#[test]
#[ignore = "needs root"]
fn stats_without_a_loaded_program_says_load_first() {
    let _s = serial();
    let lab = Lab::new();
    let out = xdpctl(&["stats", "--dev", &lab.outer, "--count", "1"]);
    let err = one_line_naming(&out, 1, &lab.outer);
    assert!(err.contains("xdpctl load --dev"), "hint: {err}");
}

#[test]
#[ignore = "needs root"]
fn unload_of_an_id_not_attached_lists_what_is() {
    let _s = serial();
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer]);
    let out = xdpctl(&["unload", "--dev", &lab.outer, "--id", "999999"]);
    let err = one_line_naming(&out, 1, "999999");
    assert!(err.contains("xdp_pass"), "lists what is attached: {err}");
    assert_eq!(lab.attached().len(), 1);
}
