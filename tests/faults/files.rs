//! sample's output file: planted, raced for, full, unwritable.

use super::*;

// Case c19.
#[test]
#[ignore = "needs root"]
fn sample_refuses_a_full_disk_and_bad_snaplens() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    for snaplen in ["65536", "-1", "many"] {
        refused(&["sample", "--dev", dev, "-w", "-", "--snaplen", snaplen], &[snaplen]);
    }
    // A full disk: the first write fails; the sampler goes with its error.
    let disk = Tmpfs::new("64k");
    let filler = std::fs::write(disk.0 .0.join("filler"), vec![0u8; 1 << 17]).unwrap_err();
    assert_eq!(filler.raw_os_error(), Some(nix::errno::Errno::ENOSPC as i32), "full");
    let file = disk.0 .0.join("full.pcap");
    let file = file.to_str().unwrap();
    let before = System::settled();
    let mut child = Command::new(common::XDPCTL)
        .args(["-q", "sample", "--dev", dev, "-w", file, "-m", "skb"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        lab.ping(1);
    }
    let out = child.wait_with_output().unwrap();
    let err = one_line(&out, &[file, "No space left on device"]);
    assert!(err.contains("disk full"), "{err}");
    before.assert_unchanged("sample to a full disk");
}

/// A tmpfs of `size` mounted on a scratch directory, unmounted when dropped.
struct Tmpfs(common::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = common::TempDir::new();
        let at = dir.0.to_str().unwrap();
        common::run("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "xdpctl-test", at]);
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0 .0).output();
    }
}

/// `args` run by nobody; they must succeed.
fn run_as_nobody(args: &[&str]) {
    let nobody = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];
    common::run("setpriv", &[&nobody[..], args].concat());
}

/// A scratch directory anyone may write to, sticky, like /tmp.
fn shared_dir() -> common::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::TempDir::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// A child's output, killed (and the test failed) if it runs past `secs`.
pub(crate) fn output_within(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: still running after {secs} s; stderr: {}", stderr(&out));
        }
        sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Like `refused`, for commands that would otherwise run until stopped.
fn refused_at_once(args: &[&str], names: &[&str]) -> String {
    let before = System::settled();
    let out = output_within(spawn_xdpctl(args), 10, "refusing");
    let err = one_line(&out, names);
    before.assert_unchanged(&format!("xdpctl {}", args.join(" ")));
    err
}

/// The frames tcpdump reads from `file`.
fn tcpdump_count(file: &Path) -> usize {
    let out = common::run("tcpdump", &["-r", file.to_str().unwrap(), "-n"]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Whatever nobody plants at the capture's path, root's `sample -w` never
/// writes through it nor into it; a new capture is private; a failed start
/// leaves the file there as it was.
// Case s01.
#[test]
#[ignore = "needs root"]
fn sample_writes_only_its_own_new_file() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let shared = shared_dir();
    let private = common::TempDir::new();
    std::fs::set_permissions(&private.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = private.0.join("secret");
    std::fs::write(&secret, b"root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let at = |name: &str| shared.0.join(name).to_str().unwrap().to_string();

    // (a) A symlink to root's file.
    let (a, secret_s) = (at("a.pcap"), secret.to_str().unwrap());
    run_as_nobody(&["ln", "-s", secret_s, &a]);
    refused_at_once(&["sample", "--dev", dev, "-w", &a], &[&a, "symlink", "nobody", "remove it"]);
    assert_eq!(std::fs::read(&secret).unwrap(), b"root's secret\n", "the victim is untouched");

    // (b) A dangling symlink into root's directory.
    let (b, planted) = (at("b.pcap"), private.0.join("planted"));
    run_as_nobody(&["ln", "-s", planted.to_str().unwrap(), &b]);
    refused_at_once(&["sample", "--dev", dev, "-w", &b], &[&b, "symlink"]);
    assert!(!planted.exists(), "nothing created through the link");

    // (c) A file nobody made for root to fill, readable by all.
    let c = at("c.pcap");
    run_as_nobody(&["sh", "-c", "printf 'nobody was here' > \"$1\"; chmod 666 \"$1\"", "sh", &c]);
    refused_at_once(&["sample", "--dev", dev, "-w", &c], &[&c, "nobody", "remove it"]);
    assert_eq!(std::fs::read(&c).unwrap(), b"nobody was here");
    let planted = ["a.pcap", "b.pcap", "c.pcap"];
    assert_eq!(listing(&shared.0), planted, "no temporary file left");

    // (d) A new capture is root's and private, whatever the umask.
    let d = at("d.pcap");
    let script = format!("umask 000; exec {} sample --dev {dev} -w {d} -c 3", common::XDPCTL);
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_attached(&lab);
    assert!(lab.ping(3), "the pings come back");
    let out = output_within(child, 10, "sample -c 3");
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(&d).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 0), "mode and owner");
    assert_eq!(tcpdump_count(Path::new(&d)), 3);
    assert!(lab.attached().is_empty(), "detached on exit");

    // (e) A start that fails leaves root's earlier capture as it was. A
    // bridge has no native XDP, which only the attach finds out (the
    // sampler, frags-aware, attaches to a veth at any MTU).
    let e = at("e.pcap");
    std::fs::write(&e, b"an earlier capture").unwrap();
    let bridge = unique("xbr");
    common::run("ip", &["link", "add", &bridge, "type", "bridge"]);
    let _gone = DelLink(bridge.clone());
    let out = refused(&["sample", "--dev", &bridge, "-m", "native", "-w", &e], &[&bridge]);
    assert!(out.contains("no native XDP support"), "{out}");
    assert_eq!(std::fs::read(&e).unwrap(), b"an earlier capture");
    assert_eq!(listing(&shared.0), [&planted[..], &["d.pcap", "e.pcap"]].concat());

    // (f) stdout as before.
    let child = spawn_xdpctl(&["sample", "--dev", dev, "-w", "-", "-c", "2"]);
    wait_attached(&lab);
    assert!(lab.ping(2), "the pings come back");
    let out = output_within(child, 10, "sample -w - -c 2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pcap_records(&out.stdout), 2);
    assert!(stderr(&out).contains("2 samples written to stdout"), "{}", stderr(&out));
}

/// Two samplers started at once on one interface and one file: one runs,
/// the other is refused and leaves the winner's capture alone.
// Case s04.
#[test]
#[ignore = "needs root"]
fn two_samplers_racing_for_one_file() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let dir = common::TempDir::new();
    let file = dir.0.join("race.pcap");
    let path = file.to_str().unwrap();
    let before = System::settled();
    for round in 0..3 {
        let args = ["sample", "--dev", dev, "-w", path, "-c", "4"];
        let mut racers = [spawn_xdpctl(&args), spawn_xdpctl(&args)];
        let deadline = Instant::now() + Duration::from_secs(10);
        let lost = loop {
            if let Some(i) = (0..2).find(|&i| racers[i].try_wait().unwrap().is_some()) {
                break i;
            }
            assert!(Instant::now() < deadline, "round {round}: both still run");
            sleep(Duration::from_millis(10));
        };
        let [first, second] = racers;
        let (loser, winner) = if lost == 0 { (first, second) } else { (second, first) };
        let out = loser.wait_with_output().unwrap();
        let err = one_line(&out, &[dev]);
        assert!(
            err.contains("already has an XDP program") || err.contains("another XDP program"),
            "round {round}: {err}"
        );
        wait_attached(&lab);
        assert!(lab.ping(4), "the pings come back");
        let out = output_within(winner, 10, "the winner");
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        assert_eq!(tcpdump_count(&file), 4, "round {round}: the winner's capture");
        assert_eq!(listing(&dir.0), ["race.pcap"], "round {round}: no temporary file");
    }
    before.assert_unchanged("racing samplers");
}

#[test]
#[ignore = "needs root"]
fn sample_refuses_an_unwritable_file_a_busy_interface_and_hw_mode() {
    let _s = serial();
    let lab = Lab::new();
    let nowhere = format!("/nonexistent/{}/x.pcap", unique("dir"));
    let out = xdpctl(&["sample", "--dev", &lab.outer, "-w", &nowhere]);
    let err = one_line_naming(&out, 1, &nowhere);
    assert!(err.contains("writable"), "hint: {err}");
    nothing_left(&lab);

    let file = std::env::temp_dir().join(format!("{}.pcap", unique("hw")));
    let out = xdpctl(&["sample", "--dev", &lab.outer, "-w", file.to_str().unwrap(), "-m", "hw"]);
    one_line_naming(&out, 1, "--mode hw");
    assert!(!file.exists(), "nothing written before the check");
    nothing_left(&lab);

    // Another tool's program already there stays, untouched, and no capture
    // is left behind (an xdpctl program is captured through: tests/sample.rs).
    let tmp = common::TempDir::new();
    ip_link_attach(&lab.outer, &common::build_bpf(&tmp.0, "foreign", XDP_PASS_SRC));
    let id = lab.attached()[0]["prog_id"].as_u64().expect("prog_id");
    let out = xdpctl(&["sample", "--dev", &lab.outer, "-w", file.to_str().unwrap()]);
    let err = one_line_naming(&out, 1, &lab.outer);
    assert!(err.contains("xdpctl unload"), "hint: {err}");
    assert!(!file.exists(), "nothing written");
    assert_eq!(lab.attached()[0]["prog_id"].as_u64(), Some(id), "the loaded program stays");
    common::run("ip", &["link", "set", "dev", &lab.outer, "xdpgeneric", "off"]);
}

/// `sample -w -` with stdout on a terminal (a pty under script(1)) is
/// refused as tcpdump refuses it, before anything is attached.
#[test]
#[ignore = "needs root"]
fn sample_refuses_to_write_binary_to_a_terminal() {
    let _s = serial();
    let lab = Lab::new();
    let cmd = format!("{} sample --dev {} -w - -c 1", common::XDPCTL, lab.outer);
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refusing to write a binary capture to a terminal"), "{text}");
    assert!(text.contains("-w FILE"), "{text}");
    assert!(lab.attached().is_empty(), "nothing attached");
}
