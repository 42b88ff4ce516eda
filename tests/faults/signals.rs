//! Signals at each step, and a stalled pipe.

use super::*;

/// Each call (syscall, k-th) of `syscalls` that `xdpctl args` makes, every
/// `stride`-th of each, from a run under strace.
fn steps(args: &[&str], syscalls: &[&str], stride: usize) -> Vec<(String, usize)> {
    let tmp = common::TempDir::new();
    let log = tmp.0.join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o", log.to_str().unwrap(), "-e"])
        .arg(format!("trace={}", syscalls.join(",")))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(&log).unwrap();
    syscalls
        .iter()
        .flat_map(|sc| {
            let call = format!(" {sc}(");
            let n = log.lines().filter(|l| l.contains(&call)).count();
            (1..=n).step_by(stride).map(|k| (sc.to_string(), k))
        })
        .collect()
}

/// `xdpctl args`, sent `sig` as it enters its `k`-th call of `syscall`. A run
/// that hangs is killed after 30 s, and fails.
fn signalled_at(args: &[&str], syscall: &str, k: usize, sig: &str) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", "30", "strace", "-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal={sig}:when={k}"))
        .arg(common::XDPCTL)
        .args(args)
        .output()
        .unwrap()
}

/// The system calls by which load and unload change things: pin directory,
/// pins and BPF objects, the netlink attach, the record.
const CHANGING: [&str; 6] = ["mkdir", "mkdirat", "bpf", "sendto", "rename", "unlink"];

/// SIGINT or SIGTERM as load or unload enters each system call that changes
/// something: afterwards all of it is done (and the exit is 0) or none.
// Case c14.
#[test]
#[ignore = "needs root"]
fn sigint_and_sigterm_at_each_step_of_load_and_unload_undo_it() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let clean = System::settled();
    let load = ["-q", "load", "--dev", dev, "--progname", "xdp_drop"];
    let unload = ["-q", "unload", "--dev", dev];
    let complete = |what: &str| {
        let attached = lab.attached();
        assert_eq!(attached.len(), 1, "{what}: {attached:?}");
        assert_eq!(attached[0]["pin_dir"], lab.pin_dir().to_str().unwrap(), "{what}: record");
        let pins: Vec<_> = std::fs::read_dir(lab.pin_dir()).unwrap().flatten().collect();
        // xdp_stats_map and the sampling path's three.
        assert_eq!(pins.len(), 4, "{what}: only the program's maps: {pins:?}");
    };
    let (mut done, mut none) = (0, 0);
    let load_steps = steps(&load, &CHANGING, 1);
    xdpctl_ok(&unload);
    for (syscall, k) in load_steps {
        let sig = if k % 2 == 0 { "INT" } else { "TERM" };
        let what = format!("load, SIG{sig} at {syscall} #{k}");
        let out = signalled_at(&load, &syscall, k, sig);
        if out.status.success() {
            complete(&what);
            done += 1;
            xdpctl_ok(&unload);
        } else {
            assert!(out.status.code().is_none(), "{what}: killed by it: {out:?}");
            none += 1;
        }
        clean.assert_unchanged(&what);
    }
    xdpctl_ok(&load);
    for (syscall, k) in steps(&unload, &CHANGING, 1) {
        xdpctl_ok(&load);
        let loaded = System::settled();
        let what = format!("unload, SIGINT at {syscall} #{k}");
        let out = signalled_at(&unload, &syscall, k, "INT");
        if out.status.success() {
            clean.assert_unchanged(&what);
        } else {
            assert!(out.status.code().is_none(), "{what}: killed by it: {out:?}");
            complete(&what);
            loaded.assert_unchanged(&what);
            xdpctl_ok(&unload);
        }
    }
    no_lock_left();
    eprintln!("load: {done} finished, {none} stopped before changing anything");
    assert!(done > 0 && none > 0, "the signals came only before or only after: {done} {none}");
    clean.assert_unchanged("interrupted loads and unloads, then unload");
}

/// SIGKILL as load enters each system call that changes something. Whatever
/// it left half done, `status` reports and `unload` clears.
// Case c14.
#[test]
#[ignore = "needs root"]
fn sigkill_at_each_step_of_load_is_reported_and_cleared() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let clean = System::settled();
    let load = ["-q", "load", "--dev", dev, "--progname", "xdp_drop"];
    let (mut half, mut none) = (0, 0);
    let load_steps = steps(&load, &CHANGING, 1);
    xdpctl_ok(&["-q", "unload", "--dev", dev]);
    for (syscall, k) in load_steps {
        let what = format!("load, SIGKILL at {syscall} #{k}");
        let out = signalled_at(&load, &syscall, k, "KILL");
        assert!(!out.status.success(), "{what}: {out:?}");
        // An empty pin directory (killed between making it and pinning)
        // holds nothing to report; unload removes it.
        let empty = std::fs::read_dir(lab.pin_dir()).map_or(true, |mut d| d.next().is_none());
        let untouched = lab.attached().is_empty() && empty;
        let status = xdpctl(&["status", "--dev", dev]);
        let notes = stderr(&status);
        if untouched {
            assert_eq!(notes, "", "{what}: nothing to report");
            none += 1;
        } else {
            let line = one_line_note(&status, &["leftovers", dev, "killed", "unload --dev"]);
            assert!(status.status.success(), "{what}: {line}");
            half += 1;
        }
        let out = xdpctl(&["unload", "--dev", dev]);
        assert!(out.status.success(), "{what}: unload: {}", stderr(&out));
        clean.assert_unchanged(&what);
    }
    no_lock_left();
    eprintln!("SIGKILL: {half} left things half done, {none} nothing");
    assert!(half > 0 && none > 0, "no kill left anything half done: {half} {none}");
}

/// SIGINT or SIGTERM as sample, afxdp and trace enter each call that sets
/// them up or takes them down: each exits 0 or dies of the signal, and either
/// way leaves nothing behind (its programs hang on bpf_links and perf events,
/// which go with the process). Stride: every n-th call, for trace monitor's
/// hundreds of bpf calls.
// Case c14.
#[test]
#[ignore = "needs root"]
fn signals_at_each_step_of_sample_afxdp_and_trace_leave_nothing() {
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    // `sample -c 1` ends at the first frame: keep frames coming.
    let _ping = KillOnDrop(
        lab.outer_command("ping")
            .args(["-6", "-q", "-i", "0.02", &lab.inner_ip])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tmp = common::TempDir::new();
    let capture = tmp.0.join("c14.pcap");
    let capture = capture.to_str().unwrap();
    let clean = System::settled();
    let cases: [(&[&str], &[&str], usize); 4] = [
        (&["sample", "--dev", dev, "-w", capture, "-c", "1"], &["bpf", "rt_sigaction"], 1),
        (
            &["afxdp", "--dev", dev, "--count", "1", "--interval", "0.2"],
            &["bpf", "bind", "setsockopt", "rt_sigaction"],
            1,
        ),
        (&["trace", "-c", "1", "-i", "0.2"], &["bpf", "perf_event_open", "rt_sigaction"], 1),
        (&["trace", "monitor", "-c", "1", "-i", "0.2"], &["bpf", "perf_event_open"], 7),
    ];
    let (mut finished, mut died) = (0, 0);
    for (args, syscalls, stride) in cases {
        let args: Vec<&str> = ["-q"].iter().chain(args).copied().collect();
        for (syscall, k) in steps(&args, syscalls, stride) {
            let sig = if k % 2 == 0 { "INT" } else { "TERM" };
            let what = format!("{}, SIG{sig} at {syscall} #{k}", args[1..].join(" "));
            let out = signalled_at(&args, &syscall, k, sig);
            match out.status.code() {
                Some(0) => finished += 1,
                None => died += 1,
                Some(_) => panic!("{what}: {out:?}"),
            }
            clean.assert_unchanged(&what);
        }
    }
    eprintln!("{finished} stopped cleanly, {died} died of the signal");
    assert!(finished > 0 && died > 0, "{finished} {died}");
    let left: Vec<String> = listing(&tmp.0).into_iter().filter(|n| n != "c14.pcap").collect();
    assert!(left.is_empty(), "sample left temporary files: {left:?}");
}

/// The numbers of sample's summary line: (written, seen).
fn summary(err: &str) -> (u64, u64) {
    let line = err.lines().find(|l| l.contains("samples written to")).expect("a summary");
    let words: Vec<&str> = line.split_whitespace().collect();
    let seen = words.iter().position(|w| *w == "packets").unwrap() - 1;
    (words[0].parse().unwrap(), words[seen].parse().unwrap())
}

/// A reader that never reads: a signal still ends `sample -w -` within a
/// second, detached, and it counts only the records that went into the pipe.
// Case s09.
#[test]
#[ignore = "needs root"]
fn a_stalled_pipe_does_not_hold_up_a_stop() {
    use nix::sys::signal::{kill, Signal};
    use std::io::Read;
    let _s = serial();
    let lab = Lab::new();
    let dev = lab.outer.as_str();
    let before = System::settled();
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut child = Command::new(common::XDPCTL)
            .args(["sample", "--dev", dev, "-w", "-"])
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_attached(&lab);
        // 200 replies of 1462 bytes: far more than the pipe's 64 KiB.
        let flood = ["-6", "-q", "-f", "-c", "200", "-s", "1400", &lab.inner_ip];
        let ping = lab.outer_command("ping").args(flood).output().unwrap();
        assert!(ping.status.success(), "{}", stderr(&ping));
        sleep(Duration::from_millis(300));

        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let signalled = Instant::now();
        kill(pid, sig).unwrap();
        let deadline = signalled + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{sig}: sample still runs 5 s after the signal");
            }
            sleep(Duration::from_millis(5));
        }
        let took = signalled.elapsed();
        assert!(took < Duration::from_secs(1), "{sig}: exited {took:?} after the signal");
        assert!(lab.attached().is_empty(), "{sig}: detached");
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{sig}: {err}");
        let mut data = Vec::new();
        std::fs::File::from(read).read_to_end(&mut data).unwrap();
        let (written, seen) = summary(&err);
        assert!(written < seen, "{sig}: the pipe stalled: {err}");
        assert_eq!(pcap_records(&data) as u64, written, "{sig}: {err}");
        eprintln!("{sig}: exited {took:?} after it; {written} of {seen} written");
    }
    before.assert_unchanged("samplers stopped on a stalled pipe");
}
