//! `xdpctl trace printk`: read the kernel's trace buffer (trace_pipe) and
//! decode the lines of the shipped `xdp_printk` program (tracing03); every
//! other line passes through, with control characters escaped.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::escape;
use crate::net::mac::Mac;
use crate::obj::tracefs;
use crate::output::Output;
use crate::stop::Stop;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Exit after this many decoded xdp_printk lines
    #[arg(short, long, value_name = "N", value_parser = crate::sampler::parse_count)]
    pub count: Option<u64>,
}

/// One xdp_printk line: "src: <u64> dst: <u64> proto: <u16>".
#[derive(Serialize, Debug, PartialEq, Eq)]
struct Frame {
    src: Mac,
    dst: Mac,
    proto: u16,
}

impl Frame {
    fn parse(message: &str) -> Option<Frame> {
        let words: Vec<&str> = message.split_whitespace().collect();
        let ["src:", src, "dst:", dst, "proto:", proto] = words.as_slice() else {
            return None;
        };
        Some(Frame {
            src: mac_from_u64(src.parse().ok()?)?,
            dst: mac_from_u64(dst.parse().ok()?)?,
            proto: proto.parse().ok()?,
        })
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

/// `line` with an xdp_printk message decoded, or None if it is not one.
fn decode(line: &str) -> Option<(String, Frame)> {
    const TAG: &str = "bpf_trace_printk: ";
    let at = line.find(TAG)? + TAG.len();
    let frame = Frame::parse(&line[at..])?;
    let text =
        format!("{}src: {} dst: {} proto: {:#06x}", &line[..at], frame.src, frame.dst, frame.proto);
    Some((text, frame))
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    tracefs::ensure_mounted()?;
    let path = Path::new(tracefs::ROOT).join("trace_pipe");
    let mut pipe = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let stop = Stop::install()?;
    out.info(format!(
        "Reading {}; load xdp_printk to see frames (`xdpctl load --dev IF --progname \
         xdp_printk`); Ctrl-C stops",
        path.display()
    ));

    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut decoded = 0u64;
    while args.count.is_none_or(|n| decoded < n) && !stop.requested() {
        // trace_pipe blocks in read(); poll so that a stop request is seen.
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) | Err(Errno::EINTR) => continue,
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
            match decode(&line) {
                Some((text, frame)) => {
                    decoded += 1;
                    if out.json {
                        out.json(&frame)?;
                    } else {
                        out.print(&format!("{text}\n"))?;
                    }
                }
                None if !out.json => out.print(&format!("{line}\n"))?,
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

    #[test]
    fn decodes_xdp_printk_lines_and_keeps_their_prefix() {
        // 02:00:00:00:00:02 and 02:00:00:00:00:01 as mac_to_u64 packs them.
        let line = "    ping-1207    [001] ..s2.  2411.503617: bpf_trace_printk: \
                    src: 2199023255554 dst: 2199023255553 proto: 34525";
        let (text, frame) = decode(line).unwrap();
        assert_eq!(
            text,
            "    ping-1207    [001] ..s2.  2411.503617: bpf_trace_printk: \
             src: 02:00:00:00:00:02 dst: 02:00:00:00:00:01 proto: 0x86dd"
        );
        assert_eq!(frame.proto, 0x86dd);
    }

    #[test]
    fn a_hostile_task_name_is_escaped_and_the_line_still_decoded() {
        let raw = b"  p\x1b[2J\x9b-77  [001] ..s2.  1.0: bpf_trace_printk: \
                    src: 2199023255554 dst: 2199023255553 proto: 34525";
        let line = escape::bytes(raw);
        let (text, frame) = decode(&line).unwrap();
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
            // More than six octets' worth is no MAC.
            "  a-1 [000] ..... 1.0: bpf_trace_printk: src: 281474976710656 dst: 1 proto: 1",
            "  a-1 [000] ..... 1.0: sched_switch: prev_comm=a",
        ] {
            assert_eq!(decode(line), None, "{line}");
        }
    }
}
