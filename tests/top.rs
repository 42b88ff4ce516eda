//! `xdpctl top` as a person sees it: the full-screen view run under tmux
//! (`new -d`, `send-keys`, `capture-pane -p`) while trafficgen sends a
//! known rate into a lab whose outer end runs xdp_drop; then the plain
//! lines it prints into a pipe; and the kernel's BPF stats, which must be
//! off again once top has gone. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{run, unique, xdpctl_ok, Lab, TempDir, XDPCTL};

/// Frames per second trafficgen sends into the lab.
const RATE: f64 = 20_000.0;

/// A tmux server of this test alone (its own socket), with one session
/// running `cmd` in a 160x40 pane; the server is killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let tmux = Tmux { socket: unique("xdpctl-top") };
        // A shell stays in the pane after the command, so the screen it
        // leaves can still be read.
        let cmd = format!("{cmd}; sleep 60");
        tmux.run(&["new", "-d", "-s", "top", "-x", "160", "-y", "40", &cmd]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("running tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// A tmux format of the pane: `#{alternate_on}`, `#{pane_pid}`, ...
    fn pane(&self, format: &str) -> String {
        self.run(&["display", "-p", "-t", "top", format]).trim().to_string()
    }

    fn keys(&self, keys: &[&str]) {
        self.run(&[&["send-keys", "-t", "top"][..], keys].concat());
    }

    /// The screen once `want` holds for it; panics with the last one.
    fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if want(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on the screen:\n{screen}");
            sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// trafficgen sending RATE frames a second out of the lab's veth0 into
/// the outer end; stopped when dropped.
struct Traffic(Child);

impl Traffic {
    fn start(lab: &Lab) -> Traffic {
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns, XDPCTL, "-q", "trafficgen", "--dev", "veth0"])
            .args(["--rate", &RATE.to_string(), "--duration", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting trafficgen");
        Traffic(child)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `20.0K` -> 20000: the SI numbers top prints.
fn si(text: &str) -> f64 {
    let (digits, scale) = match text.chars().last() {
        Some('K') => (&text[..text.len() - 1], 1e3),
        Some('M') => (&text[..text.len() - 1], 1e6),
        Some('G') => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    digits.parse::<f64>().unwrap_or_else(|_| panic!("{text:?} is no number")) * scale
}

/// The row of `dev` in `text` (screen or plain lines) once it shows
/// rates: (drop pps, ns per packet).
fn row_of(text: &str, dev: &str) -> Option<(f64, f64)> {
    let row = text.lines().find(|l| l.starts_with(&format!("{dev} ")))?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    // IFACE PROGRAM ID MODE OWNER RX-pps RX-bit/s TX-pps TX-bit/s NS/PKT CPU% ACTIONS...
    let drop = cells.iter().position(|c| *c == "DROP").and_then(|i| cells.get(i + 1))?;
    let pps = si(drop.split('/').next()?);
    let ns = cells.get(9)?.parse().ok()?;
    Some((pps, ns))
}

/// The drop rate is the sent rate, within 10%.
fn assert_rate(pps: f64, text: &str) {
    assert!((pps - RATE).abs() <= RATE * 0.1, "drop rate {pps} for {RATE} sent:\n{text}");
}

/// run_time_ns of program `id`, as bpftool reads it (0 if never counted).
fn run_time_ns(id: u64) -> u64 {
    let out = run("bpftool", &["-j", "prog", "show", "id", &id.to_string()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    v["run_time_ns"].as_u64().unwrap_or(0)
}

/// The pid of top, the only child of the pane's shell.
fn top_pid(tmux: &Tmux) -> String {
    let shell = tmux.pane("#{pane_pid}");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the pane's shell's children");
    children.split_whitespace().next().expect("top, the shell's child").to_string()
}

/// Waits for the file the pane's shell writes once top exited.
fn exit_line(file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(file) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        sleep(Duration::from_millis(100));
    }
    panic!("top did not exit: no {}", file.display());
}

/// top exited 0 and left the terminal as it found it: cooked (canonical
/// input, echo) and off the alternate screen.
fn exited_0_and_gave_the_terminal_back(tmux: &Tmux, status: &Path, stty: &Path) {
    assert_eq!(exit_line(status), "EXIT=0");
    let settings = std::fs::read_to_string(stty).expect("stty -a");
    assert!(settings.contains(" icanon") && settings.contains(" echo "), "cooked: {settings}");
    assert_eq!(tmux.pane("#{alternate_on}"), "0", "back from the alternate screen");
}

/// `xdpctl top -i 1`, then its exit status and the terminal's settings
/// into files of `dir`.
fn top_then_report(dir: &Path, tag: &str, args: &str) -> (String, PathBuf, PathBuf) {
    let (status, stty) = (dir.join(format!("{tag}.exit")), dir.join(format!("{tag}.stty")));
    let cmd = format!(
        "{XDPCTL} top -i 1 {args}; echo EXIT=$? >{}.tmp; stty -a >{}; mv {0}.tmp {0}",
        status.display(),
        stty.display()
    );
    (cmd, status, stty)
}

/// The screen's row of the lab: the drop rate trafficgen sends, a ns per
/// packet; `/` filters rows by name; `q` exits 0 and gives the terminal
/// back; SIGTERM does the same; a terminal that goes away ends it; into a pipe, plain lines without escape
/// codes; and once top is gone, the program's run time stops growing
/// while its frames still come (the BPF stats were top's alone).
///
/// It can fail: a rate over the wrong period, bytes for packets, or the
/// link's counters for the program's would each miss the 10% band, and a
/// view that kept stats on (or turned on the sysctl) leaves run_time_ns
/// growing.
#[test]
#[ignore = "needs root"]
fn top_shows_the_drop_rate_and_its_stats_end_with_it() {
    let stats_sysctl = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap();
    assert_eq!(stats_sysctl.trim(), "0", "BPF stats are on for everyone: nothing to check");
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    xdpctl_ok(&["-q", "load", "--dev", dev, "--progname", "xdp_drop"]);
    let id = lab.attached()[0]["prog_id"].as_u64().expect("prog id");
    let _traffic = Traffic::start(&lab);
    let dir = TempDir::new();

    // The full-screen view, quit with q.
    let (cmd, status, stty) = top_then_report(&dir.0, "q", "");
    let tmux = Tmux::start(&cmd);
    let rates = |s: &str| row_of(s, dev).is_some_and(|(pps, _)| pps > 0.0);
    // Two refreshes in, the rate is over a whole second.
    tmux.wait_for("rates", rates);
    sleep(Duration::from_millis(1500));
    let screen = tmux.wait_for("rates", rates);
    let (pps, ns) = row_of(&screen, dev).expect("the lab's row");
    assert_rate(pps, &screen);
    assert!(ns > 0.0, "ns/packet: {screen}");
    let row = screen.lines().find(|l| l.starts_with(dev)).expect("row");
    for part in ["xdp_drop", &format!(" {id} "), " native ", " xdpctl "] {
        assert!(row.contains(part), "{part:?} in {row}");
    }
    assert!(screen.contains("BPF stats on while top runs"), "{screen}");
    assert!(screen.lines().any(|l| l.starts_with("q quit")), "keys in the footer: {screen}");
    assert_eq!(tmux.pane("#{alternate_on}"), "1", "full screen");

    // A filter that matches nothing hides the row; Esc brings it back.
    tmux.keys(&["/", "no-such-if"]);
    let screen = tmux.wait_for("the filter", |s| s.contains("filter: no-such-if_"));
    assert!(row_of(&screen, dev).is_none(), "filtered out: {screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("the row again", |s| row_of(s, dev).is_some());
    tmux.keys(&["/", &dev[..4], "Enter"]);
    let screen =
        tmux.wait_for("the kept filter", |s| s.contains(&format!("filter: {}", &dev[..4])));
    assert!(row_of(&screen, dev).is_some(), "matched: {screen}");

    tmux.keys(&["q"]);
    exited_0_and_gave_the_terminal_back(&tmux, &status, &stty);
    drop(tmux);

    // SIGTERM: the same way out.
    let (cmd, status, stty) = top_then_report(&dir.0, "term", "");
    let tmux = Tmux::start(&cmd);
    tmux.wait_for("rates", rates);
    let top = top_pid(&tmux);
    run("kill", &["-TERM", &top]);
    exited_0_and_gave_the_terminal_back(&tmux, &status, &stty);
    drop(tmux);

    // The terminal going away (a closed window, a dropped ssh) ends top too.
    let (cmd, _, _) = top_then_report(&dir.0, "hup", "");
    let tmux = Tmux::start(&cmd);
    tmux.wait_for("rates", rates);
    let top = top_pid(&tmux);
    drop(tmux);
    let proc = Path::new("/proc").join(&top);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.exists() && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    assert!(!proc.exists(), "top {top} still runs with its terminal gone");

    // Into a pipe: a header and a line per interval, no escape codes.
    let out = Command::new(XDPCTL).args(["top", "-c", "2", "-i", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(!text.contains('\u{1b}'), "escape codes in a pipe: {text:?}");
    assert_eq!(text.lines().filter(|l| l.starts_with("IFACE ")).count(), 2, "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("{dev} "))).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let (pps, ns) = row_of(rows[1], dev).expect("rates");
    assert_rate(pps, &text);
    assert!(ns > 0.0, "{text}");

    // Stats off: the program runs on, its run time stays.
    let (time, drops) = (run_time_ns(id), lab.stats().packets("XDP_DROP"));
    assert!(time > 0, "top had the stats on");
    sleep(Duration::from_secs(1));
    assert!(lab.stats().packets("XDP_DROP") > drops + 1000, "traffic still flows");
    assert_eq!(run_time_ns(id), time, "run_time_ns grows after top exited: stats left on");
}
