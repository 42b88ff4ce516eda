//! trafficgen: pacing, counts, port ranges, source MACs.

use super::*;

/// `xdpctl --json trafficgen --dev veth0 args` run inside `lab`.
fn trafficgen_in(lab: &Lab) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns, common::XDPCTL, "--json", "trafficgen", "--dev", "veth0"]);
    cmd
}

/// The final JSON report among a run's stdout lines.
fn final_report<'a>(lines: impl IntoIterator<Item = &'a str>) -> serde_json::Value {
    let line = lines.into_iter().find(|l| l.contains("\"final\":true")).expect("a final report");
    serde_json::from_str(line).expect("report JSON")
}

/// veth0's transmitted-frames counter, as `ip -s` reads it.
fn lab_tx(lab: &Lab) -> u64 {
    let out = common::run("ip", &["-n", &lab.ns, "-j", "-s", "link", "show", "veth0"]);
    let link: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    link[0]["stats64"]["tx"]["packets"].as_u64().expect("tx packets")
}

/// tcpdump on the lab's outer end, writing the UDP frames that `filter`
/// takes to a file until it has `count`.
struct Capture {
    child: KillOnDrop,
    file: RemoveFile,
}

impl Capture {
    fn start(lab: &Lab, count: u32, filter: &str) -> Capture {
        use std::io::BufRead;
        let file = RemoveFile(std::env::temp_dir().join(format!("{}.pcap", unique("s11"))));
        let mut child = Command::new("tcpdump")
            .args(["-i", &lab.outer, "-n", "-U", "-c", &count.to_string(), "-w"])
            .arg(&file.0)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "tcpdump: {line}");
        Capture { child: KillOnDrop(child), file }
    }

    /// Each frame's arrival time (Unix seconds) and UDP destination port,
    /// once tcpdump has its count or 5 s have passed.
    fn frames(mut self) -> Vec<(f64, u16)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        // -U: what it caught so far is in the file.
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let path = self.file.0.to_str().unwrap();
        let out = common::run(
            "tshark",
            &["-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport"],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (time, port) = l.split_once('\t').expect("two fields");
                (time.parse().unwrap(), port.parse().unwrap())
            })
            .collect()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `--rate 10`: frames leave one at a time, a tenth of a second apart from
/// the start, not after a wait for a batch of 64 (or the count) to fall due.
// Case s11.
#[test]
#[ignore = "needs root"]
fn trafficgen_paces_low_rates() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();
    let cap = Capture::start(&lab, 20, "udp");
    let started = unix_now();
    let out = trafficgen_in(&lab).args(["--rate", "10", "--count", "20"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let frames = cap.frames();
    assert_eq!(frames.len(), 20, "{frames:?}");
    let first = frames[0].0;
    // Start-up (load, the private namespace) takes well under a second.
    assert!(first - started < 1.0, "the first frame came {:.2} s after the start", first - started);
    // Frame i at i/10 s after the first, give or take scheduling noise.
    let late: Vec<String> = frames
        .iter()
        .enumerate()
        .filter(|(i, (t, _))| (t - first - *i as f64 / 10.0).abs() > 0.25)
        .map(|(i, (t, _))| format!("frame {i} at {:.3} s", t - first))
        .collect();
    assert!(late.is_empty(), "not at 10 per second: {late:?}");
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), 20, "{report}");
    before.assert_unchanged("trafficgen --rate 10");
}

/// "sent" is what the interface transmitted by its own counter; runs it did
/// not transmit are "not_sent": all sent while the peer takes them, and the
/// rest not sent once it drops them (GRO off, no XDP program: a veth then
/// drops XDP frames without counting them).
// Case s11.
#[test]
#[ignore = "needs root"]
fn trafficgen_reports_what_the_device_sent() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();

    let tx = lab_tx(&lab);
    let out = trafficgen_in(&lab).args(["--rate", "5000", "--count", "500"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), lab_tx(&lab) - tx, "{report}");
    assert_eq!(packets(&report, "sent"), 500, "{report}");
    assert_eq!(packets(&report, "runs"), 500, "{report}");
    assert_eq!(packets(&report, "not_sent"), 0, "{report}");
    assert_eq!(packets(&report, "received"), 500, "{report}");

    // The peer stops taking frames in the middle of a run.
    let tx = lab_tx(&lab);
    let mut cmd = trafficgen_in(&lab);
    cmd.args(["--rate", "200", "--count", "300", "--interval", "0.2"]);
    let run = common::Streaming::spawn_command(cmd);
    run.wait_for("frames sent", |l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|r| r["sent"]["packets"] != 0)
    });
    common::run("ethtool", &["-K", &lab.outer, "gro", "off"]);
    let last = run.wait_for("the final report", |l| l.contains("\"final\":true"));
    let report = final_report([last.as_str()]);
    let (sent, runs) = (packets(&report, "sent"), packets(&report, "runs"));
    assert_eq!(sent, lab_tx(&lab) - tx, "sent is veth0's tx counter: {report}");
    assert_eq!(runs, 300, "{report}");
    assert!(sent > 0 && sent < runs, "some before GRO went off, not all: {report}");
    assert_eq!(packets(&report, "not_sent"), runs - sent, "{report}");
    assert_eq!(packets(&report, "received"), sent, "{report}");
    before.assert_unchanged("trafficgen into a peer that stops taking frames");
}

/// `--udp-dst 0-65535` is 65536 ports: the 65536th frame goes to 65535, and
/// the next one to 0 again.
// Case s11.
#[test]
#[ignore = "needs root"]
fn trafficgen_port_range_includes_the_last_port() {
    let _s = serial();
    let lab = Lab::new();
    common::run("ethtool", &["-K", &lab.outer, "gro", "on"]);
    let before = System::settled();
    let cap = Capture::start(&lab, 3, "udp and (dst port 0 or dst port 65535)");
    let out = trafficgen_in(&lab)
        .args(["--udp-dst", "0-65535", "--count", "65537", "--rate", "300000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = final_report(String::from_utf8_lossy(&out.stdout).lines());
    assert_eq!(packets(&report, "sent"), 65537, "every frame went out: {report}");
    let ports: Vec<u16> = cap.frames().iter().map(|(_, port)| *port).collect();
    assert_eq!(ports, [0, 65535, 0]);
    before.assert_unchanged("trafficgen --udp-dst 0-65535");
}

/// A group address (multicast, broadcast) is no frame's source: refused in
/// one line that names it, exit 2 as for the other malformed option values.
/// As a destination it is fine.
// Case s11.
#[test]
#[ignore = "needs root"]
fn trafficgen_refuses_a_group_source_mac() {
    let _s = serial();
    let lab = Lab::new();
    // veth0 takes XDP frames: the outer end could send.
    lab.exec(&["ethtool", "-K", "veth0", "gro", "on"]);
    let dev = lab.outer.as_str();
    for mac in ["01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff", "03:00:00:00:00:00"]
    {
        let args = ["trafficgen", "--dev", dev, "-n", "5", "--src-mac", mac];
        let err = refused(&args, &["--src-mac", &format!("{mac:?}"), "group", "unicast MAC"]);
        assert!(err.contains("xdpctl --help"), "{err}");
        assert_eq!(xdpctl(&args).status.code(), Some(2), "{mac}");
    }
    let bad_range = xdpctl(&["trafficgen", "--dev", dev, "-n", "5", "--udp-dst", "10-5"]);
    assert_eq!(bad_range.status.code(), Some(2), "the other malformed values exit 2 too");

    let before = System::settled();
    let args = ["--json", "trafficgen", "--dev", dev, "-n", "3", "--dst-mac", "ff:ff:ff:ff:ff:ff"];
    let out = xdpctl_ok(&args);
    let report = final_report(out.lines());
    assert_eq!(packets(&report, "sent"), 3, "{report}");
    assert_eq!(packets(&report, "received"), 3, "{report}");
    let out = xdpctl_ok(&[
        "--json",
        "trafficgen",
        "--dev",
        dev,
        "-n",
        "3",
        "--src-mac",
        "02:00:5e:10:00:01",
    ]);
    assert_eq!(packets(&final_report(out.lines()), "sent"), 3);
    before.assert_unchanged("trafficgen to a broadcast MAC");
}
