//! `xdpctl sample`: capture the frames an interface receives into a pcap or
//! pcapng file, from an XDP program that copies the head of each frame to a
//! ring buffer and passes the frame on (tracing04). The program is attached
//! through a bpf_link, so it goes when xdpctl does, however that happens.
//! A writer thread owns the output (spool.rs): a stalled reader never holds
//! up a stop request.
//!
//! On an interface that runs an xdpctl program, the capture goes through
//! that program instead, which stays attached: the stats helper it ends in
//! has a sampling path (include/xdp_stats_kern.h, obj/verdicts.rs) that
//! this switches on (through.rs), for the verdicts asked, under a deadline
//! renewed every second (a killed sampler's lasts moments), and off again on
//! exit. Each frame comes with the program's verdict, which pcapng keeps as
//! the packet's comment. The frames come through perf buffers this opens on
//! the program's perf event array: they exist only while a capture runs.
//! pump.rs moves the records, from either source, to the writer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, OpenObject};
use serde::Serialize;

use crate::error::Exit;
use crate::escape;
use crate::io::capture::{CaptureWriter, Format, Totals};
use crate::io::clock::{self, WallClock};
use crate::io::outfile::NewFile;
use crate::io::spool::{Outcome, Spool};
use crate::net::iface::{self, Iface};
use crate::obj::logging;
use crate::obj::maps;
use crate::obj::skel::sample_prog::{XdpSamplePktsKernSkel, XdpSamplePktsKernSkelBuilder};
use crate::obj::skel::SampleCounts;
use crate::obj::verdicts::Verdict;
use crate::output::{self, Output};
use crate::stop::Stop;
use crate::xdp::attach::{self, ModeRequest};

mod pump;
mod through;

use pump::{Encoding, End, Judged, Outbox, Pump, Reader};
use through::{verdict_list, Switch, Through};

/// The largest sample the program can take.
const MAX_SNAPLEN: u32 = crate::obj::skel::SAMPLE_MAX_SNAPLEN;
/// How long the output has, once sampling stops, to take what is left: a
/// stop request ends xdpctl well within a second, whatever the output does.
const GRACE: Duration = Duration::from_millis(300);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface whose received frames are sampled
    #[arg(short, long, value_name = "IF")]
    pub dev: String,
    /// Capture file to write; "-" writes to stdout (`| tcpdump -r -`)
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub file: PathBuf,
    /// Stop after writing N samples
    #[arg(short, long, value_name = "N", value_parser = crate::sampler::parse_count)]
    pub count: Option<u64>,
    /// Bytes kept of each frame, 0-65535; 0 keeps whole frames (up to 9216 bytes)
    #[arg(short, long, value_name = "B", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub snaplen: u32,
    /// File format [default: pcapng for *.pcapng, else pcap]
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,
    /// Sample only frames the interface's xdpctl program gives this verdict
    /// (repeat it, or a comma list); needs an xdpctl program on IF
    #[arg(long = "verdict", value_enum, value_delimiter = ',', value_name = "VERDICT")]
    pub verdicts: Vec<Verdict>,
    /// Where the sampler runs: native (driver), skb (generic), or auto
    /// (xdpctl's own sampler, on an interface without a program)
    #[arg(short, long, value_enum, default_value_t = ModeRequest::DEFAULT)]
    pub mode: ModeRequest,
    /// Buffer size in KiB, rounded up to a power of two (through a program:
    /// shared out among the CPUs' perf buffers)
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(4..=1 << 20))]
    pub buffer_kib: u32,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct Summary {
    ifname: String,
    ifindex: u32,
    file: String,
    format: &'static str,
    snaplen: u32,
    written: u64,
    seen: u64,
    lost: u64,
    /// The program sampled through, and the samples written per verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    prog_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prog_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdicts: Option<BTreeMap<String, u64>>,
}

/// What the user asked for, checked, with the output ready.
struct Plan {
    dev: Iface,
    snaplen: u32,
    buffer_bytes: u32,
    format: Format,
    count: Option<u64>,
    dest: Dest,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // First: from here Ctrl-C and SIGTERM end the capture through its
    // cleanup, so no temporary file outlives them.
    let stop = Stop::install()?;
    let (mut plan, via) = plan(args, out)?;
    let summary = capture(&mut plan, &via, out, &stop)?;
    report(&summary, matches!(plan.dest, Dest::Stdout), out)
}

/// Where the samples come from.
enum Via {
    /// No program on the interface: xdpctl's sampler, attached for the
    /// capture in this mode.
    Sampler(Option<attach::Mode>),
    /// The xdpctl program there: its sampling path, switched on.
    Program(Box<Through>),
}

/// Everything is checked, and the file created, before anything is attached
/// or switched on.
fn plan(args: &Args, out: Output) -> Result<(Plan, Via)> {
    let dev = iface::resolve(&args.dev)?;
    let via = match attach::query(dev.index)?.first() {
        Some(_) => Via::Program(Box::new(through::open(&dev, &args.verdicts)?)),
        None if !args.verdicts.is_empty() => bail!(
            "--verdict: {} runs no XDP program, so no frame has a verdict to sample by; load \
             one (`xdpctl load --dev {0} --progname xdp_parser`), or sample every frame \
             without --verdict",
            dev.name
        ),
        None => Via::Sampler(match args.mode {
            ModeRequest::Hw => bail!(
                "--mode hw: the sampler's ring buffer cannot be offloaded; use native, skb or auto"
            ),
            m => m.fixed(),
        }),
    };
    let format = args.format.unwrap_or_else(|| Format::for_path(&args.file));
    if matches!(via, Via::Program(_)) && format == Format::Pcap && !out.quiet {
        out.warn(
            "note: pcap has no room for the verdicts; write a *.pcapng file or use \
             --format pcapng to keep them",
        );
    }
    let plan = Plan {
        dev,
        snaplen: effective_snaplen(args.snaplen, out),
        buffer_bytes: buffer_size(args.buffer_kib),
        format,
        count: args.count,
        dest: Dest::open(&args.file)?,
    };
    Ok((plan, via))
}

/// --snaplen as the program takes it: 0 is "whole frames", as in tcpdump;
/// more than the program can copy is cut down with a notice.
fn effective_snaplen(asked: u32, out: Output) -> u32 {
    match asked {
        0 => MAX_SNAPLEN,
        n if n > MAX_SNAPLEN => {
            out.warn(&format!(
                "--snaplen {n}: samples are at most {MAX_SNAPLEN} bytes, using that"
            ));
            MAX_SNAPLEN
        }
        n => n,
    }
}

/// The buffer's size in bytes: a power of two of at least a page, as the
/// kernel requires of a ring.
fn buffer_size(kib: u32) -> u32 {
    (kib.max(4) * 1024).next_power_of_two()
}

/// Where the capture goes.
enum Dest {
    Stdout,
    /// A new file, put in place over the path once the sampler is attached.
    File(NewFile),
}

impl Dest {
    fn open(path: &Path) -> Result<Dest> {
        if path.as_os_str() == "-" {
            crate::io::outfile::check_binary_stdout("-w -")?;
            return Ok(Dest::Stdout);
        }
        Ok(Dest::File(NewFile::create(path)?))
    }

    fn put_in_place(&mut self) -> Result<()> {
        match self {
            Dest::Stdout => Ok(()),
            Dest::File(file) => file.put_in_place(),
        }
    }

    /// The output for the writer thread, which owns it.
    fn output(&self) -> Result<File> {
        let fd = match self {
            Dest::Stdout => io::stdout().as_fd().try_clone_to_owned(),
            Dest::File(file) => file.file().as_fd().try_clone_to_owned(),
        };
        Ok(File::from(fd.with_context(|| format!("writing to {}", self.name()))?))
    }

    fn name(&self) -> String {
        match self {
            Dest::Stdout => "stdout".into(),
            Dest::File(file) => file.shown().to_string(),
        }
    }
}

/// The sampler, loaded with the plan's snaplen and ring size.
fn load<'obj>(
    plan: &Plan,
    storage: &'obj mut MaybeUninit<OpenObject>,
) -> Result<XdpSamplePktsKernSkel<'obj>> {
    let mut open = XdpSamplePktsKernSkelBuilder::default()
        .open(storage)
        .context("opening the shipped sampler object")?;
    let config = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("no .rodata"))?;
    config.snaplen = plan.snaplen;
    // Wake xdpctl when a quarter of the ring is waiting; the timer drains the rest.
    config.wakeup_bytes = u64::from(plan.buffer_bytes / 4);
    open.maps.samples.set_max_entries(plan.buffer_bytes).context("sizing the sample ring")?;
    logging::load("the shipped sampler xdp_sample", || open.load())
}

/// The capture point while it runs: xdpctl's sampler, attached through a
/// link, or a program's sampling path, switched on.
enum Tapping<'obj, 'v> {
    Sampler { skel: XdpSamplePktsKernSkel<'obj>, link: Option<OwnedFd> },
    Program { through: &'v Through, switch: Option<Switch<'v>>, baseline: SampleCounts },
}

impl<'v> Tapping<'_, 'v> {
    /// Open what the records are read from, each handed to `record`: the
    /// sampler's ring, or a perf buffer per CPU on the program's array.
    fn reader<'cb>(
        &self,
        buffer_bytes: u32,
        record: impl FnMut(&[u8]) -> i32 + 'cb,
    ) -> Result<Reader<'cb>> {
        match self {
            Tapping::Sampler { skel, .. } => Reader::ring(&skel.maps.samples, record),
            Tapping::Program { through, .. } => {
                Reader::perf(&through.tap.samples, buffer_bytes, record)
            }
        }
    }

    /// Start taking samples through a program: switch its path on, now
    /// that the buffers are there (the sampler took them on attach).
    fn start(&mut self, dev: &'v Iface, snaplen: u32) -> Result<()> {
        if let Tapping::Program { through, switch, .. } = self {
            *switch = Some(Switch::on(through, dev, snaplen)?);
        }
        Ok(())
    }

    /// Stop taking samples: detach the sampler, or switch the path off.
    fn stop(&mut self) {
        match self {
            Tapping::Sampler { link, .. } => drop(link.take()),
            Tapping::Program { switch, .. } => drop(switch.take()),
        }
    }

    /// Frames seen and samples lost since the capture began.
    fn counts(&self) -> Result<SampleCounts> {
        match self {
            Tapping::Sampler { skel, .. } => read_counts(&skel.maps.sample_stats),
            Tapping::Program { through, baseline, .. } => {
                let now = through.tap.counts()?;
                Ok(SampleCounts {
                    seen: now.seen.wrapping_sub(baseline.seen),
                    lost: now.lost.wrapping_sub(baseline.lost),
                })
            }
        }
    }
}

fn capture(plan: &mut Plan, via: &Via, out: Output, stop: &Stop) -> Result<Summary> {
    let mut storage = MaybeUninit::uninit();
    let dev = plan.dev.clone();
    let dev = &dev;
    let clock = RefCell::new(WallClock::new()?);
    let start = WallClock::now()?;
    // Records from before this (an earlier capture's) are not this capture's.
    let since_ns = clock::monotonic_ns()?;
    let mut tapping = match via {
        Via::Sampler(mode) => {
            let skel = load(plan, &mut storage)?;
            let link = attach::attach_link(dev, skel.progs.xdp_sample.as_fd(), *mode)
                .with_context(|| Exit::attach(format!("attaching the sampler to {}", dev.name)))?;
            Tapping::Sampler { skel, link: Some(link) }
        }
        Via::Program(through) => {
            Tapping::Program { through, switch: None, baseline: through.tap.counts()? }
        }
    };
    let encoder = CaptureWriter::new(Vec::new(), plan.format, &dev.name, plan.snaplen)?;
    let judged = match via {
        Via::Sampler(_) => None,
        Via::Program(t) => Some(Judged {
            prog: t.prog_name.clone(),
            prog_id: t.prog_id,
            since_ns,
            counts: BTreeMap::new(),
        }),
    };
    // The comment a judged record carries, at most.
    let note = judged.as_ref().map_or(0, |j| j.prog.len() + 64);
    let state = RefCell::new(Encoding {
        encoder,
        ends: Vec::new(),
        taken: 0,
        limit: plan.count,
        failed: None,
        judged,
    });
    let reader = tapping
        .reader(plan.buffer_bytes, |record| state.borrow_mut().record(record, &clock.borrow()))?;
    tapping.start(dev, plan.snaplen)?;
    // Only now does the capture replace what was at the path.
    plan.dest.put_in_place()?;
    let spool = Spool::start(plan.dest.output()?)?;
    let mut outbox = Outbox::new(spool);
    if !out.quiet {
        let source = match via {
            Via::Sampler(_) => {
                let mode =
                    attach::query(dev.index)?.first().map_or("?".into(), |a| a.mode.to_string());
                format!("{mode} mode")
            }
            Via::Program(t) => format!(
                "through {} id {}, verdicts: {}",
                escape::text(&t.prog_name),
                t.prog_id,
                verdict_list(t.verdicts)
            ),
        };
        out.warn(&format!(
            "sampling {} ({source}) to {} ({}, snaplen {}); Ctrl-C stops",
            escape::text(&dev.name),
            escape::text(&plan.dest.name()),
            plan.format.name(),
            plan.snaplen
        ));
    }

    // A record's data and its pcap (16 bytes) or pcapng (32, padding 3)
    // header, and its comment.
    let max_record = plan.snaplen as usize + 64 + note;
    let pump = Pump { reader: &reader, state: &state, max_record };
    let mut tick = || -> Result<bool> {
        let Tapping::Program { switch: Some(switch), .. } = &mut tapping else { return Ok(true) };
        switch.renew()
    };
    let end = pump.run(&mut outbox, &clock, stop, &mut tick)?;
    if end == End::Gone {
        output::say(&format!(
            "warning: the program sampled through left {} (unloaded or replaced); \
             the capture ends",
            escape::text(&dev.name)
        ));
    }

    // Detach (or switch off) at once; what is still buffered, and the end
    // of the file, go out as far as the output takes them within the grace.
    tapping.stop();
    let deadline = Instant::now() + GRACE;
    if end != End::Output {
        pump.drain(&mut outbox, deadline)?;
    }
    drop(reader);
    let counts = tapping.counts()?;
    let mut st = state.into_inner();
    if end != End::Output && outbox.flush(deadline) {
        let totals = Totals { start, end: WallClock::now()?, seen: counts.seen, lost: counts.lost };
        st.encoder.finish(totals)?;
        outbox.take(&mut st);
        outbox.flush(deadline);
    }
    let outcome = outbox.spool.finish(deadline);
    let written = outbox.spool.written();
    match outcome {
        Outcome::Written => {}
        // A reader that has gone (`| head`) ends the capture; it is no failure.
        Outcome::Failed(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Outcome::Failed(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "-w {}: writing the capture failed (disk full?)",
                plan.dest.name()
            )))
        }
        Outcome::Stalled => output::say(&format!(
            "warning: {} took no more data; {} samples taken were not written",
            plan.dest.name(),
            st.taken - written
        )),
    }
    let judged = st.judged.take();
    Ok(Summary {
        ifname: dev.name.clone(),
        ifindex: dev.index,
        file: plan.dest.name(),
        format: plan.format.name(),
        snaplen: plan.snaplen,
        written,
        seen: counts.seen,
        lost: counts.lost,
        prog_id: judged.as_ref().map(|j| j.prog_id),
        prog_name: judged.as_ref().map(|j| j.prog.clone()),
        verdicts: judged.map(|j| j.counts),
    })
}

/// The program's counters, summed over CPUs.
fn read_counts(map: &impl MapCore) -> Result<SampleCounts> {
    maps::sum(map, &0u32.to_ne_bytes(), "the sampler's counters (sample_stats)")
}

/// The closing lines: on stderr when stdout carries the capture.
fn report(s: &Summary, to_stdout: bool, out: Output) -> Result<()> {
    if s.lost > 0 {
        output::say(&format!(
            "warning: {} samples lost: the buffer was full; \
             raise --buffer-size or lower --snaplen",
            s.lost
        ));
    }
    let mut text = format!(
        "{} written to {}, {} seen, {} lost\n",
        output::count(s.written, "sample"),
        escape::text(&s.file),
        output::count(s.seen, "packet"),
        s.lost
    );
    if let (Some(id), Some(name), Some(verdicts)) = (s.prog_id, &s.prog_name, &s.verdicts) {
        let each: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        let each = if each.is_empty() { "none".to_string() } else { each.join(", ") };
        text.push_str(&format!(" - verdicts of {} (id {id}): {each}\n", escape::text(name)));
    }
    if to_stdout {
        if out.json {
            let line = serde_json::to_string(s).context("encoding JSON output")?;
            output::stderr(&format!("{}\n", escape::json(&line)));
        } else if !out.quiet {
            output::stderr(&text);
        }
        return Ok(());
    }
    if out.json {
        return out.json(s);
    }
    if out.quiet {
        return Ok(());
    }
    out.print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snaplen_zero_means_whole_frames_and_large_ones_are_capped() {
        let quiet = Output { json: false, quiet: true };
        assert_eq!(MAX_SNAPLEN, 9216);
        assert_eq!(effective_snaplen(0, quiet), MAX_SNAPLEN);
        assert_eq!(effective_snaplen(65535, quiet), MAX_SNAPLEN);
        assert_eq!(effective_snaplen(64, quiet), 64);
    }

    #[test]
    fn buffers_are_a_power_of_two_of_pages() {
        assert_eq!(buffer_size(4), 4096);
        assert_eq!(buffer_size(8192), 8 << 20);
        assert_eq!(buffer_size(5), 8192);
        assert_eq!(buffer_size(1000), 1 << 20);
    }
}
