//! `xdpctl exporter`: what a real Prometheus server scrapes from it while
//! `xdpctl trafficgen` sends a known number of frames into a lab, what
//! promtool says of its text, counters across program upgrades, the
//! textfile for node_exporter, and the refusals. Needs root (and Debian's
//! `prometheus` package: promtool and the server).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{stderr, xdpctl, xdpctl_ok, Lab, TempDir, XDPCTL};
use serde_json::Value;

/// A localhost port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed and reaped when dropped, also when a test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on localhost:`port`: the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

/// Poll until `port` answers `path` with 200, or panic after `secs`.
fn wait_ready(port: u16, path: &str, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if matches!(get(port, path), Ok((200, _))) {
            return;
        }
        sleep(Duration::from_millis(50));
    }
    panic!("{what} did not answer {path} on port {port} within {secs} s");
}

/// The exporter serving on a free localhost port.
fn exporter() -> (Running, u16) {
    let port = free_port();
    let child = Command::new(XDPCTL)
        .args(["exporter", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting xdpctl exporter");
    let running = Running(child);
    wait_ready(port, "/metrics", 10, "xdpctl exporter");
    (running, port)
}

/// One scrape of the exporter at `port`.
fn metrics(port: u16) -> String {
    let (status, body) = get(port, "/metrics").expect("scraping the exporter");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` in `text`, labels given in the
/// order they print.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&head)?.parse().ok())
}

fn packets(text: &str, dev: &str, action: &str) -> Option<f64> {
    sample(text, "xdpctl_xdp_packets_total", &format!("dev=\"{dev}\",action=\"{action}\""))
}

/// `n` frames from inside the lab out of veth0, into the outer end.
fn send(lab: &Lab, n: u32) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, XDPCTL, "-q", "trafficgen", "--dev", "veth0"])
        .args(["-n", &n.to_string()])
        .output()
        .expect("running xdpctl trafficgen");
    assert!(out.status.success(), "trafficgen: {}", stderr(&out));
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool(text: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; `make test` installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Kernel BPF stats on for as long as the fd lives (BPF_ENABLE_STATS).
fn enable_bpf_stats() -> OwnedFd {
    // SAFETY: a plain syscall wrapper taking an enum value.
    let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
    assert!(fd >= 0, "BPF_ENABLE_STATS: {}", std::io::Error::from_raw_os_error(-fd));
    // SAFETY: a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// What promtool accepts: the counters of the lab's program after known
// traffic, its info metric, and its run counters while BPF stats are on.
#[test]
#[ignore = "needs root"]
fn promtool_accepts_the_metrics_which_count_the_frames_sent() {
    let lab = Lab::new();
    xdpctl_ok(&["-q", "load", "--dev", &lab.outer, "--progsec", "xdp_drop"]);
    let stats = enable_bpf_stats();
    send(&lab, 100);
    let (_exporter, port) = exporter();
    let text = metrics(port);
    drop(stats);
    let verdict = promtool(&text);
    assert!(
        verdict.status.success(),
        "promtool check metrics refused:\n{}{}\n--- the metrics:\n{text}",
        String::from_utf8_lossy(&verdict.stdout),
        stderr(&verdict)
    );
    assert_eq!(packets(&text, &lab.outer, "XDP_DROP"), Some(100.0), "{text}");
    assert_eq!(packets(&text, &lab.outer, "XDP_PASS"), Some(0.0), "{text}");
    let id = lab.attached()[0]["prog_id"].as_u64().unwrap();
    let info = text
        .lines()
        .find(|l| l.starts_with(&format!("xdpctl_xdp_program_info{{dev=\"{}\"", lab.outer)))
        .unwrap_or_else(|| panic!("no info metric for {}:\n{text}", lab.outer));
    for want in ["program=\"xdp_drop\"", &format!("id=\"{id}\""), "owner=\"xdpctl\"", "mode="] {
        assert!(info.contains(want) && info.ends_with(" 1"), "{want} in {info}");
    }
    let prog = format!("dev=\"{}\",program=\"xdp_drop\",id=\"{id}\"", lab.outer);
    let runs = sample(&text, "xdpctl_xdp_program_runs_total", &prog).expect("a run count");
    assert!(runs >= 100.0, "{runs} runs for 100 frames:\n{text}");
    let secs = sample(&text, "xdpctl_xdp_program_run_seconds_total", &prog).expect("a run time");
    assert!(secs > 0.0 && secs < 1.0, "{secs} s for 100 runs");
    xdpctl_ok(&["-q", "unload", "--dev", &lab.outer]);
}

/// A Prometheus server started for one test: its config scrapes the exporter
/// every second, its data in a temporary directory.
struct Prometheus {
    _child: Running,
    port: u16,
    _data: TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Prometheus {
        let data = TempDir::new();
        let config = data.0.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: xdpctl\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = fs::File::create(data.0.join("log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.0.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's prometheus package; `make test` installs it)");
        let child = Running(child);
        wait_ready(port, "/-/ready", 30, "prometheus");
        Prometheus { _child: child, port, _data: data }
    }

    /// The value of instant query `query`, if it has exactly one sample.
    fn query(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = get(self.port, &format!("/api/v1/query?query={encoded}")).ok()?;
        assert_eq!(status, 200, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).expect("the query API's JSON");
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

// Case: a real Prometheus server scrapes the exporter; its PromQL query
// returns exactly the frames trafficgen sent.
#[test]
#[ignore = "needs root"]
fn prometheus_scrapes_exactly_the_frames_sent() {
    let lab = Lab::new();
    xdpctl_ok(&["-q", "load", "--dev", &lab.outer, "--progsec", "xdp_drop"]);
    let (_exporter, port) = exporter();
    let prometheus = Prometheus::start(port);
    let query = format!("xdpctl_xdp_packets_total{{dev=\"{}\",action=\"XDP_DROP\"}}", lab.outer);
    // Scraped before the traffic: the series starts at zero.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.query(&query).is_none() && Instant::now() < deadline {
        sleep(Duration::from_millis(200));
    }
    assert_eq!(prometheus.query(&query), Some(0.0), "{query} before the traffic");
    send(&lab, 1000);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = prometheus.query(&query);
        if seen == Some(1000.0) {
            break;
        }
        sleep(Duration::from_millis(200));
    }
    assert_eq!(seen, Some(1000.0), "{query} after 1000 frames");
    let up = format!("up{{job=\"xdpctl\",instance=\"127.0.0.1:{port}\"}}");
    assert_eq!(prometheus.query(&up), Some(1.0), "{up}");
    xdpctl_ok(&["-q", "unload", "--dev", &lab.outer]);
}

// Case: a program upgrade that keeps the maps keeps the counters; one that
// replaces them restarts the series from zero.
#[test]
#[ignore = "needs root"]
fn counters_never_go_back_across_an_upgrade_that_keeps_the_maps() {
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    xdpctl_ok(&["-q", "load", "--dev", dev, "--progsec", "xdp_drop"]);
    let (_exporter, port) = exporter();
    send(&lab, 50);
    assert_eq!(packets(&metrics(port), dev, "XDP_DROP"), Some(50.0));
    xdpctl_ok(&["-q", "load", "--dev", dev, "--progsec", "xdp_pass", "--force", "--reuse-maps"]);
    let text = metrics(port);
    assert_eq!(packets(&text, dev, "XDP_DROP"), Some(50.0), "kept across the upgrade:\n{text}");
    assert!(text.contains("program=\"xdp_pass\""), "the info metric follows:\n{text}");
    send(&lab, 30);
    let text = metrics(port);
    assert_eq!(packets(&text, dev, "XDP_DROP"), Some(50.0), "{text}");
    assert_eq!(packets(&text, dev, "XDP_PASS"), Some(30.0), "{text}");
    // New maps: the series restart, as Prometheus expects of a counter.
    xdpctl_ok(&["-q", "load", "--dev", dev, "--progsec", "xdp_drop", "--force"]);
    let text = metrics(port);
    assert_eq!(packets(&text, dev, "XDP_DROP"), Some(0.0), "{text}");
    assert_eq!(packets(&text, dev, "XDP_PASS"), Some(0.0), "{text}");
    xdpctl_ok(&["-q", "unload", "--dev", dev]);
}

/// The regular files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

// Case: --textfile replaces DIR/xdpctl.prom by rename, 0644 for
// node_exporter whatever the umask, and refuses directories others control.
#[test]
#[ignore = "needs root"]
fn the_textfile_is_put_in_place_atomically_readable_by_node_exporter() {
    let lab = Lab::new();
    xdpctl_ok(&["-q", "load", "--dev", &lab.outer, "--progsec", "xdp_drop"]);
    send(&lab, 7);
    let dir = TempDir::new();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.0.join("xdpctl.prom");
    fs::write(&file, "old\n").unwrap();
    let before = fs::metadata(&file).unwrap().ino();
    let textfile = dir.0.to_str().unwrap();
    let out = Command::new("sh")
        .args(["-c", "umask 077; exec \"$0\" exporter --textfile \"$1\"", XDPCTL, textfile])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644, "readable by node_exporter");
    assert_ne!(meta.ino(), before, "a new file renamed into place, not rewritten");
    assert_eq!(names(&dir.0), ["xdpctl.prom"], "no temporary file left");
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(packets(&text, &lab.outer, "XDP_DROP"), Some(7.0), "{text}");
    assert!(promtool(&text).status.success(), "{text}");

    // Directories others control, and a symlink planted at the file.
    let refused = |path: &str, words: &[&str]| {
        let out = xdpctl(&["exporter", "--textfile", path]);
        let err = stderr(&out);
        assert!(!out.status.success(), "--textfile {path} accepted");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        for w in words {
            assert!(err.contains(w), "{w:?} in {err}");
        }
    };
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    refused(textfile, &[textfile, "others may write", "chmod go-w"]);
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir.0, Some(65534), None).unwrap();
    refused(textfile, &[textfile, "uid 65534", "not root"]);
    std::os::unix::fs::chown(&dir.0, Some(0), None).unwrap();
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
    refused(textfile, &["symlink"]);
    assert!(fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
    refused("/nonexistent-xdpctl", &["/nonexistent-xdpctl", "existing directory"]);
    xdpctl_ok(&["-q", "unload", "--dev", &lab.outer]);
}

/// One line on stderr with every word in `words`, and a failure.
fn one_line(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "accepted: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for w in words {
        assert!(err.contains(w), "{w:?} in {err}");
    }
}

// Case: a bad --listen, a port taken and an address not here get one line
// naming the address and a hint; only /metrics is served.
#[test]
#[ignore = "needs root"]
fn bad_addresses_are_refused_and_only_metrics_is_served() {
    one_line(&xdpctl(&["exporter", "--listen", "localhost"]), &["localhost", "127.0.0.1:9431"]);
    one_line(&xdpctl(&["exporter", "--listen", "1.2.3.4:99999"]), &["1.2.3.4:99999"]);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    one_line(&xdpctl(&["exporter", "--listen", &addr]), &[&addr, "another port"]);
    // TEST-NET-1: an address no interface here has.
    one_line(
        &xdpctl(&["exporter", "--listen", "192.0.2.1:9431"]),
        &["192.0.2.1:9431", "ip address"],
    );

    let (_exporter, port) = exporter();
    assert_eq!(get(port, "/").unwrap().0, 404);
    assert_eq!(get(port, "/metricsx").unwrap().0, 404);
    assert_eq!(get(port, "/metrics?x=1").unwrap().0, 200);

    // Any address: served, with a warning.
    let port = free_port();
    let mut child = Command::new(XDPCTL)
        .args(["exporter", "--listen", &format!("0.0.0.0:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut warning = String::new();
    let err = child.stderr.take().unwrap();
    let _guard = Running(child);
    wait_ready(port, "/metrics", 10, "xdpctl exporter on 0.0.0.0");
    let mut line = [0u8; 1];
    let mut err = err;
    while err.read(&mut line).unwrap() == 1 && line[0] != b'\n' {
        warning.push(line[0] as char);
    }
    assert!(warning.contains("not loopback") && warning.contains("0.0.0.0"), "{warning}");
}

// Case: outside the initial namespace every series carries `netns`, the
// namespace's `ip netns` name; in the initial one none does.
#[test]
#[ignore = "needs root"]
fn series_outside_the_initial_namespace_carry_netns() {
    let lab = Lab::new();
    let inside = |args: &[&str]| {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.ns))
            .arg(XDPCTL)
            .args(args)
            .output()
            .expect("running xdpctl in the lab's namespace");
        assert!(out.status.success(), "xdpctl {args:?}: {}", stderr(&out));
    };
    inside(&["-q", "load", "--dev", "veth0", "--progsec", "xdp_drop"]);
    let dir = TempDir::new();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    inside(&["exporter", "--textfile", dir.0.to_str().unwrap()]);
    let text = fs::read_to_string(dir.0.join("xdpctl.prom")).unwrap();
    let labels = format!("dev=\"veth0\",netns=\"{}\",action=\"XDP_DROP\"", lab.ns);
    assert!(sample(&text, "xdpctl_xdp_packets_total", &labels).is_some(), "{labels} in:\n{text}");
    let info = format!("xdpctl_xdp_program_info{{dev=\"veth0\",netns=\"{}\",", lab.ns);
    assert!(text.contains(&info), "{info} in:\n{text}");
    inside(&["-q", "unload", "--dev", "veth0"]);

    xdpctl_ok(&["-q", "load", "--dev", &lab.outer, "--progsec", "xdp_pass"]);
    xdpctl_ok(&["exporter", "--textfile", dir.0.to_str().unwrap()]);
    let text = fs::read_to_string(dir.0.join("xdpctl.prom")).unwrap();
    assert!(!text.contains("netns="), "no netns label in the initial namespace:\n{text}");
    assert!(packets(&text, &lab.outer, "XDP_PASS").is_some(), "{text}");
    xdpctl_ok(&["-q", "unload", "--dev", &lab.outer]);
}
