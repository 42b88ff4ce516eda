//! Issue 17, item 8: `xdpctl features` on real interfaces. Every number is
//! checked against another source (ip, /sys, ethtool, bpftool's reading of
//! the kernel's BTF) and the verdicts against the kernel itself: an attach
//! at and just above the MTU limit, and the limit the kernel sets as the
//! peer's max MTU once a program is attached. Needs root; each test builds
//! its own lab and removes it, also on failure.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::lab::Veth;
use common::{build_bpf, run, stderr, unique, Lab, TempDir, XDPCTL};
use serde_json::{json, Value};

/// One program without frags and one with, as another tool would load them.
const PROGS_SRC: &str = "#include <linux/bpf.h>\n\
    __attribute__((section(\"xdp\"), used)) int plain(struct xdp_md *ctx) { return 2; }\n\
    __attribute__((section(\"xdp.frags\"), used)) int frags(struct xdp_md *ctx) { return 2; }\n\
    char LICENSE[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// `xdpctl --json features --dev dev`, in namespace `ns` if given: one line,
/// one object.
fn features(ns: Option<&str>, dev: &str) -> Value {
    let out = xdpctl_in(ns, &["--json", "features", "--dev", dev]);
    assert!(out.status.success(), "features --dev {dev}: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert!(v.is_object(), "{v}");
    v
}

fn xdpctl_in(ns: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = match ns {
        // No bpffs needed: `ip netns exec` is fine here.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, XDPCTL]);
            c
        }
        None => Command::new(XDPCTL),
    };
    cmd.args(args).output().expect("running xdpctl")
}

/// `ip -j -d link show dev` in `ns`.
fn ip_link(ns: Option<&str>, dev: &str) -> Value {
    let mut args = vec!["-j", "-d"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "show", "dev", dev]);
    let out = run("ip", &args);
    serde_json::from_slice::<Value>(&out.stdout).expect("ip JSON")[0].clone()
}

/// Queues in use, by the kernel's queue directories in /sys (read in the
/// device's namespace, where `ip netns exec` mounts its /sys).
fn sys_queues(ns: Option<&str>, dev: &str) -> (u64, u64) {
    let script = format!("ls /sys/class/net/{dev}/queues");
    let out = match ns {
        Some(ns) => run("ip", &["netns", "exec", ns, "sh", "-c", &script]),
        None => run("sh", &["-c", &script]),
    };
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |p: &str| names.split_whitespace().filter(|n| n.starts_with(p)).count() as u64;
    (count("rx-"), count("tx-"))
}

fn flags(v: &Value) -> Vec<String> {
    v["xdp_features"]
        .as_array()
        .unwrap_or_else(|| panic!("xdp_features: {v}"))
        .iter()
        .map(|f| f.as_str().expect("a name").to_string())
        .collect()
}

/// veth's native MTU limits, computed here from the page size and the
/// kernel's BTF as bpftool reads it (drivers/net/veth.c, veth_xdp_set):
/// page - (XDP_PACKET_HEADROOM 256 + NET_IP_ALIGN 0 on x86) -
/// SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) - ETH_HLEN, and with
/// frags MAX_SKB_FRAGS pages more.
fn expected_limits() -> (u64, u64) {
    let page: u64 = String::from_utf8_lossy(&run("getconf", &["PAGESIZE"]).stdout)
        .trim()
        .parse()
        .expect("a page size");
    let dump = run("bpftool", &["btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"]);
    let dump = String::from_utf8_lossy(&dump.stdout);
    let mut lines = dump.lines().skip_while(|l| !l.contains("] STRUCT 'skb_shared_info' size="));
    let head = lines.next().expect("struct skb_shared_info in BTF");
    let size: u64 = field(head, "size=").parse().expect("its size");
    let frags = lines
        .take_while(|l| l.starts_with('\t'))
        .find(|l| l.trim_start().starts_with("'frags' "))
        .expect("its frags member");
    let array = format!("[{}] ARRAY ", field(frags, "type_id="));
    let array = dump.lines().find(|l| l.starts_with(&array)).expect("the frags array");
    let max_frags: u64 = field(array, "nr_elems=").parse().expect("its length");
    let shared_info = size.div_ceil(64) * 64;
    let without = page - 256 - shared_info - 14;
    (without, without + max_frags * page)
}

/// The value after `key` up to the next space.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.split_whitespace().next().unwrap_or_default()
}

/// `ip [-n ns] args...`
fn ip_in(ns: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(args);
    cmd
}

/// Attaches `obj`'s program from section `sec` to `dev` (in `ns`) in native
/// mode, as another tool would; whether the kernel took it.
fn ip_attach(ns: Option<&str>, dev: &str, obj: &Path, sec: &str) -> bool {
    let obj = obj.to_str().unwrap();
    let args = ["link", "set", "dev", dev, "xdpdrv", "obj", obj, "sec", sec];
    ip_in(ns, &args).output().unwrap().status.success()
}

fn ip_detach(ns: Option<&str>, dev: &str) {
    let out = ip_in(ns, &["link", "set", "dev", dev, "xdpdrv", "off"]).output().unwrap();
    assert!(out.status.success(), "detaching from {dev}: {}", stderr(&out));
}

#[test]
#[ignore = "needs root"]
fn a_veth_reports_what_ip_sys_and_the_kernel_say() {
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let v = features(None, dev);
    assert_eq!(v["ifname"], dev);
    assert_eq!(v["ifindex"], ip_link(None, dev)["ifindex"]);
    assert_eq!(v["driver"], "veth");
    // Without a program on the peer, veth takes no frames sent into it.
    assert_eq!(flags(&v), ["basic", "redirect", "rx-sg"], "{v}");
    assert_eq!(
        [&v["native"], &v["frags"], &v["redirect_target"], &v["zero_copy"]],
        [true, true, false, false]
    );
    let ip = ip_link(None, dev);
    for (ours, ips) in [
        ("mtu", "mtu"),
        ("min_mtu", "min_mtu"),
        ("max_mtu", "max_mtu"),
        ("rx_queues_allocated", "num_rx_queues"),
        ("tx_queues_allocated", "num_tx_queues"),
    ] {
        assert_eq!(v[ours], ip[ips], "{ours} against ip's {ips}: {v}");
    }
    let (rx, tx) = sys_queues(None, dev);
    assert_eq!((v["rx_queues"].as_u64(), v["tx_queues"].as_u64()), (Some(rx), Some(tx)), "{v}");
    // veth allocates a queue per possible CPU and uses one.
    assert_eq!((rx, tx), (1, 1));

    let inner = ip_link(Some(&lab.ns), "veth0");
    assert_eq!(v["peer"]["ifname"], "veth0", "{v}");
    assert_eq!(v["peer"]["ifindex"], inner["ifindex"]);
    assert_eq!(v["peer"]["mtu"], inner["mtu"]);
    assert!(v["peer"]["netnsid"].is_number(), "{v}");

    let (without, with) = expected_limits();
    assert_eq!(v["native_mtu_limit"]["without_frags"], without, "{v}");
    assert_eq!(v["native_mtu_limit"]["with_frags"], with, "{v}");
    assert_eq!(v["native_mtu_limit"]["applies_to"], "peer");
    assert_eq!(v["native_at_current_mtu"], json!({"without_frags": true, "with_frags": true}));

    // The same from inside, about the outer end.
    let v = features(Some(&lab.ns), "veth0");
    assert_eq!(flags(&v), ["basic", "redirect", "rx-sg"], "{v}");
    assert_eq!(v["peer"]["ifname"], dev, "{v}");
    let (rx, tx) = sys_queues(Some(&lab.ns), "veth0");
    assert_eq!((v["rx_queues"].as_u64(), v["tx_queues"].as_u64()), (Some(rx), Some(tx)));

    let out = xdpctl_in(None, &["features", "--dev", dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("{dev} (ifindex ")), "{text}");
    for line in [
        "  driver            veth\n",
        "  XDP features      basic redirect rx-sg\n",
        "  lacks             ndo-xmit xsk-zerocopy hw-offload ndo-xmit-sg\n",
        &format!("{without} without frags, {with} with frags, on the peer's MTU (veth0: 1500)"),
        "a native program without frags: attaches; with frags: attaches",
        "zero-copy: no (no xsk-zerocopy)",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}

/// A program on the peer makes veth take XDP frames (ndo-xmit appears), and
/// the kernel then limits the peer's MTU to exactly the limit reported.
#[test]
#[ignore = "needs root"]
fn a_program_on_the_peer_adds_ndo_xmit_and_the_kernel_agrees_on_the_limits() {
    let lab = Lab::new();
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "progs", PROGS_SRC);
    let dev = lab.outer.as_str();
    let before = features(None, dev);
    let (without, with) = expected_limits();

    // xdpctl's own program on the inner end, pins in a directory of its own.
    let pins = Path::new("/sys/fs/bpf").join(unique("xfeat"));
    let _rm = common::RemoveDir(&pins); // after the lab's own cleanup
    let netns = format!("--net=/run/netns/{}", lab.ns);
    let pin_dir = pins.to_str().unwrap();
    run("nsenter", &[&netns, XDPCTL, "-q", "load", "--dev", "veth0", "--pin-dir", pin_dir]);
    let v = features(None, dev);
    assert_eq!(flags(&v), ["basic", "redirect", "ndo-xmit", "rx-sg", "ndo-xmit-sg"], "{v}");
    assert_eq!(v["redirect_target"], true);
    // The inner end gains nothing: its own frames go to a peer without one.
    assert_eq!(flags(&features(Some(&lab.ns), "veth0")), ["basic", "redirect", "rx-sg"]);
    run("nsenter", &[&netns, XDPCTL, "-q", "unload", "--dev", "veth0"]);
    assert_eq!(features(None, dev)["xdp_features"], before["xdp_features"]);

    // The kernel caps the outer end's MTU at the limit for the peer's program.
    for (sec, limit) in [("xdp", without), ("xdp.frags", with)] {
        assert!(ip_attach(Some(&lab.ns), "veth0", &obj, sec), "attaching {sec} to veth0");
        assert_eq!(ip_link(None, dev)["max_mtu"], limit, "the kernel's max MTU with {sec}");
        assert_eq!(features(None, dev)["max_mtu"], limit);
        ip_detach(Some(&lab.ns), "veth0");
    }
    assert_eq!(features(None, dev)["max_mtu"], before["max_mtu"]);
}

/// What `features` says fits at the peer's MTU is what the kernel does.
#[test]
#[ignore = "needs root"]
fn the_verdict_at_the_current_mtu_is_the_kernels() {
    let lab = Lab::new();
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "progs", PROGS_SRC);
    let (without, _) = expected_limits();
    let ns = lab.ns.as_str();
    let set_mtu = |mtu: u64| {
        run("ip", &["-n", ns, "link", "set", "dev", "veth0", "mtu", &mtu.to_string()]);
    };
    // veth0 is the outer end's peer: its MTU decides for the outer end.
    let verdict = || features(None, &lab.outer)["native_at_current_mtu"].clone();
    for (mtu, fits) in [(without + 1, false), (without, true)] {
        set_mtu(mtu);
        assert_eq!(verdict(), json!({"without_frags": fits, "with_frags": true}), "MTU {mtu}");
        assert_eq!(ip_attach(None, &lab.outer, &obj, "xdp"), fits, "the kernel at MTU {mtu}");
        if fits {
            ip_detach(None, &lab.outer);
        }
        assert!(ip_attach(None, &lab.outer, &obj, "xdp.frags"), "frags at MTU {mtu}");
        ip_detach(None, &lab.outer);
    }
    let out = xdpctl_in(None, &["features", "--dev", &lab.outer]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("on the peer's MTU (veth0: {without})")), "{text}");
}

/// A veth whose peer sends on more queues than it receives on announces no
/// XDP at all, and the kernel refuses a program there.
#[test]
#[ignore = "needs root"]
fn a_veth_with_fewer_rx_queues_than_its_peer_sends_on_has_no_native_mode() {
    let lab = Lab::new();
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "progs", PROGS_SRC);
    let ns = lab.ns.as_str();
    // Made inside the lab's namespace: it goes with it. qb receives on one
    // queue what qa sends on three.
    run(
        "ip",
        &[
            "-n",
            ns,
            "link",
            "add",
            "qa",
            "numtxqueues",
            "3",
            "numrxqueues",
            "4",
            "type",
            "veth",
            "peer",
            "name",
            "qb",
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ],
    );
    let peer = "qb";
    assert_eq!(sys_queues(Some(ns), "qa"), (4, 3));
    assert_eq!(sys_queues(Some(ns), peer), (1, 1));
    let rx = 1;

    let v = features(Some(ns), peer);
    assert_eq!(flags(&v), Vec::<String>::new(), "{v}");
    assert_eq!(v["native"], false);
    assert_eq!(v["native_at_current_mtu"], json!({"without_frags": false, "with_frags": false}));
    assert_eq!(v["rx_queues"], rx, "{v}");
    assert!(!ip_attach(Some(ns), peer, &obj, "xdp"), "the kernel refuses it too");
    assert!(ip_attach(Some(ns), "qa", &obj, "xdp"), "and takes it on the other end");
    ip_detach(Some(ns), "qa");
    let out = xdpctl_in(Some(ns), &["features", "--dev", peer]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("more tx queues in use than it has rx queues"), "{text}");

    // qa's side is fine: its peer sends on fewer queues than it has.
    let v = features(Some(ns), "qa");
    assert_eq!(flags(&v), ["basic", "redirect", "rx-sg"], "{v}");
    assert_eq!((v["rx_queues"].as_u64(), v["tx_queues"].as_u64()), (Some(4), Some(3)));
}

/// Removes a link of this namespace when dropped.
struct DelLink(String);

impl Drop for DelLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "dev", &self.0]).output();
    }
}

#[test]
#[ignore = "needs root"]
fn a_bridge_has_no_native_xdp() {
    let br = unique("xfbr");
    run("ip", &["link", "add", &br, "type", "bridge"]);
    let _del = DelLink(br.clone());
    let v = features(None, &br);
    assert_eq!(v["driver"], "bridge");
    assert_eq!(flags(&v), Vec::<String>::new(), "{v}");
    assert_eq!(
        [&v["native"], &v["frags"], &v["redirect_target"], &v["zero_copy"]],
        [false, false, false, false]
    );
    assert_eq!(v["peer"], Value::Null);
    assert_eq!(v["native_mtu_limit"]["without_frags"], Value::Null);
    assert_eq!(v["native_at_current_mtu"], json!({"without_frags": false, "with_frags": false}));
    let ip = ip_link(None, &br);
    assert_eq!((&v["mtu"], &v["max_mtu"]), (&ip["mtu"], &ip["max_mtu"]));
    assert_eq!((&v["rx_queues_allocated"], &v["tx_queues_allocated"]), (&json!(1), &json!(1)));
    assert_eq!((&v["rx_queues"], &v["tx_queues"]), (&json!(1), &json!(1)));
    // The kernel agrees: no native mode.
    let tmp = TempDir::new();
    let obj = build_bpf(&tmp.0, "progs", PROGS_SRC);
    let obj = obj.to_str().unwrap();
    let out = Command::new("ip")
        .args(["link", "set", "dev", &br, "xdpdrv", "obj", obj, "sec", "xdp"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bridge took a native program");

    let out = xdpctl_in(None, &["features", "--dev", &br]);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "  driver            bridge\n",
        "  XDP features      none\n",
        "  native mode       no: the driver has no native XDP; programs run in skb mode",
        "copy mode: with the program in skb mode (--mode skb)",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
}

/// Without any capability the command works; a peer in another namespace
/// then shows by index only, and what depends on its MTU is unknown.
#[test]
#[ignore = "needs root"]
fn without_privileges_the_peer_in_another_namespace_is_unknown() {
    let lab = Lab::new();
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", XDPCTL, "--json", "features"])
        .args(["--dev", &lab.outer])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(flags(&v), ["basic", "redirect", "rx-sg"], "{v}");
    assert_eq!(v["peer"]["ifname"], Value::Null, "{v}");
    assert_eq!(v["peer"]["ifindex"], ip_link(Some(&lab.ns), "veth0")["ifindex"]);
    assert_eq!(v["native_at_current_mtu"], json!({"without_frags": null, "with_frags": null}));
}

/// A name with an escape sequence is shown escaped; JSON carries it as is.
#[test]
#[ignore = "needs root"]
fn a_hostile_name_is_escaped() {
    let lab = Lab::new();
    let name = "f\u{1b}[2J";
    let veth = Veth { ns: Some(&lab.ns), name, peer: "fpeer", ..Veth::default() };
    veth.add().expect("a veth pair");
    let out = xdpctl_in(Some(&lab.ns), &["features", "--dev", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("f\\x1b[2J (ifindex "), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let out = xdpctl_in(Some(&lab.ns), &["features", "--dev", "fpeer"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  veth peer         f\\x1b[2J (ifindex "), "{text}");
    assert_eq!(features(Some(&lab.ns), "fpeer")["peer"]["ifname"], name);
}
