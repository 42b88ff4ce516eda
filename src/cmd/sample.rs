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
//! this switches on, for the verdicts asked, under a deadline renewed every
//! second (a killed sampler's lasts moments), and off again on exit. Each
//! frame comes with the program's verdict, which pcapng keeps as the
//! packet's comment. The frames come through perf buffers this opens on the
//! program's perf event array: they exist only while a capture runs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    MapCore, OpenObject, PerfBuffer, PerfBufferBuilder, RingBuffer, RingBufferBuilder,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::caps::{self, Cap};
use crate::error::Exit;
use crate::escape;
use crate::io::capture::{CaptureWriter, Format, Totals};
use crate::io::clock::{self, WallClock};
use crate::io::outfile::NewFile;
use crate::io::spool::{Chunk, Offer, Outcome, Spool};
use crate::net::iface::{self, Iface};
use crate::obj::logging;
use crate::obj::maps;
use crate::obj::skel::sample_prog::{XdpSamplePktsKernSkel, XdpSamplePktsKernSkelBuilder};
use crate::obj::skel::{SampleCounts, SampleCtl, SampleHdr, VerdictHdr};
use crate::obj::verdicts::{Missing, Tap, Verdict};
use crate::output::{self, Output};
use crate::stop::Stop;
use crate::xdp::attach::Attachment;
use crate::xdp::attach::{self, ModeRequest};
use crate::xdp::ifstate::{prog_name, IfState};
use crate::xdp::lock::Lock;

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
/// How long a program's sampling path stays on without being renewed: what
/// a killed sampler leaves on, at most.
const LEASE_NS: u64 = 3_000_000_000;
/// How often the lease is renewed and the program looked at.
const RENEW_EVERY: Duration = Duration::from_secs(1);

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

/// The program captured through, and its sampling path.
struct Through {
    prog_id: u32,
    prog_name: String,
    tap: Tap,
    /// The switch's verdict mask.
    verdicts: u32,
    /// One sampler per interface, held while this one runs.
    _lock: Lock,
}

/// Everything is checked, and the file created, before anything is attached
/// or switched on.
fn plan(args: &Args, out: Output) -> Result<(Plan, Via)> {
    let dev = iface::resolve(&args.dev)?;
    let via = match attach::query(dev.index)?.first() {
        Some(_) => Via::Program(Box::new(through(&dev, &args.verdicts)?)),
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

/// The sampling path of the xdpctl program on `dev`, under the sampling
/// lock; refused, with what to do, for another tool's program or one
/// without the path.
fn through(dev: &Iface, verdicts: &[Verdict]) -> Result<Through> {
    // Whose program it is, and which maps it uses: other programs' state.
    caps::require("sample", &[Cap::Bpf, Cap::NetAdmin, Cap::SysAdmin]).with_context(|| {
        format!("{} runs an XDP program, and capturing through it reads its maps", dev.name)
    })?;
    let lock = Lock::sampling(dev)?;
    let state = IfState::read(dev)?;
    let Some(att) = state.attached.first().copied() else {
        bail!("{}: its XDP program went away meanwhile; run again", dev.name)
    };
    if !state.is_ours(att)? {
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode), not loaded by xdpctl; xdpctl \
             captures only through its own programs, or with its own sampler on a free \
             interface: `xdpctl unload --dev {0} --force` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    let name = state.name_of(att.prog_id);
    let dir = state.pin_dir(None)?;
    match Tap::open(&dir, att.prog_id)? {
        Ok(tap) => Ok(Through {
            prog_id: att.prog_id,
            prog_name: name,
            tap,
            verdicts: Verdict::mask(verdicts),
            _lock: lock,
        }),
        Err(missing) => bail!(no_sampling_path(&state, att, &name, &dir, missing)),
    }
}

/// Why the program on `state`'s interface cannot be captured through, and
/// the reload that fixes it.
fn no_sampling_path(
    state: &IfState,
    att: Attachment,
    name: &str,
    dir: &Path,
    missing: Missing,
) -> String {
    let dev = &state.dev.name;
    let object = state.rec.as_ref().and_then(|r| r.object.clone());
    // A shipped program's record names the shipped object.
    let file = object.filter(|o| o != crate::obj::catalog::ObjectFile::XdpProgKern.name());
    let reload = match &file {
        None => format!("xdpctl load --dev {dev} --progname {name} --force --reuse-maps"),
        Some(f) => {
            format!("xdpctl load --dev {dev} --obj {f} --progname {name} --force --reuse-maps")
        }
    };
    let (why, fix) = match (missing, &file) {
        (Missing::NotPinned, None) => (
            format!(
                "has no sampling switch pinned in {} ({}): an older xdpctl loaded it",
                dir.display(),
                crate::obj::verdicts::CTL_MAP
            ),
            format!("reload it with this xdpctl (`{reload}` keeps its counters)"),
        ),
        (Missing::NotPinned, Some(f)) => (
            format!(
                "has no sampling switch pinned in {}: {f} was not built with xdpctl's \
                 include/xdp_stats_kern.h (or was loaded by an older xdpctl)",
                dir.display()
            ),
            format!(
                "end its programs in xdp_stats_record_action() of this xdpctl's \
                 include/xdp_stats_kern.h, rebuild and reload it (`{reload}`)"
            ),
        ),
        (Missing::NotUsed, _) => (
            format!("does not use the sampling maps pinned in {} (another load's)", dir.display()),
            format!("reload it (`{reload}`)"),
        ),
    };
    format!(
        "{dev} runs {name} (id {}, {} mode), which {why}; {fix}, or `xdpctl unload --dev {dev}` \
         to capture with xdpctl's own sampler",
        att.prog_id, att.mode
    )
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

/// Pages of each CPU's perf buffer: `bytes` shared out among the possible
/// CPUs, as a power of two (as the kernel requires), one page at least.
fn perf_pages(bytes: u32) -> Result<usize> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("reading the page size")?
        .and_then(|p| usize::try_from(p).ok())
        .unwrap_or(4096);
    let each = (bytes as usize / maps::possible_cpus()?.max(1) / page).max(1);
    Ok(1 << each.ilog2())
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

/// Why sampling ended.
#[derive(PartialEq, Eq)]
enum End {
    Stop,
    Count,
    /// The writer ended: the output failed or its reader has gone.
    Output,
    /// The program sampled through left the interface.
    Gone,
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
        record: impl Fn(&[u8]) -> i32 + Copy + 'cb,
    ) -> Result<Reader<'cb>> {
        Ok(match self {
            Tapping::Sampler { skel, .. } => {
                let mut builder = RingBufferBuilder::new();
                builder.add(&skel.maps.samples, record).context("reading the sample ring")?;
                Reader::Ring(builder.build().context("reading the sample ring")?)
            }
            Tapping::Program { through, .. } => Reader::Perf(
                PerfBufferBuilder::new(&through.tap.samples)
                    .pages(perf_pages(buffer_bytes)?)
                    // A record past --count is dropped: a perf buffer
                    // cannot be left half read.
                    .sample_cb(move |_cpu, data: &[u8]| {
                        record(data);
                    })
                    .build()
                    .with_context(|| {
                        format!("opening perf buffers on {}", crate::obj::verdicts::SAMPLES_MAP)
                    })?,
            ),
        })
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

/// A program's sampling path switched on, its lease renewed while the
/// capture runs; off when dropped, however the capture ends. A killed
/// sampler cannot switch it off: the lease runs out by itself.
struct Switch<'a> {
    through: &'a Through,
    dev: &'a Iface,
    ctl: SampleCtl,
    renewed: Instant,
}

impl<'a> Switch<'a> {
    fn on(through: &'a Through, dev: &'a Iface, snaplen: u32) -> Result<Switch<'a>> {
        let ctl = SampleCtl {
            expiry_ns: clock::monotonic_ns()? + LEASE_NS,
            enabled: 1,
            verdicts: through.verdicts,
            snaplen,
            pad: 0,
        };
        through.tap.set(&ctl)?;
        Ok(Switch { through, dev, ctl, renewed: Instant::now() })
    }

    /// Renew the lease once a second; false once the program has left the
    /// interface (unloaded, or replaced: even with --reuse-maps a new
    /// program has a switch of its own, a global).
    fn renew(&mut self) -> Result<bool> {
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(true);
        }
        let now = attach::query(self.dev.index)?.first().map(|a| a.prog_id);
        if now != Some(self.through.prog_id) {
            return Ok(false);
        }
        self.ctl.expiry_ns = clock::monotonic_ns()? + LEASE_NS;
        self.through.tap.set(&self.ctl)?;
        self.renewed = Instant::now();
        Ok(true)
    }
}

impl Drop for Switch<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.through.tap.off() {
            output::say(&format!(
                "warning: could not switch sampling off ({e:#}); it stops by itself within {} s",
                LEASE_NS / 1_000_000_000
            ));
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
    let mut outbox = Outbox { spool, pending: None };
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

/// The verdicts of a switch's mask, by name: "all" for every one.
fn verdict_list(mask: u32) -> String {
    if mask == Verdict::mask(&[]) {
        return "all".into();
    }
    let names: Vec<String> =
        (0..32).filter(|a| mask & (1 << a) != 0).map(Verdict::name_of).collect();
    names.join(", ")
}

/// Where records are read from: the sampler's ring, or the perf buffers a
/// capture through a program opens, one per CPU.
enum Reader<'cb> {
    Ring(RingBuffer<'cb>),
    Perf(PerfBuffer<'cb>),
}

impl Reader<'_> {
    fn epoll_fd(&self) -> i32 {
        match self {
            Reader::Ring(ring) => ring.epoll_fd(),
            Reader::Perf(perf) => perf.epoll_fd(),
        }
    }
}

/// Moves records from the ring (or perf buffers) through the encoder
/// towards the writer.
struct Pump<'a, 'r> {
    reader: &'a Reader<'r>,
    state: &'a RefCell<Encoding>,
    /// The most one record can take encoded.
    max_record: usize,
}

impl Pump<'_, '_> {
    /// Sample until a stop request, --count, or the end of the output.
    /// While the writer is behind, records wait in the buffers, which
    /// count those they have no room for.
    /// `tick` runs on every round; false ends the capture (End::Gone).
    fn run(
        &self,
        outbox: &mut Outbox,
        clock: &RefCell<WallClock>,
        stop: &Stop,
        tick: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<End> {
        // SAFETY: the epoll fd belongs to the reader, which outlives this function.
        let ready = unsafe { BorrowedFd::borrow_raw(self.reader.epoll_fd()) };
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
            // Woken when the ring is a quarter full (perf buffers: at each
            // record), else after DRAIN_EVERY.
            match poll(&mut [PollFd::new(ready, PollFlags::POLLIN)], timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("waiting for samples"),
            }
            self.fill()?;
            outbox.take(&mut self.state.borrow_mut());
            clock.borrow_mut().refresh()?;
            if !tick()? {
                return Ok(End::Gone);
            }
        }
    }

    /// After the detach: what is left buffered, as far as the writer
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

    /// Encode records until a chunk's worth or none is left (or, from perf
    /// buffers, which are read whole, a chunk and one CPU's buffer at most).
    fn fill(&self) -> Result<()> {
        match self.reader {
            Reader::Ring(ring) => loop {
                let room = self.room();
                if room == 0 {
                    return Ok(());
                }
                let n = (room / self.max_record).clamp(1, BATCH);
                let got = ring.consume_raw_n(n);
                self.failed()?;
                if usize::try_from(got).map_or(true, |got| got < n) {
                    return Ok(());
                }
            },
            Reader::Perf(perf) => {
                for cpu in 0..perf.buffer_cnt() {
                    if self.room() == 0 {
                        break;
                    }
                    perf.consume_buffer(cpu).context("reading the perf buffers")?;
                    self.failed()?;
                }
                Ok(())
            }
        }
    }

    /// Bytes the current chunk has room for: none once --count is reached.
    fn room(&self) -> usize {
        let st = self.state.borrow();
        if st.done() {
            return 0;
        }
        CHUNK_BYTES.saturating_sub(st.encoder.buffered())
    }

    /// A failure inside the callback, kept in the state.
    fn failed(&self) -> Result<()> {
        match self.state.borrow_mut().failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
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
    /// Records of a program's sampling path: how to read and note them.
    judged: Option<Judged>,
}

/// A program's verdicts: who judged, since when, and how often each verdict
/// was written.
struct Judged {
    prog: String,
    prog_id: u32,
    /// CLOCK_MONOTONIC at the start: older records are an earlier capture's.
    since_ns: u64,
    counts: BTreeMap<String, u64>,
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
            Ok(false) => 0,
            Ok(true) => {
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

    /// Encode one record; false if it is not this capture's.
    fn write(&mut self, record: &[u8], clock: &WallClock) -> Result<bool> {
        let Some(judged) = self.judged.as_mut() else {
            let hdr: SampleHdr = maps::decode(record, "sample record")?;
            let data = frame(record, size_of::<SampleHdr>(), hdr.cap_len)?;
            self.encoder.packet(clock.wall(hdr.tstamp_ns), hdr.orig_len, data)?;
            return Ok(true);
        };
        let hdr: VerdictHdr = maps::decode(record, "sample record")?;
        if hdr.sample.tstamp_ns < judged.since_ns {
            return Ok(false);
        }
        let data = frame(record, size_of::<VerdictHdr>(), hdr.sample.cap_len)?;
        let verdict = Verdict::name_of(hdr.verdict);
        let note = format!("verdict={verdict} prog={} id={}", judged.prog, judged.prog_id);
        let time = clock.wall(hdr.sample.tstamp_ns);
        self.encoder.noted_packet(time, hdr.sample.orig_len, data, Some(note))?;
        *judged.counts.entry(verdict).or_default() += 1;
        Ok(true)
    }
}

/// The `len` frame bytes of `record` after its `hdr`-byte header.
fn frame(record: &[u8], hdr: usize, len: u32) -> Result<&[u8]> {
    record
        .get(hdr..hdr + len as usize)
        .ok_or_else(|| anyhow!("sample record of {} bytes is cut short", record.len()))
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

    #[test]
    fn perf_buffers_share_the_size_out_among_cpus() {
        let cpus = maps::possible_cpus().unwrap();
        assert_eq!(perf_pages(4096).unwrap(), 1, "a page at least");
        let pages = perf_pages(8 << 20).unwrap();
        assert!(pages.is_power_of_two());
        // The largest power of two that fits: doubled, it would not.
        let each = (8 << 20) / cpus;
        assert!(pages * 4096 <= each.max(4096) && pages * 2 * 4096 > each, "{pages} for {cpus}");
    }
}
