//! Moving a capture's records from the kernel to the writer thread: the
//! sampler's ring or a program's perf buffers, read in chunks through the
//! encoder (pcap or pcapng, with a verdict's comment) and handed to the
//! spool; while the writer is behind, records wait in the kernel.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::size_of;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use libbpf_rs::{MapCore, RingBuffer, RingBufferBuilder};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::io::capture::CaptureWriter;
use crate::io::clock::WallClock;
use crate::io::perfbuf::PerfReader;
use crate::io::spool::{Chunk, Offer, Spool};
use crate::obj::maps;
use crate::obj::skel::{SampleHdr, VerdictHdr};
use crate::obj::verdicts::{Verdict, SAMPLES_MAP};
use crate::stop::Stop;

/// How long samples may wait in the ring before they are written, when too
/// few arrive to wake xdpctl: a reader on a pipe sees them this late at most.
const DRAIN_EVERY: Duration = Duration::from_millis(50);
/// Records taken from the ring per call, at most.
const BATCH: usize = 8192;
/// Bytes encoded before they go to the writer thread (one record more at
/// most): with its short queue, this bounds the capture's memory.
const CHUNK_BYTES: usize = 1 << 20;
/// Why sampling ended.
#[derive(PartialEq, Eq)]
pub(super) enum End {
    Stop,
    Count,
    /// The writer ended: the output failed or its reader has gone.
    Output,
    /// The program sampled through left the interface.
    Gone,
}

/// Pages of each CPU's perf buffer: `bytes` shared out among `cpus`, as a
/// power of two (as the kernel requires), one page at least.
fn perf_pages(bytes: u32, cpus: usize, page: usize) -> usize {
    let each = (bytes as usize / cpus.max(1) / page.max(1)).max(1);
    1 << each.ilog2()
}

fn page_size() -> Result<usize> {
    Ok(nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("reading the page size")?
        .and_then(|p| usize::try_from(p).ok())
        .unwrap_or(4096))
}

/// Where records are read from: the sampler's ring, or the perf buffers a
/// capture through a program opens, one per CPU.
pub(super) enum Reader<'cb> {
    Ring(RingBuffer<'cb>),
    Perf(PerfReader<'cb>),
}

impl<'cb> Reader<'cb> {
    /// The sampler's ring, each record handed to `record`.
    pub(super) fn ring(
        map: &impl MapCore,
        record: impl FnMut(&[u8]) -> i32 + 'cb,
    ) -> Result<Reader<'cb>> {
        let mut builder = RingBufferBuilder::new();
        builder.add(map, record).context("reading the sample ring")?;
        Ok(Reader::Ring(builder.build().context("reading the sample ring")?))
    }

    /// A perf buffer per CPU on the perf event array `map`, sharing out
    /// `bytes`, each record handed to `record`.
    pub(super) fn perf(
        map: &impl MapCore,
        bytes: u32,
        mut record: impl FnMut(&[u8]) -> i32 + 'cb,
    ) -> Result<Reader<'cb>> {
        let page = page_size()?;
        let pages = perf_pages(bytes, maps::possible_cpus()?, page);
        // Woken when a quarter of a CPU's buffer waits, as from the ring.
        let wakeup = u32::try_from(pages * page / 4).unwrap_or(u32::MAX);
        // A record past --count is dropped: a perf buffer cannot be left
        // half read.
        let perf = PerfReader::open(map.as_fd(), pages, wakeup, move |data| {
            record(data);
        })
        .with_context(|| format!("opening perf buffers on {SAMPLES_MAP}"))?;
        Ok(Reader::Perf(perf))
    }

    fn epoll_fd(&self) -> i32 {
        match self {
            Reader::Ring(ring) => ring.epoll_fd(),
            Reader::Perf(perf) => perf.epoll_fd(),
        }
    }
}

/// Moves records from the ring (or perf buffers) through the encoder
/// towards the writer.
pub(super) struct Pump<'a, 'r> {
    pub(super) reader: &'a Reader<'r>,
    pub(super) state: &'a RefCell<Encoding>,
    /// The most one record can take encoded.
    pub(super) max_record: usize,
}

impl Pump<'_, '_> {
    /// Sample until a stop request, --count, or the end of the output.
    /// While the writer is behind, records wait in the buffers, which
    /// count those they have no room for.
    /// `tick` runs on every round; false ends the capture (End::Gone).
    pub(super) fn run(
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
            // Woken when a quarter of the ring (or of a CPU's perf buffer)
            // waits, else after DRAIN_EVERY.
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
    pub(super) fn drain(&self, outbox: &mut Outbox, deadline: Instant) -> Result<()> {
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
                for cpu in 0..perf.buffers() {
                    if self.room() == 0 {
                        break;
                    }
                    perf.consume_buffer(cpu)?;
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
pub(super) struct Outbox {
    pub(super) spool: Spool,
    pending: Option<Chunk>,
}

impl Outbox {
    pub(super) fn new(spool: Spool) -> Outbox {
        Outbox { spool, pending: None }
    }

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
    pub(super) fn flush(&mut self, deadline: Instant) -> bool {
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
    pub(super) fn take(&mut self, st: &mut Encoding) {
        if self.pending.is_none() && st.encoder.buffered() > 0 {
            let mut chunk = self.spool.chunk();
            st.encoder.swap(&mut chunk.bytes);
            std::mem::swap(&mut st.ends, &mut chunk.ends);
            self.pending = Some(chunk);
        }
    }
}

/// The ring callback's state: records become packets in the current chunk.
pub(super) struct Encoding {
    pub(super) encoder: CaptureWriter<Vec<u8>>,
    /// Where each record encoded since the last chunk ends.
    pub(super) ends: Vec<usize>,
    pub(super) taken: u64,
    pub(super) limit: Option<u64>,
    pub(super) failed: Option<anyhow::Error>,
    /// Records of a program's sampling path: how to read and note them.
    pub(super) judged: Option<Judged>,
}

/// A program's verdicts: who judged, since when, and how often each verdict
/// was written.
pub(super) struct Judged {
    pub(super) prog: String,
    pub(super) prog_id: u32,
    /// CLOCK_MONOTONIC at the start: older records are an earlier capture's.
    pub(super) since_ns: u64,
    pub(super) counts: BTreeMap<String, u64>,
}

impl Encoding {
    fn done(&self) -> bool {
        self.limit.is_some_and(|n| self.taken >= n)
    }

    /// Returns what libbpf expects: negative stops this pass.
    pub(super) fn record(&mut self, record: &[u8], clock: &WallClock) -> i32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_buffers_share_the_size_out_among_cpus() {
        // 8 MiB of 4 KiB pages: 2048 pages, shared out.
        assert_eq!(perf_pages(8 << 20, 1, 4096), 2048);
        assert_eq!(perf_pages(8 << 20, 2, 4096), 1024);
        // 6 CPUs: 341 pages each, down to the power of two below.
        assert_eq!(perf_pages(8 << 20, 6, 4096), 256);
        // Never below a page, also with more CPUs than pages.
        assert_eq!(perf_pages(4096, 2, 4096), 1);
        assert_eq!(perf_pages(64 << 10, 64, 4096), 1);
        // 64 KiB pages (arm64, ppc64).
        assert_eq!(perf_pages(8 << 20, 2, 64 << 10), 64);
    }
}
