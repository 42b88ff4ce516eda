//! Bad input: one clear line on stderr naming the input, a non-zero exit, and
//! nothing attached or pinned afterwards. Needs root.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{stderr, unique, xdpctl, xdpctl_ok, Lab};

/// The error is a single line that names `input`.
fn one_line_naming(out: &Output, code: i32, input: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(input), "names {input}: {err}");
    err
}

fn nothing_left(lab: &Lab) {
    assert!(lab.attached().is_empty(), "nothing attached to {}", lab.outer);
    assert!(!lab.pin_dir().exists(), "nothing pinned in {}", lab.pin_dir().display());
}

#[test]
#[ignore = "needs root"]
fn unknown_interface() {
    let dev = unique("xnone");
    let out = xdpctl(&["load", "--dev", &dev]);
    let err = one_line_naming(&out, 1, &dev);
    assert!(err.contains("ip link"), "hint: {err}");
    for cmd in ["unload", "stats", "status"] {
        let out = xdpctl(&[cmd, "--dev", &dev]);
        one_line_naming(&out, 1, &dev);
    }
}

#[test]
#[ignore = "needs root"]
fn unknown_program_lists_the_valid_names() {
    let lab = Lab::new();
    let out = xdpctl(&["load", "--dev", &lab.outer, "--progname", "xdp_bogus"]);
    let err = one_line_naming(&out, 1, "xdp_bogus");
    for name in ["xdp_pass", "xdp_drop", "xdp_abort"] {
        assert!(err.contains(name), "lists {name}: {err}");
    }
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn obj_missing_or_not_elf() {
    let lab = Lab::new();
    let missing = format!("/nonexistent/{}.o", unique("obj"));
    let out = xdpctl(&["load", "--dev", &lab.outer, "--obj", &missing]);
    one_line_naming(&out, 1, &missing);

    let text = std::env::temp_dir().join(format!("{}.o", unique("notelf")));
    std::fs::write(&text, "this is not an object\n").unwrap();
    let out = xdpctl(&["load", "--dev", &lab.outer, "--obj", text.to_str().unwrap()]);
    let _ = std::fs::remove_file(&text);
    let err = one_line_naming(&out, 1, text.to_str().unwrap());
    assert!(err.contains("not an ELF"), "{err}");

    // An ELF file, but not a BPF one.
    let out = xdpctl(&["load", "--dev", &lab.outer, "--obj", common::XDPCTL]);
    let err = one_line_naming(&out, 1, common::XDPCTL);
    assert!(err.contains("not BPF"), "{err}");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn pin_dir_outside_bpffs() {
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
fn native_mode_unsupported_says_try_skb_mode_for_load_and_sample() {
    // A bridge has no native XDP; ours is private to this test.
    let br = unique("xbr");
    common::run("ip", &["link", "add", &br, "type", "bridge"]);
    let _guard = DelLink(&br);
    let out = xdpctl(&["load", "--dev", &br]);
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

#[test]
#[ignore = "needs root"]
fn verifier_rejection_exits_40_and_shows_the_log_tail() {
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    // Reads the packet without a bounds check: the verifier must refuse it.
    let obj = common::build_bpf(
        &tmp.0,
        "bad",
        "#include <linux/bpf.h>\n\
         __attribute__((section(\"xdp\"), used)) int unchecked(struct xdp_md *ctx)\n\
         { return *(unsigned char *)(long)ctx->data; }\n\
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    );
    let out = xdpctl(&[
        "load",
        "--dev",
        &lab.outer,
        "--obj",
        obj.to_str().unwrap(),
        "--progname",
        "unchecked",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(40), "{err}");
    assert!(err.contains("invalid access to packet"), "verifier's reason shown: {err}");
    assert!(err.lines().last().unwrap().contains("unchecked"), "{err}");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn failure_after_attach_restores_the_previous_program_and_its_pins() {
    let lab = Lab::new();
    let first = xdpctl_ok(&["--json", "load", "--dev", &lab.outer]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(lab.ping(2));
    let before = lab.stats();
    // A pin file where the pin directory should be: passes the checks, fails
    // only when pinning, after the new program was attached.
    let bad_dir = lab.pin_dir().join("xdp_stats_map");
    let out = xdpctl(&[
        "load",
        "--dev",
        &lab.outer,
        "--force",
        "--progname",
        "xdp_drop",
        "--pin-dir",
        bad_dir.to_str().unwrap(),
    ]);
    one_line_naming(&out, 1, bad_dir.to_str().unwrap());
    let attached = lab.attached();
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0]["prog_id"], first["prog_id"], "the original program is back");
    assert_eq!(attached[0]["pin_dir"], lab.pin_dir().to_str().unwrap());
    assert!(lab.ping(1));
    let after = lab.stats();
    assert_eq!(after.map_id(), before.map_id(), "its pinned map is the same");
    assert_eq!(after.packets("XDP_PASS"), 3);
}

#[test]
#[ignore = "needs root"]
fn pin_dir_at_the_root_of_bpffs() {
    let lab = Lab::new();
    let out = xdpctl(&["load", "--dev", &lab.outer, "--pin-dir", "/sys/fs/bpf"]);
    let err = one_line_naming(&out, 1, "/sys/fs/bpf");
    assert!(err.contains("root of a bpffs mount"), "{err}");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn pin_dir_holding_another_interfaces_pins() {
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

#[test]
#[ignore = "needs root"]
fn inside_ip_netns_exec_pins_would_vanish() {
    let lab = Lab::new();
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, common::XDPCTL, "load", "--dev", "veth0"])
        .output()
        .expect("running ip netns exec");
    let err = one_line_naming(&out, 1, "ip netns exec");
    assert!(err.contains("nsenter --net=/run/netns/"), "hint: {err}");
    let status = Command::new("ip")
        .args(["netns", "exec", &lab.ns, common::XDPCTL, "--json", "status"])
        .output()
        .expect("status in the namespace");
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "[]", "nothing attached");

    // The hint works: the pins land in the host's bpffs and persist.
    let dir = Path::new("/sys/fs/bpf").join(unique("xnsenter"));
    let _cleanup = common::RemoveDir(&dir);
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let dir_arg = dir.to_str().unwrap();
    common::run(
        "nsenter",
        &[&netns, common::XDPCTL, "load", "--dev", "veth0", "--pin-dir", dir_arg],
    );
    assert!(dir.join("xdp_stats_map").exists());
    common::run("nsenter", &[&netns, common::XDPCTL, "unload", "--dev", "veth0"]);
    assert!(!dir.exists());
}

#[test]
#[ignore = "needs root"]
fn stats_without_a_loaded_program() {
    let lab = Lab::new();
    let out = xdpctl(&["stats", "--dev", &lab.outer, "--count", "1"]);
    let err = one_line_naming(&out, 1, &lab.outer);
    assert!(err.contains("xdpctl load --dev"), "hint: {err}");
}

#[test]
#[ignore = "needs root"]
fn unload_of_an_id_that_is_not_attached() {
    let lab = Lab::new();
    xdpctl_ok(&["load", "--dev", &lab.outer]);
    let out = xdpctl(&["unload", "--dev", &lab.outer, "--id", "999999"]);
    let err = one_line_naming(&out, 1, "999999");
    assert!(err.contains("xdp_pass"), "lists what is attached: {err}");
    assert_eq!(lab.attached().len(), 1);
}

#[test]
fn usage_errors_exit_2() {
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

struct DelLink<'a>(&'a str);
impl Drop for DelLink<'_> {
    fn drop(&mut self) {
        let _ = Command::new(common::XDPCTL).args(["-q", "unload", "--dev", self.0]).output();
        let _ = Command::new("ip").args(["link", "del", "dev", self.0]).output();
    }
}

#[test]
#[ignore = "needs root"]
fn sample_refuses_an_unwritable_file_a_busy_interface_and_hw_mode() {
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

    // A program already there stays, untouched, and no capture is left behind.
    xdpctl_ok(&["load", "--dev", &lab.outer, "--progname", "xdp_pass"]);
    let id = lab.attached()[0]["prog_id"].as_u64().expect("prog_id");
    let out = xdpctl(&["sample", "--dev", &lab.outer, "-w", file.to_str().unwrap()]);
    let err = one_line_naming(&out, 1, &lab.outer);
    assert!(err.contains("xdpctl unload"), "hint: {err}");
    assert!(!file.exists(), "nothing written");
    assert_eq!(lab.attached()[0]["prog_id"].as_u64(), Some(id), "the loaded program stays");
}
