//! `xdpctl trace printk`: read the kernel's trace buffer (trace_pipe) and
//! decode the lines of the shipped `xdp_printk` program (tracing03), naming
//! the interface each frame came in on. The buffer is shared: lines written
//! before xdpctl started are skipped (up to a mark it writes into the buffer
//! itself), and lines of other programs and tracers are shown only with
//! `--all`, with control characters escaped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::ProgramType;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::escape;
use crate::net::mac::Mac;
use crate::obj::{listing, tracefs};
use crate::output::unix_time;
use crate::output::Output;
use crate::stop::Stop;
use crate::xdp::ifstate::{prog_name, Namespace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Exit after this many decoded xdp_printk lines
    #[arg(short, long, value_name = "N", value_parser = crate::sampler::parse_count)]
    pub count: Option<u64>,
    /// Also print the buffer's other lines (other programs' and tracers'), as they are
    #[arg(long)]
    pub all: bool,
}

/// The program whose lines are decoded, and the word its lines start with.
const PROGRAM: &str = "xdp_printk";

/// How long to skip lines while waiting for the start mark: if another
/// reader took it, the lines after the wait are shown.
const MARK_WAIT: Duration = Duration::from_secs(1);

/// One xdp_printk line: "xdp_printk ifindex <u32> src: <u64> dst: <u64>
/// proto: <u16>" (before the ifindex was logged: from "src:" on).
#[derive(Serialize, Debug, PartialEq, Eq)]
struct Frame {
    /// The receiving interface's index, in its own namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    ifindex: Option<u32>,
    /// Its name, if an interface of this namespace with that index runs
    /// xdp_printk.
    ifname: Option<String>,
    src: Mac,
    dst: Mac,
    proto: u16,
}

impl Frame {
    fn parse(message: &str) -> Option<Frame> {
        let words: Vec<&str> = message.split_whitespace().collect();
        let (ifindex, rest) = match words.as_slice() {
            [PROGRAM, "ifindex", index, rest @ ..] => (Some(index.parse().ok()?), rest),
            rest => (None, rest),
        };
        let ["src:", src, "dst:", dst, "proto:", proto] = rest else {
            return None;
        };
        Some(Frame {
            ifindex,
            ifname: None,
            src: mac_from_u64(src.parse().ok()?)?,
            dst: mac_from_u64(dst.parse().ok()?)?,
            proto: proto.parse().ok()?,
        })
    }

    /// The interface for text: escaped name, else its index.
    fn shown_if(&self) -> Option<String> {
        match (&self.ifname, self.ifindex) {
            (Some(name), _) => Some(escape::text(name).into_owned()),
            (None, Some(index)) => Some(format!("ifindex {index}")),
            (None, None) => None,
        }
    }
}

/// The inverse of mac_to_u64 in bpf/xdp_prog_kern.bpf.c: first octet highest.
fn mac_from_u64(value: u64) -> Option<Mac> {
    let bytes = value.to_be_bytes();
    if bytes[..2] != [0, 0] {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[2..]);
    Some(Mac(mac))
}

/// `line` (escaped already) with an xdp_printk message decoded, its
/// interface named from `names` (index to name), or None if it is not one.
fn decode(line: &str, names: &HashMap<u32, String>) -> Option<(String, Frame)> {
    const TAG: &str = "bpf_trace_printk: ";
    let at = line.find(TAG)? + TAG.len();
    let mut frame = Frame::parse(&line[at..])?;
    frame.ifname = frame.ifindex.and_then(|i| names.get(&i).cloned());
    let iface = frame.shown_if().map_or_else(String::new, |i| format!("{i} "));
    let text = format!(
        "{}{iface}src: {} dst: {} proto: {:#06x}",
        &line[..at],
        frame.src,
        frame.dst,
        frame.proto
    );
    Some((text, frame))
}

/// Interfaces of this namespace running xdp_printk, by index. Naming other
/// programs takes CAP_SYS_ADMIN: without it, None (not "none").
fn printk_interfaces() -> Result<Option<HashMap<u32, String>>> {
    let mut found = HashMap::new();
    for state in Namespace::read(false)?.ifaces {
        for att in &state.attached {
            match prog_name(att.prog_id).as_str() {
                PROGRAM => {
                    found.insert(state.dev.index, state.dev.name.clone());
                }
                "?" => return Ok(None),
                _ => {}
            }
        }
    }
    Ok(Some(found))
}

/// What the banner says about xdp_printk: where it runs, or how to load it
/// when it runs nowhere.
fn where_it_runs(here: Option<&HashMap<u32, String>>) -> String {
    const LOAD: &str = "load it to see frames (`xdpctl load --dev IF --progname xdp_printk`)";
    let Some(here) = here else {
        return format!("if {PROGRAM} is not loaded, {LOAD}");
    };
    if !here.is_empty() {
        let mut names: Vec<String> = here.values().map(|n| escape::text(n).into_owned()).collect();
        names.sort();
        return format!("{PROGRAM} runs on {}", names.join(", "));
    }
    // Not here; in another namespace, its interface shows by index.
    let elsewhere = listing::programs("listing BPF programs")
        .map(|p| p.iter().any(|p| p.ty == ProgramType::Xdp && p.name == PROGRAM))
        .unwrap_or(false);
    if elsewhere {
        format!("{PROGRAM} is loaded, on no interface of this namespace")
    } else {
        format!("no {PROGRAM} is loaded: {LOAD}")
    }
}

/// Lines before the mark xdpctl wrote into the buffer as it started are
/// stale: skipped, and counted.
struct Fresh {
    mark: Option<String>,
    since: Instant,
    skipped: u64,
}

impl Fresh {
    fn new(mark: Option<String>) -> Fresh {
        Fresh { mark, since: Instant::now(), skipped: 0 }
    }

    /// Whether `line` (None: the pipe went quiet) is past the mark; once it
    /// is, every line is, except the mark's own.
    fn admit(&mut self, line: Option<&str>, out: Output) -> bool {
        let Some(mark) = &self.mark else { return line.is_some() };
        let at_mark = line.is_some_and(|l| l.ends_with(mark.as_str()));
        if at_mark || self.since.elapsed() >= MARK_WAIT {
            if self.skipped > 0 {
                let lines = if self.skipped == 1 { "line" } else { "lines" };
                out.note(&format!(
                    "note: skipped {} {lines} the trace buffer held from before the start",
                    self.skipped
                ));
            }
            if !at_mark {
                out.note("note: the start mark never came back (another trace_pipe reader?)");
            }
            self.mark = None;
            return line.is_some() && !at_mark;
        }
        self.skipped += u64::from(line.is_some());
        false
    }
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    tracefs::ensure_mounted()?;
    let path = Path::new(tracefs::ROOT).join("trace_pipe");
    let mut pipe = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let stop = Stop::install()?;
    let mut names = printk_interfaces()?;
    // Everything before this in the buffer was written before we read it.
    let text = format!("xdpctl trace printk start {} {:.6}", std::process::id(), unix_time());
    let mark = match tracefs::mark(&text) {
        Ok(()) => Some(text),
        Err(e) => {
            out.note(&format!("note: showing what the buffer holds from before the start: {e:#}"));
            None
        }
    };
    let mut fresh = Fresh::new(mark);
    out.info(format!(
        "Reading {}; {}; Ctrl-C stops",
        path.display(),
        where_it_runs(names.as_ref())
    ));

    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut decoded = 0u64;
    let mut looked = Instant::now();
    while args.count.is_none_or(|n| decoded < n) && !stop.requested() {
        // trace_pipe blocks in read(); poll so that a stop request is seen.
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) => {
                fresh.admit(None, out);
                continue;
            }
            Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e).context("waiting for trace_pipe"),
        }
        let len = match pipe.read(&mut buf) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        pending.extend_from_slice(&buf[..len.min(buf.len())]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            // Any task can name itself anything, and its name (comm) leads
            // every line it causes: escaped before anything else.
            let line = escape::bytes(&line[..line.len() - 1]);
            if !fresh.admit(Some(&line), out) {
                continue;
            }
            let known = names.get_or_insert_with(HashMap::new);
            let mut got = decode(&line, known);
            // xdp_printk loaded since: look again, at most once a second.
            let unnamed =
                got.as_ref().is_some_and(|(_, f)| f.ifindex.is_some() && f.ifname.is_none());
            if unnamed && looked.elapsed() >= Duration::from_secs(1) {
                looked = Instant::now();
                if let Some(now) = printk_interfaces()? {
                    *known = now;
                    got = decode(&line, known);
                }
            }
            match got {
                Some((text, frame)) => {
                    decoded += 1;
                    if out.json {
                        out.json(&frame)?;
                    } else {
                        out.print(&format!("{text}\n"))?;
                    }
                }
                None if args.all && !out.json => out.print(&format!("{line}\n"))?,
                None => {}
            }
            if args.count.is_some_and(|n| decoded >= n) {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HashMap<u32, String> {
        HashMap::from([(7, "veth0".to_string()), (8, "x\u{1b}[2J".to_string())])
    }

    #[test]
    fn decodes_xdp_printk_lines_naming_the_interface() {
        // 02:00:00:00:00:02 and 02:00:00:00:00:01 as mac_to_u64 packs them.
        let line = "    ping-1207    [001] ..s2.  2411.503617: bpf_trace_printk: \
                    xdp_printk ifindex 7 src: 2199023255554 dst: 2199023255553 proto: 34525";
        let (text, frame) = decode(line, &names()).unwrap();
        assert_eq!(
            text,
            "    ping-1207    [001] ..s2.  2411.503617: bpf_trace_printk: \
             veth0 src: 02:00:00:00:00:02 dst: 02:00:00:00:00:01 proto: 0x86dd"
        );
        assert_eq!((frame.ifindex, frame.ifname.as_deref()), (Some(7), Some("veth0")));
        assert_eq!(frame.proto, 0x86dd);

        // A name with an escape sequence, escaped; an index unknown here.
        let line =
            "a-1 [000] ..... 1.0: bpf_trace_printk: xdp_printk ifindex 8 src: 1 dst: 2 proto: 3";
        let (text, frame) = decode(line, &names()).unwrap();
        assert!(
            text.ends_with(
                ": x\\x1b[2J src: 00:00:00:00:00:01 dst: 00:00:00:00:00:02 proto: 0x0003"
            ),
            "{text}"
        );
        assert_eq!(frame.ifname.as_deref(), Some("x\u{1b}[2J"));
        let line =
            "a-1 [000] ..... 1.0: bpf_trace_printk: xdp_printk ifindex 9 src: 1 dst: 2 proto: 3";
        let (text, frame) = decode(line, &names()).unwrap();
        assert!(text.contains(": ifindex 9 src: "), "{text}");
        assert_eq!(frame.ifname, None);

        // An older xdp_printk's line, without the interface.
        let line = "a-1 [000] ..... 1.0: bpf_trace_printk: src: 1 dst: 2 proto: 3";
        let (text, frame) = decode(line, &names()).unwrap();
        assert!(
            text.ends_with(
                "bpf_trace_printk: src: 00:00:00:00:00:01 dst: 00:00:00:00:00:02 proto: 0x0003"
            ),
            "{text}"
        );
        assert_eq!(frame.ifindex, None);
    }

    #[test]
    fn a_hostile_task_name_is_escaped_and_the_line_still_decoded() {
        let raw = b"  p\x1b[2J\x9b-77  [001] ..s2.  1.0: bpf_trace_printk: \
                    xdp_printk ifindex 7 src: 2199023255554 dst: 2199023255553 proto: 34525";
        let line = escape::bytes(raw);
        let (text, frame) = decode(&line, &names()).unwrap();
        assert!(text.starts_with("  p\\x1b[2J\\x9b-77  [001]"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text}");
        assert_eq!(frame.proto, 0x86dd);
    }

    #[test]
    fn leaves_other_lines_alone() {
        for line in [
            "  <idle>-0  [000] d.h1.  1.0: bpf_trace_printk: hello",
            "  <idle>-0  [000] d.h1.  1.0: bpf_trace_printk: src: 1 dst: 2",
            "  <idle>-0  [000] d.h1.  1.0: bpf_trace_printk: src: x dst: 2 proto: 3",
            "  a-1 [000] ..... 1.0: bpf_trace_printk: other ifindex 7 src: 1 dst: 2 proto: 3",
            "  a-1 [000] ..... 1.0: bpf_trace_printk: xdp_printk ifindex x src: 1 dst: 2 proto: 3",
            // More than six octets' worth is no MAC.
            "  a-1 [000] ..... 1.0: bpf_trace_printk: src: 281474976710656 dst: 1 proto: 1",
            "  a-1 [000] ..... 1.0: sched_switch: prev_comm=a",
        ] {
            assert_eq!(decode(line, &names()), None, "{line}");
        }
    }

    #[test]
    fn lines_before_the_mark_are_skipped() {
        let out = Output { json: false, quiet: true };
        let mut fresh = Fresh::new(Some("xdpctl trace printk start 1 2.0".into()));
        assert!(!fresh.admit(Some("old line"), out));
        assert!(!fresh.admit(None, out));
        assert!(!fresh
            .admit(Some("x-1 [0] 1.0: tracing_mark_write: xdpctl trace printk start 1 2.0"), out));
        assert_eq!(fresh.skipped, 1);
        assert!(fresh.admit(Some("new line"), out));
        assert!(!fresh.admit(None, out));

        // The mark taken by another reader: lines show after a while.
        let mut fresh = Fresh::new(Some("mark".into()));
        fresh.since -= MARK_WAIT;
        assert!(fresh.admit(Some("a line"), out));
        // No mark written: everything shows.
        assert!(Fresh::new(None).admit(Some("a line"), out));
    }

    #[test]
    fn the_banner_says_where_xdp_printk_runs() {
        let here = HashMap::from([(3, "b".to_string()), (2, "a\u{1b}".to_string())]);
        assert_eq!(where_it_runs(Some(&here)), "xdp_printk runs on a\\x1b, b");
        assert!(where_it_runs(None).contains("if xdp_printk is not loaded, load it"));
    }
}
