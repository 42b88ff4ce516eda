//! The writing end of a capture: a thread that owns the output (a file, a
//! pipe, a socket) and writes the chunks of encoded records handed to it, so
//! the sampling loop never waits on a slow or stalled reader and always sees
//! a stop request. It counts the records whose last byte the output took, and
//! no others. Memory is bounded: a short queue of chunks, which come back to
//! be filled again.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Chunks waiting for the writer at most. With the one it writes and the one
/// waiting to be queued, at most QUEUE + 2 chunks exist.
const QUEUE: usize = 2;
/// How often a writer waiting for room checks whether to give up.
const TICK: Duration = Duration::from_millis(50);
/// What one write carries on an output that cannot say how much it takes
/// without waiting (a FIFO, a terminal): a pipe with room takes it whole.
const PIECE: usize = libc::PIPE_BUF;

/// Encoded records, and where each ends in `bytes`.
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

pub enum Offer {
    Taken,
    /// The queue is full: try again once the writer has caught up.
    Full(Chunk),
    /// The writer has ended (the output failed): the chunk is dropped.
    Ended,
}

#[derive(Debug)]
pub enum Outcome {
    /// Everything handed over was written.
    Written,
    /// The output failed: a closed pipe, a full disk.
    Failed(io::Error),
    /// The output took nothing more in the time it was given.
    Stalled,
}

pub struct Spool {
    queue: Option<SyncSender<Chunk>>,
    returned: Receiver<Chunk>,
    spare: Vec<Chunk>,
    written: Arc<AtomicU64>,
    give_up: Arc<AtomicBool>,
    thread: Option<JoinHandle<Outcome>>,
    ended: bool,
}

impl Spool {
    /// Start the writer thread on `out`.
    pub fn start(out: File) -> Result<Spool> {
        let (queue, chunks) = mpsc::sync_channel(QUEUE);
        let (give_back, returned) = mpsc::channel();
        let written = Arc::new(AtomicU64::new(0));
        let give_up = Arc::new(AtomicBool::new(false));
        let writer = Writer { out, written: Arc::clone(&written), give_up: Arc::clone(&give_up) };
        let thread = thread::Builder::new()
            .name("xdpctl-writer".into())
            .spawn(move || writer.run(&chunks, &give_back))
            .context("starting the capture's writer thread")?;
        Ok(Spool {
            queue: Some(queue),
            returned,
            spare: Vec::new(),
            written,
            give_up,
            thread: Some(thread),
            ended: false,
        })
    }

    /// An empty chunk to fill: one the writer has finished with, else a new one.
    pub fn chunk(&mut self) -> Chunk {
        self.collect();
        let mut chunk = self.spare.pop().unwrap_or_default();
        chunk.bytes.clear();
        chunk.ends.clear();
        chunk
    }

    pub fn offer(&mut self, chunk: Chunk) -> Offer {
        let Some(queue) = &self.queue else { return Offer::Ended };
        match queue.try_send(chunk) {
            Ok(()) => Offer::Taken,
            Err(mpsc::TrySendError::Full(chunk)) => Offer::Full(chunk),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.ended = true;
                Offer::Ended
            }
        }
    }

    /// Wait up to `timeout` for the writer to finish a chunk, or to end.
    pub fn wait(&mut self, timeout: Duration) {
        match self.returned.recv_timeout(timeout) {
            Ok(chunk) => self.spare.push(chunk),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.ended = true,
        }
    }

    /// Whether the writer has ended: it failed, or (after `finish`) is done.
    pub fn ended(&mut self) -> bool {
        self.collect();
        self.ended
    }

    /// Records that reached the output so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// No more chunks: let the writer write out its queue until `deadline`,
    /// then make it give up. How it went.
    pub fn finish(&mut self, deadline: Instant) -> Outcome {
        self.queue = None;
        if !self.wait_end(deadline) {
            // A writer waiting for room notices within a tick; one blocked
            // in a write that cannot wait without blocking may not.
            self.give_up.store(true, Ordering::Release);
            if !self.wait_end(Instant::now() + 2 * TICK) {
                return Outcome::Stalled;
            }
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            _ => Outcome::Failed(io::Error::other("the capture's writer thread failed")),
        }
    }

    fn wait_end(&mut self, deadline: Instant) -> bool {
        while !self.ended() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait(left.min(TICK));
        }
        true
    }

    /// Take back the chunks the writer is done with; notice its end.
    fn collect(&mut self) {
        loop {
            match self.returned.try_recv() {
                Ok(chunk) => self.spare.push(chunk),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.ended = true;
                    return;
                }
            }
        }
    }
}

impl Drop for Spool {
    /// Left early (an error): a writer still waiting for room stops.
    fn drop(&mut self) {
        self.give_up.store(true, Ordering::Release);
    }
}

/// The thread's side.
struct Writer {
    out: File,
    written: Arc<AtomicU64>,
    give_up: Arc<AtomicBool>,
}

/// How the output is written to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// A regular file: plain writes; they never wait on a reader.
    Plain,
    /// A pipe or socket: writes that take what fits now and never wait
    /// (RWF_NOWAIT), so every byte taken is counted when it is.
    NoWait,
    /// Anything else (a FIFO, a terminal): a PIPE_BUF piece once poll(2)
    /// says there is room.
    Paced,
}

impl Writer {
    fn run(self, chunks: &Receiver<Chunk>, give_back: &Sender<Chunk>) -> Outcome {
        let mut how = match self.out.metadata() {
            Ok(m) if m.file_type().is_file() => How::Plain,
            _ => How::NoWait,
        };
        while let Ok(chunk) = chunks.recv() {
            if let Err(end) = self.write(&chunk, &mut how) {
                return end;
            }
            // The loop may have stopped listening; the chunk is then freed.
            let _ = give_back.send(chunk);
        }
        Outcome::Written
    }

    fn write(&self, chunk: &Chunk, how: &mut How) -> Result<(), Outcome> {
        let (mut at, mut next) = (0, 0);
        while at < chunk.bytes.len() {
            if self.give_up.load(Ordering::Acquire) {
                return Err(Outcome::Stalled);
            }
            match self.write_some(&chunk.bytes[at..], how) {
                Ok(0) => return Err(Outcome::Failed(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    at += n;
                    let before = next;
                    while chunk.ends.get(next).is_some_and(|&end| end <= at) {
                        next += 1;
                    }
                    self.written.fetch_add((next - before) as u64, Ordering::Release);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_for_room(),
                Err(e) => return Err(Outcome::Failed(e)),
            }
        }
        Ok(())
    }

    fn write_some(&self, buf: &[u8], how: &mut How) -> io::Result<usize> {
        match how {
            How::Plain => (&self.out).write(buf),
            How::NoWait => match write_nowait(&self.out, buf) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    *how = How::Paced;
                    self.write_some(buf, how)
                }
                other => other,
            },
            How::Paced => {
                if !self.has_room(PollTimeout::ZERO) {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                (&self.out).write(&buf[..buf.len().min(PIECE)])
            }
        }
    }

    fn wait_for_room(&self) {
        let tick = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
        self.has_room(tick);
    }

    /// Whether the output can take data now, waiting up to `timeout`. An
    /// error (a reader gone) counts as room: the write then says what it is.
    fn has_room(&self, timeout: PollTimeout) -> bool {
        let mut fds = [PollFd::new(self.out.as_fd(), PollFlags::POLLOUT)];
        !matches!(poll(&mut fds, timeout), Ok(0))
    }
}

/// One write that takes only what the output can take without waiting.
fn write_nowait(out: &File, buf: &[u8]) -> io::Result<usize> {
    let iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `iov` describes `buf`, which lives and stays unchanged for the
    // call; the kernel only reads it. Offset -1 is the current position,
    // as write(2) uses (and all a pipe has).
    let n = unsafe { libc::pwritev2(out.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn chunk(records: &[&[u8]]) -> Chunk {
        let mut c = Chunk::default();
        for r in records {
            c.bytes.extend_from_slice(r);
            c.ends.push(c.bytes.len());
        }
        c
    }

    #[test]
    fn writes_everything_to_a_file_and_counts_records() {
        let path = std::env::temp_dir().join(format!("xdpctl-spool-{}", std::process::id()));
        let mut spool = Spool::start(File::create(&path).unwrap()).unwrap();
        for _ in 0..5 {
            let mut c = chunk(&[b"abc", b"de"]);
            loop {
                match spool.offer(c) {
                    Offer::Taken => break,
                    Offer::Full(back) => c = back,
                    Offer::Ended => panic!("the writer ended"),
                }
                spool.wait(TICK);
            }
        }
        assert!(matches!(spool.finish(Instant::now() + Duration::from_secs(5)), Outcome::Written));
        assert_eq!(spool.written(), 10);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcde".repeat(5));
        std::fs::remove_file(&path).unwrap();
    }

    /// A pipe nobody reads: the writer gives up when told, and has counted
    /// exactly the records whose bytes are in the pipe.
    #[test]
    fn a_stalled_pipe_counts_only_what_it_took() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let mut spool = Spool::start(File::from(write)).unwrap();
        let record = [7u8; 1000];
        let mut c = chunk(&[&record[..]; 200]);
        c.bytes.splice(0..0, [1u8; 24]);
        c.ends.iter_mut().for_each(|e| *e += 24);
        assert!(matches!(spool.offer(c), Offer::Taken));
        let started = Instant::now();
        assert!(matches!(spool.finish(Instant::now() + TICK), Outcome::Stalled));
        assert!(started.elapsed() < Duration::from_secs(1));
        let written = spool.written();
        drop(spool);
        // The thread has ended, and closed the write end with it.
        let mut got = Vec::new();
        File::from(read).read_to_end(&mut got).unwrap();
        assert!(got.len() < 24 + 200 * 1000, "the pipe stalled: {}", got.len());
        assert_eq!(written as usize, (got.len() - 24) / 1000, "complete records in the pipe");
    }
}
