//! One AF_XDP socket bound to one queue of an interface: the UMEM (page-aligned
//! frames shared with the kernel), its fill and completion rings, the socket's
//! RX and TX rings, and the allocator that tracks which frames user space
//! holds. xdpilone does the ring arithmetic; this module owns the memory and
//! the frame bookkeeping.

use std::fmt;
use std::io;
use std::num::{NonZeroU32, NonZeroUsize};
use std::os::fd::{BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use serde::Serialize;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

use crate::error::fact;
use crate::net::iface::Iface;

/// Frames the kernel sends per sendto in copy mode (TX_BATCH_SIZE).
const KERNEL_TX_BATCH: u32 = 32;

/// Bytes per UMEM frame: a page, the kernel's default and the largest aligned size.
pub const FRAME_SIZE: u32 = 4096;

/// How frames move between the driver and the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Copy {
    /// Zero-copy where the driver can, else copy (the kernel decides).
    Auto,
    Copy,
    ZeroCopy,
}

/// The socket to open.
#[derive(Debug, Clone)]
pub struct Config {
    pub queue: u32,
    /// UMEM frames.
    pub frames: u32,
    /// Entries of each of the four rings: a power of two.
    pub ring_size: u32,
    /// Most frames taken from the RX ring in one pass.
    pub batch: u32,
    pub copy: Copy,
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Give the frame back to the fill ring.
    Recycle,
    /// Send the (rewritten) frame out of the same queue.
    Transmit,
}

/// Packets and bytes received and sent since the socket was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Replies given up because the TX ring was full.
    pub tx_ring_full: u64,
}

/// The kernel's counters of the socket (XDP_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounts {
    /// Frames dropped for want of a frame or room in the RX ring.
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// The UMEM's memory: anonymous, page-aligned, unmapped on drop.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Result<Area> {
        let size = NonZeroUsize::new(len).ok_or_else(|| anyhow!("an empty UMEM"))?;
        // SAFETY: a fresh anonymous private mapping aliases nothing; the kernel
        // chooses the (page-aligned) address.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
            )
        }
        .with_context(|| format!("mapping {} MiB for the UMEM", len >> 20))?;
        Ok(Area { ptr: ptr.cast(), len })
    }

    /// The bytes of the descriptor `desc`, if it lies inside the area.
    fn bytes(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > self.len {
            return None;
        }
        // SAFETY: [start, end) lies inside the mapping, which lives as long as
        // `self`. The frame is one user space owns (it came off the RX ring and
        // is not on the fill or TX ring), so the kernel does not write it
        // meanwhile, and the &mut self borrow keeps this the only reference.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), end - start) })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are the mapping made in `new`; the sockets
        // that shared it were dropped before (field order in `Xsk`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// An AF_XDP socket bound to a queue, with its UMEM.
pub struct Xsk {
    // Dropped in this order: the rings and the socket before the UMEM
    // registration, and that before the memory it describes.
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    _user: User,
    _umem: Umem,
    area: Area,
    /// Frames user space holds and may put on the fill ring.
    free: Vec<u64>,
    /// Replies of the current pass, waiting for room on the TX ring.
    pending: Vec<XdpDesc>,
    /// Frames on the TX ring not yet back through the completion ring.
    in_flight: u32,
    batch: u32,
    ring_size: u32,
    zero_copy: bool,
    pub counts: Counts,
}

impl Xsk {
    /// Create the UMEM and rings, bind to `cfg.queue` of `dev`, and give the
    /// kernel frames to receive into. Nothing outlives a failure.
    pub fn open(dev: &Iface, cfg: &Config) -> Result<Xsk> {
        let len = cfg.frames as usize * FRAME_SIZE as usize;
        let area = Area::new(len)?;
        let umem_config = UmemConfig {
            fill_size: cfg.ring_size,
            complete_size: cfg.ring_size,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let region = NonNull::slice_from_raw_parts(area.ptr, area.len);
        // SAFETY: `region` is the page-aligned mapping of `area`, which `Xsk`
        // keeps alive (and unmaps only after dropping the UMEM and sockets).
        let umem = unsafe { Umem::new(umem_config, region) }
            .map_err(os)
            .context("registering the UMEM with an AF_XDP socket")?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(dev.index)
            .map_err(os)
            .with_context(|| fact(XskProblem::Device(dev.name.clone())))?;
        info.set_queue(cfg.queue);
        let socket = Socket::with_shared(&info, &umem).map_err(os).context("AF_XDP socket")?;
        let device = umem.fq_cq(&socket).map_err(os).context("AF_XDP fill/completion rings")?;
        let ring = NonZeroU32::new(cfg.ring_size);
        let bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP
            | match cfg.copy {
                Copy::Auto => 0,
                Copy::Copy => SocketConfig::XDP_BIND_COPY,
                Copy::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
            };
        let user = umem
            .rx_tx(&socket, &SocketConfig { rx_size: ring, tx_size: ring, bind_flags })
            .map_err(os)
            .context("AF_XDP RX/TX rings")?;
        let rx = user.map_rx().map_err(os).context("mapping the RX ring")?;
        let tx = user.map_tx().map_err(os).context("mapping the TX ring")?;
        // A socket that just closed on this queue lets go of it a moment
        // later (the kernel defers its release): EBUSY is then no other user.
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match umem.bind(&user) {
                Ok(()) => break,
                Err(e) if e.get_raw() == libc::EBUSY && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(bind_error(dev, cfg, e.get_raw())),
            }
        }
        let zero_copy = zero_copy(device.as_raw_fd())?;

        let mut xsk = Xsk {
            rx,
            tx,
            device,
            _user: user,
            _umem: umem,
            area,
            // Every frame starts free, and as many as fit go to the fill ring.
            free: (0..u64::from(cfg.frames)).map(|i| i * u64::from(FRAME_SIZE)).collect(),
            pending: Vec::with_capacity(cfg.batch as usize),
            in_flight: 0,
            batch: cfg.batch,
            ring_size: cfg.ring_size,
            zero_copy,
            counts: Counts::default(),
        };
        xsk.refill();
        Ok(xsk)
    }

    /// The socket, for the XSKMAP and poll(2).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to `device`, which lives as long as
        // `self` and so as long as the borrow.
        unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) }
    }

    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// One pass: take up to a batch of frames off the RX ring, let `handle`
    /// decide each one's fate, queue the replies for sending, reclaim sent
    /// frames, and refill the fill ring. Returns the frames received.
    pub fn pass(&mut self, mut handle: impl FnMut(&mut [u8]) -> Verdict) -> u32 {
        let mut rx = self.rx.receive(self.batch);
        let received = rx.capacity();
        while let Some(desc) = rx.read() {
            self.counts.rx_packets += 1;
            self.counts.rx_bytes += u64::from(desc.len);
            let verdict = match self.area.bytes(desc.addr, desc.len) {
                Some(frame) => handle(frame),
                None => Verdict::Recycle,
            };
            match verdict {
                Verdict::Transmit => self.pending.push(desc),
                Verdict::Recycle => self.free.push(frame_of(desc.addr)),
            }
        }
        rx.release();
        drop(rx);
        self.transmit();
        self.reclaim();
        self.refill();
        received
    }

    /// Put this pass's replies on the TX ring; those that find no room are
    /// given up (the TX ring is as large as the RX ring, so only a stalled
    /// device does this).
    fn transmit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut tx = self.tx.transmit(self.pending.len() as u32);
        let sent = tx.insert(self.pending.iter().copied()) as usize;
        tx.commit();
        drop(tx);
        for desc in &self.pending[..sent] {
            self.counts.tx_packets += 1;
            self.counts.tx_bytes += u64::from(desc.len);
        }
        for desc in &self.pending[sent..] {
            self.counts.tx_ring_full += 1;
            self.free.push(frame_of(desc.addr));
        }
        self.in_flight += sent as u32;
        self.pending.clear();
    }

    /// Kick the kernel to send what is on the TX ring, and take back the
    /// frames it has finished with. Copy mode sends only inside sendto, at
    /// most 32 frames a call: kick until a pass's worth is out, so replies
    /// do not pile up on a full ring while the RX side keeps receiving.
    fn reclaim(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        for _ in 0..self.batch.div_ceil(KERNEL_TX_BATCH) {
            if !self.tx.needs_wakeup() {
                break;
            }
            self.tx.wake();
            if self.tx.pending() == 0 {
                break;
            }
        }
        let mut done = self.device.complete(self.ring_size);
        let mut n = 0;
        while let Some(addr) = done.read() {
            self.free.push(frame_of(addr));
            n += 1;
        }
        done.release();
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Give the kernel every free frame the fill ring has room for.
    fn refill(&mut self) {
        if self.free.is_empty() {
            return;
        }
        let mut fill = self.device.fill(self.free.len() as u32);
        let n = fill.insert(self.free.iter().rev().copied()) as usize;
        fill.commit();
        drop(fill);
        self.free.truncate(self.free.len() - n);
        // A driver that stopped for want of frames waits to be woken.
        if n > 0 && self.device.needs_wakeup() {
            self.device.wake();
        }
    }

    /// The kernel's counters of this socket.
    pub fn kernel_counts(&self) -> Result<KernelCounts> {
        let s = self.device.statistics_v2().map_err(os).context("reading the socket's counters")?;
        Ok(KernelCounts {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

/// The frame a descriptor's address points into (aligned UMEM: frames are a
/// power of two; received data starts after the kernel's headroom).
fn frame_of(addr: u64) -> u64 {
    addr & !u64::from(FRAME_SIZE - 1)
}

fn os(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

/// Whether the bound socket runs in zero-copy mode (XDP_OPTIONS).
fn zero_copy(fd: RawFd) -> Result<bool> {
    const SOL_XDP: i32 = 283;
    const XDP_OPTIONS: i32 = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are live locals of the sizes passed; `fd` is
    // the socket `Xsk::open` holds.
    let rc = unsafe {
        libc::getsockopt(fd, SOL_XDP, XDP_OPTIONS, (&raw mut flags).cast(), &raw mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("asking the socket for its mode");
    }
    Ok(flags & XDP_OPTIONS_ZEROCOPY != 0)
}

/// What a user can get wrong about AF_XDP sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XskProblem {
    /// The device the socket was to be bound to could not be looked up.
    Device(String),
    QueueBusy {
        dev: String,
        queue: u32,
    },
    NoZeroCopy {
        dev: String,
    },
    QueueRefused {
        dev: String,
        queue: u32,
    },
    BatchTooBig {
        batch: u32,
        ring: u32,
        frames: u32,
    },
}

impl fmt::Display for XskProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XskProblem::Device(dev) => f.write_str(dev),
            XskProblem::QueueBusy { dev, queue } => write!(
                f,
                "queue {queue} of {dev} already has an AF_XDP socket bound (another `xdpctl \
                 afxdp`?)"
            ),
            XskProblem::NoZeroCopy { dev } => {
                write!(f, "the driver of {dev} cannot do zero-copy AF_XDP")
            }
            XskProblem::QueueRefused { dev, .. } => write!(
                f,
                "{dev} refused the queue (is it beyond the device's queues? `ethtool -l {dev}` \
                 lists them)"
            ),
            XskProblem::BatchTooBig { batch, ring, frames } => {
                write!(f, "a batch of {batch}: at most {ring} with {frames} frames (the ring size)")
            }
        }
    }
}

/// The bind failures a user can cause, as facts.
fn bind_error(dev: &Iface, cfg: &Config, errno: i32) -> anyhow::Error {
    let (name, q) = (&dev.name, cfg.queue);
    let problem = |p: XskProblem| anyhow::Error::new(fact(p));
    match errno {
        libc::EBUSY => problem(XskProblem::QueueBusy { dev: name.clone(), queue: q }),
        libc::EOPNOTSUPP if cfg.copy == Copy::ZeroCopy => {
            problem(XskProblem::NoZeroCopy { dev: name.clone() })
        }
        libc::EINVAL => problem(XskProblem::QueueRefused { dev: name.clone(), queue: q }),
        e => anyhow::Error::new(io::Error::from_raw_os_error(e))
            .context(format!("binding an AF_XDP socket to {name} queue {q}")),
    }
}

/// The ring size for `frames` UMEM frames: half of them (the other half
/// is there to refill from), a power of two, at most the kernel's default.
pub fn ring_size(frames: u32) -> u32 {
    let half = (frames / 2).max(1);
    (1u32 << (31 - half.leading_zeros())).min(2048)
}

/// Check the sizes a user gave before anything is made.
pub fn check(frames: u32, batch: u32) -> Result<()> {
    let ring = ring_size(frames);
    if batch > ring {
        return Err(fact(XskProblem::BatchTooBig { batch, ring, frames }).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_take_half_the_frames_as_a_power_of_two() {
        assert_eq!(ring_size(4096), 2048);
        assert_eq!(ring_size(1 << 20), 2048);
        assert_eq!(ring_size(1000), 256);
        assert_eq!(ring_size(64), 32);
    }

    #[test]
    fn a_descriptor_maps_to_its_frame() {
        assert_eq!(frame_of(0), 0);
        assert_eq!(frame_of(256), 0);
        assert_eq!(frame_of(3 * 4096 + 256), 3 * 4096);
    }

    #[test]
    fn bytes_stay_inside_the_area() {
        let mut area = Area::new(2 * FRAME_SIZE as usize).unwrap();
        assert_eq!(area.bytes(4096 + 256, 100).map(|b| b.len()), Some(100));
        assert!(area.bytes(8192 - 10, 11).is_none());
        assert!(area.bytes(u64::MAX, 1).is_none());
    }
}
