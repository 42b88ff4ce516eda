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
fn unknown_interface() {
    let dev = unique("xnone");
    let out = xdpctl(&["load", "--dev", &dev]);
    let err = one_line_naming(&out, 1, &dev);
    assert!(err.contains("ip link"), "hint: {err}");
    assert!(!Path::new("/sys/fs/bpf").join(&dev).exists());
    for cmd in ["unload", "stats", "status"] {
        let out = xdpctl(&[cmd, "--dev", &dev]);
        one_line_naming(&out, 1, &dev);
    }
}

#[test]
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
fn native_mode_unsupported_says_try_skb_mode() {
    // A bridge has no native XDP; ours is private to this test.
    let br = unique("xbr");
    common::run("ip", &["link", "add", &br, "type", "bridge"]);
    let _guard = DelLink(&br);
    let out = xdpctl(&["load", "--dev", &br]);
    let err = one_line_naming(&out, 30, &br);
    assert!(err.contains("try --skb-mode"), "{err}");
    let status = xdpctl_ok(&["--json", "status", "--dev", &br]);
    assert_eq!(status.trim(), "[]");
    assert!(!Path::new("/sys/fs/bpf").join(&br).exists());
    // And the suggestion works.
    xdpctl_ok(&["load", "--dev", &br, "--skb-mode"]);
    xdpctl_ok(&["unload", "--dev", &br]);
}

#[test]
fn verifier_rejection_exits_40_and_shows_the_log_tail() {
    let lab = Lab::new();
    let dir = std::env::temp_dir().join(unique("xbad"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("bad.bpf.c");
    // Reads the packet without a bounds check: the verifier must refuse it.
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n\
         __attribute__((section(\"xdp\"), used)) int unchecked(struct xdp_md *ctx)\n\
         { return *(unsigned char *)(long)ctx->data; }\n\
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let obj = dir.join("bad.o");
    let arch = String::from_utf8(common::run("gcc", &["-dumpmachine"]).stdout).unwrap();
    common::run(
        "clang",
        &[
            "-O2",
            "-target",
            "bpf",
            &format!("-I/usr/include/{}", arch.trim()),
            "-c",
            src.to_str().unwrap(),
            "-o",
            obj.to_str().unwrap(),
        ],
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
    let _ = std::fs::remove_dir_all(&dir);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(40), "{err}");
    assert!(err.contains("invalid access to packet"), "verifier's reason shown: {err}");
    assert!(err.lines().last().unwrap().contains("unchecked"), "{err}");
    nothing_left(&lab);
}

#[test]
fn failure_after_attach_restores_the_previous_program() {
    let lab = Lab::new();
    let first = xdpctl_ok(&["--json", "load", "--dev", &lab.outer]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
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
    assert!(lab.ping(1));
}

#[test]
fn stats_without_a_loaded_program() {
    let lab = Lab::new();
    let out = xdpctl(&["stats", "--dev", &lab.outer, "--count", "1"]);
    let err = one_line_naming(&out, 1, &lab.outer);
    assert!(err.contains("xdpctl load --dev"), "hint: {err}");
}

#[test]
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
