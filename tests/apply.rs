//! `xdpctl apply` against real veths. Every test uses an isolated lab (the
//! outer end in a namespace of its own), so the file's patterns and
//! `--prune` see only that test's interfaces; xdpctl runs there through
//! nsenter, which keeps the host's bpffs. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::lab::{LinkGuard, Veth};
use common::{build_bpf, unique, Lab, Streaming, TempDir, XDPCTL};
use serde_json::Value;

/// xdpctl in the lab's outer namespace.
fn xd(lab: &Lab, args: &[&str]) -> Output {
    let ns = lab.outer_ns.as_deref().expect("an isolated lab");
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(XDPCTL)
        .args(args)
        .output()
        .expect("running xdpctl")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn xd_ok(lab: &Lab, args: &[&str]) -> String {
    let out = xd(lab, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "xdpctl {} failed: {stderr}", args.join(" "));
    stdout
}

/// The id of the XDP program on `dev` in the lab's outer namespace, as `ip` tells.
fn prog_id(lab: &Lab, dev: &str) -> Option<u64> {
    let ns = lab.outer_ns.as_deref().expect("an isolated lab");
    let out = common::run("ip", &["-n", ns, "-j", "link", "show", "dev", dev]);
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j JSON");
    links[0]["xdp"]["prog"]["id"].as_u64()
}

/// Packets counted under `action` on `dev`, read by `xdpctl stats`.
fn packets(lab: &Lab, dev: &str, action: &str) -> u64 {
    let out = xd_ok(lab, &["--json", "stats", "--dev", dev, "--count", "1", "--interval", "0.05"]);
    let v: Value = serde_json::from_str(out.lines().last().expect("a sample")).expect("JSON");
    v["actions"][action]["packets"].as_u64().expect("packets")
}

/// A veth pair in the lab's outer namespace, its end `name` up; whatever
/// xdpctl put on it is unloaded before the pair goes.
struct Extra {
    lab_ns: String,
    name: String,
    _link: LinkGuard,
}

impl Extra {
    fn new(lab: &Lab, name: &str) -> Extra {
        let ns = lab.outer_ns.clone().expect("an isolated lab");
        let peer = unique("zp");
        let link = Veth { ns: Some(&ns), name, peer: &peer, ..Default::default() }
            .add_up()
            .expect("adding a veth pair");
        Extra { lab_ns: ns, name: name.to_string(), _link: link }
    }
}

impl Drop for Extra {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.lab_ns))
            .args([XDPCTL, "-q", "unload", "--force", "--dev", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf").join(&self.name));
    }
}

/// A config file in a scratch directory.
struct Config {
    dir: TempDir,
}

impl Config {
    fn new() -> Config {
        Config { dir: TempDir::new() }
    }

    fn path(&self) -> PathBuf {
        self.dir.0.join("xdpctl.toml")
    }

    /// Write `text` in place as an editor does: a new file renamed over the old.
    fn write(&self, text: &str) -> String {
        let tmp = self.dir.0.join(".xdpctl.toml.new");
        std::fs::write(&tmp, text).expect("writing the config");
        std::fs::rename(&tmp, self.path()).expect("renaming the config");
        self.path().to_string_lossy().into_owned()
    }
}

fn attach(dev: &str, program: &str) -> String {
    format!("[[attach]]\ndev = \"{dev}\"\nprogram = \"{program}\"\n")
}

#[test]
#[ignore = "needs root"]
fn loads_what_is_missing_keeps_what_matches_and_replaces_with_counters_kept() {
    let lab = Lab::isolated();
    let conf = Config::new();
    let file = conf.write(&attach(&lab.outer, "xdp_pass"));

    let out = xd_ok(&lab, &["apply", "-f", &file]);
    assert!(out.contains("loaded xdp_pass"), "{out}");
    let first = prog_id(&lab, &lab.outer).expect("xdp_pass attached");
    assert!(lab.ping(3), "ping through xdp_pass");
    // The replies, and whatever else the inner end sends meanwhile.
    let passed = packets(&lab, &lab.outer, "XDP_PASS");
    assert!(passed >= 3, "{passed}");

    // The same file again: nothing changes, and it says so.
    let out = xd_ok(&lab, &["apply", "-f", &file]);
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(prog_id(&lab, &lab.outer), Some(first), "the program was left alone");

    // Another program: swapped in, the counters carried over.
    let file = conf.write(&attach(&lab.outer, "xdp_drop"));
    let out = xd_ok(&lab, &["--json", "apply", "-f", &file]);
    let v: Value = serde_json::from_str(&out).expect("apply JSON");
    assert_eq!(v["changed"], 1, "{v}");
    assert_eq!(v["steps"][0]["action"], "replace", "{v}");
    assert_eq!(v["steps"][0]["status"], "done", "{v}");
    let second = prog_id(&lab, &lab.outer).expect("xdp_drop attached");
    assert_ne!(second, first);
    assert_eq!(v["steps"][0]["new_prog_id"].as_u64(), Some(second), "{v}");
    assert!(!lab.ping(2), "xdp_drop drops the replies");
    // xdp_drop counts nothing as passed: the count is the old program's, kept.
    assert_eq!(packets(&lab, &lab.outer, "XDP_PASS"), passed, "counters kept across the swap");
    assert!(packets(&lab, &lab.outer, "XDP_DROP") >= 2);
}

#[test]
#[ignore = "needs root"]
fn diff_prints_the_plan_and_changes_nothing() {
    let lab = Lab::isolated();
    let fresh = unique("ap");
    let _extra = Extra::new(&lab, &fresh);
    let conf = Config::new();
    let file = conf.write(&attach(&lab.outer, "xdp_pass"));
    xd_ok(&lab, &["apply", "-f", &file]);
    let id = prog_id(&lab, &lab.outer);

    let file =
        conf.write(&format!("{}{}", attach(&lab.outer, "xdp_drop"), attach(&fresh, "xdp_pass")));
    let out = xd_ok(&lab, &["apply", "-f", &file, "--diff"]);
    assert!(out.contains(&format!("~ {}: replace program id {}", lab.outer, id.unwrap())), "{out}");
    assert!(out.contains(&format!("+ {fresh}: load xdp_pass")), "{out}");
    let out = xd_ok(&lab, &["--json", "apply", "-f", &file, "--diff"]);
    let v: Value = serde_json::from_str(&out).expect("--diff JSON");
    assert_eq!((v["diff"].as_bool(), v["changed"].as_u64()), (Some(true), Some(2)), "{v}");
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["status"] == "planned"), "{v}");
    // jq reads it too.
    let mut jq = Command::new("jq")
        .args(["-e", ".steps | length == 2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("running jq");
    use std::io::Write;
    jq.stdin.take().unwrap().write_all(out.as_bytes()).unwrap();
    assert!(jq.wait().unwrap().success(), "jq rejects {out}");

    assert_eq!(prog_id(&lab, &lab.outer), id, "--diff changed nothing");
    assert_eq!(prog_id(&lab, &fresh), None, "--diff loaded nothing");
}

#[test]
#[ignore = "needs root"]
fn a_bad_file_gets_one_line_with_its_place_and_changes_nothing() {
    let lab = Lab::isolated();
    let conf = Config::new();
    let good = attach(&lab.outer, "xdp_pass");
    let cases = [
        (format!("{good}[[attach]]\ndev = \"x\nprogram = 1\n"), ":5:"),
        (format!("{good}colour = \"red\"\n"), ":4:1: "),
        (format!("{good}[[attach]]\ndev = \"other\"\nprogram = \"xdp_nope\"\n"), ":6:11: "),
        (format!("{good}mode = \"turbo\"\n"), ":4:8: "),
    ];
    for (body, place) in cases {
        let file = conf.write(&body);
        let out = xd(&lab, &["apply", "-f", &file]);
        let (_, err) = text(&out);
        assert_ne!(out.status.code(), Some(0), "{body}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("{file}{place}")), "{place} in: {err}");
        assert_eq!(prog_id(&lab, &lab.outer), None, "nothing attached for {body}");
    }

    // A file others may write drives no root tool.
    let file = conf.write(&good);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = xd(&lab, &["apply", "-f", &file]);
    let (_, err) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("mode 666"), "{err}");
    assert_eq!(prog_id(&lab, &lab.outer), None);
}

/// An object whose program the verifier refuses (packet read unchecked).
const UNVERIFIABLE: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	return data[0] ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
"#;

#[test]
#[ignore = "needs root"]
fn a_failure_in_the_middle_undoes_that_interface_and_names_what_was_done() {
    let lab = Lab::isolated();
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "unchecked", UNVERIFIABLE);
    let later = unique("ap");
    let _extra = Extra::new(&lab, &later);
    let conf = Config::new();
    let file = conf.write(&format!(
        "{}[[attach]]\ndev = \"{later}\"\nobj = \"{}\"\nprogram = \"unchecked\"\n",
        attach(&lab.outer, "xdp_pass"),
        obj.display()
    ));
    let out = xd(&lab, &["apply", "-f", &file]);
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(40), "a BPF load failure: {err}");
    assert!(stdout.contains("not applied in full; 1 change(s) made"), "{stdout}");
    assert!(err.contains(&format!("{later} left as it was (done: {})", lab.outer)), "{err}");
    assert!(prog_id(&lab, &lab.outer).is_some(), "the first interface's step stays done");
    assert_eq!(prog_id(&lab, &later), None, "nothing left on the failed interface");
    assert!(!Path::new("/sys/fs/bpf").join(&later).join("xdp_stats_map").exists());
}

/// An object as another tool would attach it.
const THEIRS: &str = r#"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int theirs(struct xdp_md *ctx)
{
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"#;

#[test]
#[ignore = "needs root"]
fn prune_unloads_xdpctl_programs_no_longer_listed_and_never_another_tools() {
    let lab = Lab::isolated();
    let ns = lab.outer_ns.clone().unwrap();
    let (ours, theirs) = (unique("ap"), unique("ap"));
    let (_a, _b) = (Extra::new(&lab, &ours), Extra::new(&lab, &theirs));
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "theirs", THEIRS);
    common::run(
        "ip",
        &[
            "-n",
            &ns,
            "link",
            "set",
            "dev",
            &theirs,
            "xdpgeneric",
            "obj",
            obj.to_str().unwrap(),
            "sec",
            "xdp",
        ],
    );
    let foreign = prog_id(&lab, &theirs).expect("ip attached its program");

    let conf = Config::new();
    let file =
        conf.write(&format!("{}{}", attach(&lab.outer, "xdp_pass"), attach(&ours, "xdp_drop")));
    xd_ok(&lab, &["apply", "-f", &file]);
    let kept = prog_id(&lab, &lab.outer).expect("loaded");
    assert!(prog_id(&lab, &ours).is_some());

    // Without --prune an interface the file forgot keeps its program.
    let file = conf.write(&attach(&lab.outer, "xdp_pass"));
    let out = xd_ok(&lab, &["apply", "-f", &file]);
    assert!(out.contains("nothing to do"), "{out}");
    assert!(prog_id(&lab, &ours).is_some());

    let out = xd_ok(&lab, &["--json", "apply", "-f", &file, "--prune"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let unloads: Vec<&Value> =
        v["steps"].as_array().unwrap().iter().filter(|s| s["action"] == "unload").collect();
    assert_eq!(unloads.len(), 1, "{v}");
    assert_eq!(unloads[0]["dev"], ours.as_str(), "{v}");
    assert_eq!(prog_id(&lab, &ours), None, "xdpctl's unlisted program went");
    assert!(!Path::new("/sys/fs/bpf").join(&ours).join("xdp_stats_map").exists(), "its pins too");
    assert_eq!(prog_id(&lab, &theirs), Some(foreign), "another tool's program stays");
    assert_eq!(prog_id(&lab, &lab.outer), Some(kept), "the listed one stays");
}

/// Poll `ip -j link` for up to `limit` until `dev` runs a program other
/// than `old`; how long it took.
fn attached_within(lab: &Lab, dev: &str, old: Option<u64>, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if prog_id(lab, dev).is_some_and(|id| Some(id) != old) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// `xdpctl --json apply --watch -f FILE` in the lab's outer namespace, once
/// its first pass is out.
fn watch(lab: &Lab, file: &str) -> Streaming {
    let ns = lab.outer_ns.as_deref().expect("an isolated lab");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .args([XDPCTL, "--json", "apply", "--watch", "-f", file]);
    let w = Streaming::spawn_command(cmd);
    let first = w.wait_for("the first pass", |l| l.contains("\"steps\""));
    let v: Value = serde_json::from_str(&first).expect("one JSON object per pass");
    assert_eq!(v["ok"], true, "{v}");
    w
}

#[test]
#[ignore = "needs root"]
fn watch_attaches_to_new_interfaces_and_follows_the_file_until_stopped() {
    let lab = Lab::isolated();
    let prefix = unique("aw");
    let conf = Config::new();
    let file = conf.write(&attach(&format!("{prefix}*"), "xdp_pass"));
    let w = watch(&lab, &file);

    // A veth that appears later gets its program within a second.
    let name = format!("{prefix}n");
    let _extra = Extra::new(&lab, &name);
    let took = attached_within(&lab, &name, None, Duration::from_secs(1));
    assert!(took.is_some(), "no program on {name} within 1 s");
    println!("attached {:?} after the veth appeared", took.unwrap());
    let line = w.wait_for("the pass that loaded it", |l| l.contains("\"load\""));
    let v: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["changed"], 1, "{v}");
    let first = prog_id(&lab, &name);

    // A new file (renamed into place, as editors do) is applied at once.
    conf.write(&attach(&format!("{prefix}*"), "xdp_drop"));
    assert!(
        attached_within(&lab, &name, first, Duration::from_secs(1)).is_some(),
        "the changed file was not applied within 1 s"
    );

    // SIGTERM ends it cleanly; the attachments are the wanted state and stay.
    let now = prog_id(&lab, &name);
    let end = w.signal("TERM");
    assert_eq!(end.status.code(), Some(0), "{}", end.stderr);
    assert_eq!(prog_id(&lab, &name), now, "the program stays after --watch ends");

    // So does SIGINT; and a bad file read on SIGHUP keeps the last good one.
    let w = watch(&lab, &file);
    std::fs::write(&file, "[[attach]]\ndev = 1\n").expect("breaking the file");
    common::run("kill", &["-HUP", &w.pid().to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let end = w.signal("INT");
    assert_eq!(end.status.code(), Some(0), "{}", end.stderr);
    assert!(end.stderr.contains(&format!("{file}:2:7")), "{}", end.stderr);
    assert_eq!(prog_id(&lab, &name), now);
}
