//! `xdpctl sample`: capture the frames an interface receives into a pcap or
//! pcapng file, from an XDP program that copies the head of each frame to a
//! ring buffer and passes the frame on (tracing04). The program is attached
//! through a bpf_link, so it goes when xdpctl does, however that happens.
//! A writer thread owns the output (spool.rs): a stalled reader never holds
//! up a stop request.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, OpenObject, RingBuffer, RingBufferBuilder};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::error::Exit;
use crate::escape;
use crate::io::capture::{CaptureWriter, Format, Totals};
use crate::io::clock::WallClock;
use crate::io::outfile::NewFile;
use crate::io::spool::{Chunk, Offer, Outcome, Spool};
use crate::net::iface::{self, Iface};
use crate::obj::logging;
use crate::obj::maps;
use crate::obj::skel::sample_prog::{XdpSamplePktsKernSkel, XdpSamplePktsKernSkelBuilder};
use crate::obj::skel::{SampleCounts, SampleHdr};
use crate::output::{self, Output};
use crate::stop::Stop;
use crate::xdp::attach::{self, ModeRequest};
use crate::xdp::ifstate::prog_name;

/// The largest sample the program can take.
const MAX_SNAPLEN: u32 = crate::obj::skel::SAMPLE_MAX_SNAPLEN;
/// How long samples may wait in the ring before they are written, when too
/// few arrive to wake xdpctl: a reader on a pipe sees them this late at most.
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// Records taken from the ring per call, at most.
const BATCH: usize = 8192;
/// Bytes encoded before they go to the writer thread (one record more at
/// most): with its short queue, this bounds the capture's memory.
const CHUNK_BYTES: usize = 1 << 20;
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
    /// Where the sampler runs: native (driver), skb (generic), or auto
    #[arg(short, long, value_enum, default_value_t = ModeRequest::DEFAULT)]
    pub mode: ModeRequest,
    /// Ring buffer size in KiB, rounded up to a power of two
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
}

/// What the user asked for, checked, with the output ready.
struct Plan {
    dev: Iface,
    mode: Option<attach::Mode>,
    snaplen: u32,
    ring_bytes: u32,
    format: Format,
    count: Option<u64>,
    dest: Dest,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // First: from here Ctrl-C and SIGTERM end the capture through its
    // cleanup, so no temporary file outlives them.
    let stop = Stop::install()?;
    let mut plan = plan(args, out)?;
    let summary = capture(&mut plan, out, &stop)?;
    report(&summary, matches!(plan.dest, Dest::Stdout), out)
}

/// Everything is checked, and the file created, before anything is attached.
fn plan(args: &Args, out: Output) -> Result<Plan> {
    let dev = iface::resolve(&args.dev)?;
    let mode = match args.mode {
        ModeRequest::Hw => bail!(
            "--mode hw: the sampler's ring buffer cannot be offloaded; use native, skb or auto"
        ),
        m => m.fixed(),
    };
    if let Some(att) = attach::query(dev.index)?.first() {
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode); the sampler needs the \
             interface to itself: `xdpctl unload --dev {0}` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    Ok(Plan {
        dev,
        mode,
        snaplen: effective_snaplen(args.snaplen, out),
        ring_bytes: ring_size(args.buffer_kib),
        format: args.format.unwrap_or_else(|| Format::for_path(&args.file)),
        count: args.count,
        dest: Dest::open(&args.file)?,
    })
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

/// The ring's size in bytes: a power of two of at least a page, as the
/// kernel requires.
fn ring_size(kib: u32) -> u32 {
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
    config.wakeup_bytes = u64::from(plan.ring_bytes / 4);
    open.maps.samples.set_max_entries(plan.ring_bytes).context("sizing the sample ring")?;
    logging::load("the shipped sampler xdp_sample", || open.load())
}

/// Why sampling ended.
#[derive(PartialEq, Eq)]
enum End {
    Stop,
    Count,
    /// The writer ended: the output failed or its reader has gone.
    Output,
}

fn capture(plan: &mut Plan, out: Output, stop: &Stop) -> Result<Summary> {
    let mut storage = MaybeUninit::uninit();
    let skel = load(plan, &mut storage)?;
    let dev = &plan.dev;
    let clock = RefCell::new(WallClock::new()?);
    let start = WallClock::now()?;
    let link = attach::attach_link(dev, skel.progs.xdp_sample.as_fd(), plan.mode)
        .with_context(|| Exit::attach(format!("attaching the sampler to {}", dev.name)))?;
    // Only now does the capture replace what was at the path.
    plan.dest.put_in_place()?;
    let spool = Spool::start(plan.dest.output()?)?;
    let mut outbox = Outbox { spool, pending: None };
    let encoder = CaptureWriter::new(Vec::new(), plan.format, &dev.name, plan.snaplen)?;
    if !out.quiet {
        let mode = attach::query(dev.index)?.first().map_or("?".into(), |a| a.mode.to_string());
        out.warn(&format!(
            "sampling {} ({mode} mode) to {} ({}, snaplen {}); Ctrl-C stops",
            escape::text(&dev.name),
            escape::text(&plan.dest.name()),
            plan.format.name(),
            plan.snaplen
        ));
    }

    let state = RefCell::new(Encoding {
        encoder,
        ends: Vec::new(),
        taken: 0,
        limit: plan.count,
        failed: None,
    });
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.samples, |record: &[u8]| state.borrow_mut().record(record, &clock.borrow()))
        .context("reading the sample ring")?;
    let ring = builder.build().context("reading the sample ring")?;
    // A record's data and its pcap (16 bytes) or pcapng (32, padding 3) header.
    let pump = Pump { ring: &ring, state: &state, max_record: plan.snaplen as usize + 64 };
    let end = pump.run(&mut outbox, &clock, stop)?;

    // Detach at once; what is still in the ring, and the end of the file,
    // go out as far as the output takes them within the grace.
    drop(link);
    let deadline = Instant::now() + GRACE;
    if end != End::Output {
        pump.drain(&mut outbox, deadline)?;
    }
    drop(ring);
    let counts = read_counts(&skel.maps.sample_stats)?;
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
    Ok(Summary {
        ifname: dev.name.clone(),
        ifindex: dev.index,
        file: plan.dest.name(),
        format: plan.format.name(),
        snaplen: plan.snaplen,
        written,
        seen: counts.seen,
        lost: counts.lost,
    })
}

/// Moves records from the ring through the encoder towards the writer.
struct Pump<'a, 'r> {
    ring: &'a RingBuffer<'r>,
    state: &'a RefCell<Encoding>,
    /// The most one record can take encoded.
    max_record: usize,
}

impl Pump<'_, '_> {
    /// Sample until a stop request, --count, or the end of the output.
    /// While the writer is behind, records wait in the ring, which counts
    /// those it has no room for.
    fn run(&self, outbox: &mut Outbox, clock: &RefCell<WallClock>, stop: &Stop) -> Result<End> {
        // SAFETY: the epoll fd belongs to the ring, which outlives this function.
        let ready = unsafe { BorrowedFd::borrow_raw(self.ring.epoll_fd()) };
        let timeout = PollTimeout::try_from(DRAIN_EVERY).unwrap_or(PollTimeout::NONE);
        loop {
            if stop.requested() {
                return Ok(End::Stop);
            }
            if outbox.spool.ended() {
                return Ok(End::Output);
            }
            if !outbox.hand_over() {
                outbox.spool.wait(DRAIN_EVERY);
                continue;
            }
            if self.state.borrow().done() {
                return Ok(End::Count);
            }
            // Woken when the ring is a quarter full, else after DRAIN_EVERY.
            match poll(&mut [PollFd::new(ready, PollFlags::POLLIN)], timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for samples"),
            }
            self.fill()?;
            outbox.take(&mut self.state.borrow_mut());
            clock.borrow_mut().refresh()?;
        }
    }

    /// After the detach: what is left in the ring, as far as the writer
    /// takes it by `deadline`.
    fn drain(&self, outbox: &mut Outbox, deadline: Instant) -> Result<()> {
        while outbox.flush(deadline) && !self.state.borrow().done() {
            self.fill()?;
            outbox.take(&mut self.state.borrow_mut());
            if outbox.pending.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Encode records from the ring until a chunk's worth or none is left.
    fn fill(&self) -> Result<()> {
        loop {
            let room = CHUNK_BYTES.saturating_sub(self.state.borrow().encoder.buffered());
            if room == 0 || self.state.borrow().done() {
                return Ok(());
            }
            let n = (room / self.max_record).clamp(1, BATCH);
            // A failure inside the callback is kept in the state.
            let got = self.ring.consume_raw_n(n);
            if let Some(e) = self.state.borrow_mut().failed.take() {
                return Err(e);
            }
            if usize::try_from(got).map_or(true, |got| got < n) {
                return Ok(());
            }
        }
    }
}

/// Encoded chunks on their way to the writer thread: one waits here while
/// the writer's queue is full, and meanwhile the ring is left alone.
struct Outbox {
    spool: Spool,
    pending: Option<Chunk>,
}

impl Outbox {
    /// Queue the waiting chunk if there is room; whether none waits now.
    fn hand_over(&mut self) -> bool {
        let Some(chunk) = self.pending.take() else { return true };
        match self.spool.offer(chunk) {
            // Ended: the chunk is dropped; the writer's end is seen next.
            Offer::Taken | Offer::Ended => true,
            Offer::Full(chunk) => {
                self.pending = Some(chunk);
                false
            }
        }
    }

    /// Hand over the waiting chunk by `deadline`; whether the writer has it.
    fn flush(&mut self, deadline: Instant) -> bool {
        loop {
            if self.hand_over() {
                return !self.spool.ended();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.spool.wait(left.min(DRAIN_EVERY));
        }
    }

    /// What the encoder holds becomes the waiting chunk.
    fn take(&mut self, st: &mut Encoding) {
        if self.pending.is_none() && st.encoder.buffered() > 0 {
            let mut chunk = self.spool.chunk();
            st.encoder.swap(&mut chunk.bytes);
            std::mem::swap(&mut st.ends, &mut chunk.ends);
            self.pending = Some(chunk);
        }
    }
}

/// The ring callback's state: records become packets in the current chunk.
struct Encoding {
    encoder: CaptureWriter<Vec<u8>>,
    /// Where each record encoded since the last chunk ends.
    ends: Vec<usize>,
    taken: u64,
    limit: Option<u64>,
    failed: Option<anyhow::Error>,
}

impl Encoding {
    fn done(&self) -> bool {
        self.limit.is_some_and(|n| self.taken >= n)
    }

    /// Returns what libbpf expects: negative stops this pass.
    fn record(&mut self, record: &[u8], clock: &WallClock) -> i32 {
        if self.done() || self.failed.is_some() {
            return -1;
        }
        match self.write(record, clock) {
            Ok(()) => {
                self.taken += 1;
                self.ends.push(self.encoder.buffered());
                0
            }
            Err(e) => {
                self.failed = Some(e);
                -1
            }
        }
    }

    fn write(&mut self, record: &[u8], clock: &WallClock) -> Result<()> {
        let hdr: SampleHdr = maps::decode(record, "sample record")?;
        let data = record
            .get(size_of::<SampleHdr>()..size_of::<SampleHdr>() + hdr.cap_len as usize)
            .ok_or_else(|| anyhow!("sample record of {} bytes is cut short", record.len()))?;
        self.encoder.packet(clock.wall(hdr.tstamp_ns), hdr.orig_len, data)
    }
}

/// The program's counters, summed over CPUs.
fn read_counts(map: &impl MapCore) -> Result<SampleCounts> {
    maps::sum(map, &0u32.to_ne_bytes(), "the sampler's counters (sample_stats)")
}

/// The closing lines: on stderr when stdout carries the capture.
fn report(s: &Summary, to_stdout: bool, out: Output) -> Result<()> {
    if s.lost > 0 {
        output::say(&format!(
            "warning: {} samples lost: the ring buffer was full; \
             raise --buffer-size or lower --snaplen",
            s.lost
        ));
    }
    let text = format!(
        "{} samples written to {}, {} packets seen, {} lost\n",
        s.written,
        escape::text(&s.file),
        s.seen,
        s.lost
    );
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
    fn rings_are_a_power_of_two_of_pages() {
        assert_eq!(ring_size(4), 4096);
        assert_eq!(ring_size(8192), 8 << 20);
        assert_eq!(ring_size(5), 8192);
        assert_eq!(ring_size(1000), 1 << 20);
    }
}
