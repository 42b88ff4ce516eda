//! Other tools' programs: left alone, libxdp's dispatcher.

use super::*;

// Case c07, c10.
#[test]
#[ignore = "needs root"]
fn another_tools_program_is_left_alone_without_force() {
    let _s = serial();
    let lab = Lab::new();
    let tmp = common::TempDir::new();
    let obj = common::build_bpf(&tmp.0, "foreign", XDP_PASS_SRC);
    ip_link_attach(&lab.outer, &obj);
    let id = lab.attached()[0]["prog_id"].as_u64().unwrap().to_string();
    let dev = lab.outer.as_str();
    let err = refused(&["load", "--dev", dev], &[dev, "foreign", &id, "--force"]);
    assert!(err.contains("not loaded by xdpctl"), "{err}");
    let err = refused(&["unload", "--dev", dev], &[dev, "foreign", &id, "--force"]);
    assert!(err.contains("not loaded by xdpctl"), "{err}");

    // With --force it goes; a second unload finds nothing and says so
    // (exit 0, documented: unload is idempotent).
    xdpctl_ok(&["unload", "--dev", dev, "--force"]);
    assert!(lab.attached().is_empty());
    let before = System::settled();
    let again = xdpctl_ok(&["unload", "--dev", dev]);
    assert!(again.contains("No XDP program attached"), "{again}");
    before.assert_unchanged("a second unload");
}

/// libxdp's dispatcher object as Debian's libxdp1 ships it.
fn libxdp_dispatcher() -> PathBuf {
    let out = common::run("dpkg", &["-L", "libxdp1"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/bpf/xdp-dispatcher.o"))
        .map(PathBuf::from)
        .expect("libxdp1 ships bpf/xdp-dispatcher.o (make deps installs it)")
}

/// Attaches libxdp's own dispatcher to the lab the way another tool would,
/// with `ip link` (its config all zeros: no programs enabled); its id.
fn ip_link_dispatcher(lab: &Lab) -> String {
    let obj = libxdp_dispatcher();
    common::run(
        "ip",
        &[
            "link",
            "set",
            "dev",
            &lab.outer,
            "xdpgeneric",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "xdp",
            "program",
            "xdp_dispatcher",
        ],
    );
    let rows = lab.attached();
    assert_eq!(rows[0]["name"], "xdp_dispatcher", "{rows:?}");
    rows[0]["prog_id"].as_u64().unwrap().to_string()
}

/// libxdp's dispatcher: `status` names it, and `load` and `unload` leave it
/// alone even with --force, naming libxdp's own command and
/// --force-dispatcher, which takes it off knowingly.
#[test]
#[ignore = "needs root"]
fn libxdps_dispatcher_is_named_and_left_to_libxdp() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let id = ip_link_dispatcher(&lab);
    let state = format!("/sys/fs/bpf/xdp/dispatch-{}-{id}", ifindex(dev));

    let text = xdpctl_ok(&["status", "--dev", dev]);
    assert!(text.contains("libxdp's dispatcher, version 2, 0 programs behind it"), "{text}");
    assert!(text.contains(&format!("no libxdp state pinned in {state}")), "{text}");
    let rows = lab.attached();
    let libxdp = &rows[0]["libxdp"];
    assert_eq!(libxdp["version"], 2, "{rows:?}");
    assert_eq!(libxdp["state_dir"], state.as_str(), "{rows:?}");
    assert_eq!(libxdp["state_pinned"], false, "{rows:?}");
    assert_eq!(libxdp["programs"], serde_json::json!([]), "{rows:?}");

    let hint = format!("`xdp-loader unload --all {dev}`");
    for args in [
        &["load", "--dev", dev][..],
        &["load", "--dev", dev, "--force"],
        &["load", "--dev", dev, "--force", "--mode", "skb"],
        &["unload", "--dev", dev],
        &["unload", "--dev", dev, "--force"],
        &["unload", "--dev", dev, "--force", "--id", &id],
    ] {
        let err = refused(args, &[dev, &id, "libxdp's dispatcher", &hint, "--force-dispatcher"]);
        assert!(err.contains("stops every program behind it"), "{err}");
    }

    let out = xdpctl(&["unload", "--dev", dev, "--force-dispatcher"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("took libxdp's dispatcher (id {id}) off {dev}")), "{err}");
    assert!(err.contains("libxdp had no state pinned for it"), "{err}");
    assert!(lab.attached().is_empty());

    let id = ip_link_dispatcher(&lab);
    let out = xdpctl_ok(&["load", "--dev", dev, "--force-dispatcher", "--mode", "skb"]);
    assert!(out.contains(&format!("replaced program id {id}")), "{out}");
    assert_eq!(lab.attached()[0]["name"], "xdp_pass");
    xdpctl_ok(&["unload", "--dev", dev]);
}

/// libxdp's state for a dispatcher running one program, built as libxdp
/// 1.3.1 builds it: its own dispatcher object with the config in .rodata
/// (laid out as the object's BTF says), attached in skb mode, and the
/// program pinned as `/sys/fs/bpf/xdp/dispatch-<ifindex>-<id>/prog0-prog`.
/// Only the freplace link that would run that program is missing: this
/// kernel refuses freplace, so libxdp never gets this far here itself.
struct LibxdpState {
    dispatcher: u32,
    component: u32,
    dir: PathBuf,
    /// /sys/fs/bpf/xdp, when this test made it.
    made_root: Option<PathBuf>,
}

impl LibxdpState {
    fn build(dev: &str, prio: u32, component: &Path) -> LibxdpState {
        use libbpf_rs::btf::types::{MemberAttr, Struct};
        use libbpf_rs::{HasSize, ObjectBuilder, Program, Xdp, XdpFlags};
        use std::os::fd::AsFd;
        use std::os::unix::fs::DirBuilderExt;

        let obj = libxdp_dispatcher();
        let btf = libbpf_rs::Btf::from_path(&obj).unwrap();
        let conf: Struct<'_> = btf.type_by_name("xdp_dispatcher_config").unwrap();
        let at = |name: &str| {
            let m = conf.iter().find(|m| m.name == Some(std::ffi::OsStr::new(name))).unwrap();
            match m.attr {
                MemberAttr::Normal { offset } => offset as usize / 8,
                MemberAttr::BitField { .. } => panic!("{name} is a bitfield"),
            }
        };
        let mut value = vec![0u8; conf.size()];
        // XDP_DISPATCHER_MAGIC and XDP_DISPATCHER_VERSION of libxdp 1.3.1.
        value[at("magic")] = 236;
        value[at("dispatcher_version")] = 2;
        value[at("num_progs_enabled")] = 1;
        // Chain on XDP_PASS, plus the bit libxdp always sets (XDP_DISPATCHER_RETVAL).
        let chain = at("chain_call_actions");
        value[chain..chain + 4].copy_from_slice(&((1u32 << 2) | (1 << 31)).to_ne_bytes());
        let prios = at("run_prios");
        value[prios..prios + 4].copy_from_slice(&prio.to_ne_bytes());

        let mut open = ObjectBuilder::default().open_file(&obj).unwrap();
        for mut p in open.progs_mut() {
            let keep = p.name() == "xdp_dispatcher";
            p.set_autoload(keep);
        }
        let mut rodata =
            open.maps_mut().find(|m| m.name().to_string_lossy().ends_with(".rodata")).unwrap();
        rodata.set_initial_value(&value).unwrap();
        let loaded = open.load().unwrap();
        let prog = loaded.progs().find(|p| p.name() == "xdp_dispatcher").unwrap();
        let dispatcher = Program::id_from_fd(prog.as_fd()).unwrap();

        let mut state = LibxdpState {
            dispatcher,
            component: 0,
            dir: PathBuf::from(format!("/sys/fs/bpf/xdp/dispatch-{}-{dispatcher}", ifindex(dev))),
            made_root: None,
        };
        let root = Path::new("/sys/fs/bpf/xdp");
        let mut mkdir = std::fs::DirBuilder::new();
        mkdir.mode(0o700);
        if !root.exists() {
            mkdir.create(root).unwrap();
            state.made_root = Some(root.to_path_buf());
        }
        mkdir.create(&state.dir).unwrap();
        let comp = ObjectBuilder::default().open_file(component).unwrap().load().unwrap();
        let mut cprog = comp.progs_mut().next().unwrap();
        state.component = Program::id_from_fd(cprog.as_fd()).unwrap();
        cprog.pin(state.dir.join("prog0-prog")).unwrap();
        Xdp::new(prog.as_fd()).attach(ifindex(dev) as i32, XdpFlags::SKB_MODE).unwrap();
        state
    }
}

impl Drop for LibxdpState {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("prog0-prog"));
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(root) = &self.made_root {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// `status` lists what libxdp's pinned state says the dispatcher runs, as
/// libxdp's own `xdp-loader status` reads the same state; `--force-dispatcher`
/// leaves that state to libxdp, whose `xdp-loader clean` (which xdpctl names)
/// removes it.
#[test]
#[ignore = "needs root"]
fn status_lists_what_libxdps_state_says_the_dispatcher_runs() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let tmp = common::TempDir::new();
    let comp = common::build_bpf(&tmp.0, "component", XDP_PASS_SRC);
    let before = System::settled();
    let state = LibxdpState::build(dev, 42, &comp);
    let (id, cid, dir) = (state.dispatcher, state.component, state.dir.display().to_string());

    // libxdp's reading: " =>  <prio>  <name>  <id>  <tag>  <chain-call actions>"
    let reference = common::run("xdp-loader", &["status", dev]);
    let reference = String::from_utf8_lossy(&reference.stdout).into_owned();
    let line = reference.lines().find(|l| l.trim_start().starts_with("=>")).expect(&reference);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1..4], ["42", "foreign", &cid.to_string()], "{reference}");
    assert_eq!(words.last(), Some(&"XDP_PASS"), "{reference}");

    let text = xdpctl_ok(&["status", "--dev", dev]);
    assert!(text.contains("libxdp's dispatcher, version 2, 1 program behind it"), "{text}");
    assert!(text.contains(&format!("libxdp's state in {dir}")), "{text}");
    assert!(text.contains(&format!("=> prio 42     foreign (id {cid})")), "{text}");
    assert!(text.contains("chain-call actions: XDP_PASS"), "{text}");
    let rows = lab.attached();
    assert_eq!(rows[0]["prog_id"], id, "{rows:?}");
    assert_eq!(
        rows[0]["libxdp"],
        serde_json::json!({
            "version": 2,
            "state_dir": dir,
            "state_pinned": true,
            "programs": [{
                "slot": 0,
                "priority": 42,
                "chain_call_actions": ["XDP_PASS"],
                "prog_id": cid,
                "name": "foreign",
            }],
        }),
    );

    let hint = format!("`xdp-loader unload --all {dev}`");
    let err = refused(
        &["unload", "--dev", dev, "--force"],
        &[dev, "1 program behind it", &dir, &hint, "--force-dispatcher"],
    );
    assert!(err.contains(&format!("leaves libxdp's state in {dir}")), "{err}");

    let out = xdpctl(&["unload", "--dev", dev, "--force-dispatcher"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("libxdp's state in {dir} stays")), "{err}");
    assert!(err.contains(&format!("`xdp-loader clean {dev}`")), "{err}");
    assert!(lab.attached().is_empty());
    assert!(state.dir.join("prog0-prog").exists(), "libxdp's state is libxdp's");
    common::run("xdp-loader", &["clean", dev]);
    assert!(!state.dir.exists(), "xdp-loader clean removed what the dispatcher left");
    drop(state);
    before.assert_unchanged("libxdp's state, once libxdp cleaned it");
}

/// Handing an interface over, as README says: libxdp's dispatcher goes with
/// the command xdpctl names, then xdpctl loads; xdpctl's program goes with
/// `xdpctl unload`, then `xdp-loader load` works (before, libxdp says
/// "Existing program is not using a dispatcher").
#[test]
#[ignore = "needs root"]
fn an_interface_is_handed_over_between_libxdp_and_xdpctl() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let tmp = common::TempDir::new();
    let comp = common::build_bpf(&tmp.0, "component", XDP_PASS_SRC);
    let comp = comp.to_str().unwrap();
    ip_link_dispatcher(&lab);

    let err = stderr(&xdpctl(&["load", "--dev", dev, "--mode", "skb"]));
    let named = err.split('`').find(|s| s.starts_with("xdp-loader ")).expect(&err);
    let words: Vec<&str> = named.split_whitespace().collect();
    common::run(words[0], &words[1..]);
    assert!(lab.attached().is_empty(), "{named} took the dispatcher off");
    xdpctl_ok(&["load", "--dev", dev, "--mode", "skb"]);

    let libxdp_load = || Command::new("xdp-loader").args(["load", "-m", "skb", dev, comp]).output();
    let out = libxdp_load().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Existing program is not using a dispatcher"),
        "{}",
        stderr(&out)
    );
    xdpctl_ok(&["unload", "--dev", dev]);
    let out = libxdp_load().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.attached()[0]["name"], "foreign");
    common::run("xdp-loader", &["unload", "--all", dev]);
    assert!(lab.attached().is_empty());
}
