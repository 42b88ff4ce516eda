//! BPF objects and program names: bad, unknown, rejected by the verifier.

use super::*;

// Case c05.
#[test]
#[ignore = "needs root"]
fn bad_objects_and_program_names_are_refused() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev, "--progname", "xdp_bogus"], &["xdp_bogus"]);
    assert!(err.contains("xdp_pass") && err.contains("xdp_router"), "lists the names: {err}");

    let good = common::build_bpf(&tmp.0, "good", XDP_PASS_SRC);
    let good_s = good.to_str().unwrap();
    let err =
        refused(&["load", "--dev", dev, "--obj", good_s, "--progname", "nothere"], &["nothere"]);
    assert!(err.contains("foreign"), "lists what it has: {err}");

    let sock = common::build_bpf(
        &tmp.0,
        "sock",
        "#include <linux/bpf.h>\n\
         __attribute__((section(\"socket\"), used)) int filter(void *skb) { return 0; }\n\
         char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    );
    let sock = sock.to_str().unwrap();
    refused(
        &["load", "--dev", dev, "--obj", sock, "--progname", "filter"],
        &["filter", "not an XDP program"],
    );

    let missing = tmp.0.join("missing.o");
    let missing = missing.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", missing], &[missing]);
    let empty = tmp.0.join("empty.o");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", empty], &[empty, "not an ELF"]);
    let text = tmp.0.join("text.o");
    std::fs::write(&text, "not an object\n").unwrap();
    let text = text.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", text], &[text, "not an ELF"]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.0.join("truncated.o");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let cut = cut.to_str().unwrap();
    refused(&["load", "--dev", dev, "--obj", cut, "--progname", "foreign"], &[cut]);
}

#[test]
#[ignore = "needs root"]
fn an_unknown_program_lists_the_valid_names() {
    let _s = serial();
    let lab = Lab::new();
    // Checked with the command line: a usage error, with load's usage.
    let out = xdpctl(&["load", "--dev", &lab.outer, "--progname", "xdp_bogus"]);
    let err = one_line_naming(&out, 2, "xdp_bogus");
    for name in ["xdp_pass", "xdp_drop", "xdp_abort"] {
        assert!(err.contains(name), "lists {name}: {err}");
    }
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn an_object_missing_or_not_elf_is_refused() {
    let _s = serial();
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
fn verifier_rejection_exits_40_and_shows_the_log_tail() {
    let _s = serial();
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
    assert!(err.contains("(-v shows all)"), "{err}");
    // With -v the whole log is there already: no hint to add -v.
    let obj = obj.to_str().unwrap();
    let out = xdpctl(&["-v", "load", "--dev", &lab.outer, "--obj", obj, "--progname", "unchecked"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(40), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.contains("its log is above") && !last.contains("-v"), "{last}");
    nothing_left(&lab);
}

#[test]
#[ignore = "needs root"]
fn failure_after_attach_restores_the_previous_program_and_its_pins() {
    let _s = serial();
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
