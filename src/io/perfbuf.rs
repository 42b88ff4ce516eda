//! Perf buffers on a BPF perf event array that wake their reader only once
//! a quarter of a buffer waits (libbpf's perf_buffer__new_raw with a
//! watermark). libbpf-rs's PerfBuffer wakes it at every record, and each
//! wakeup is an irq_work on the CPU that took the sample: at a few hundred
//! thousand samples a second that cost the datapath more than the samples.

use std::ffi::{c_int, c_void};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::{self, NonNull};

use anyhow::{Context, Result};
use libbpf_rs::libbpf_sys::{self as sys, perf_event_header};

/// What each record's raw bytes are handed to.
type Callback<'cb> = Box<dyn FnMut(&[u8]) + 'cb>;

/// One perf buffer per CPU, open on a perf event array; closed (and the
/// array's entries removed) when dropped.
pub struct PerfReader<'cb> {
    pb: NonNull<sys::perf_buffer>,
    /// The callback libbpf calls through its context pointer: boxed twice
    /// so that pointer is thin and does not move.
    _cb: Box<Callback<'cb>>,
}

impl<'cb> PerfReader<'cb> {
    /// Open `pages` pages per CPU on the perf event array `map`, waking the
    /// reader once `wakeup_bytes` wait in one of them; `cb` gets the raw
    /// data of each sample.
    pub fn open(
        map: BorrowedFd<'_>,
        pages: usize,
        wakeup_bytes: u32,
        cb: impl FnMut(&[u8]) + 'cb,
    ) -> Result<PerfReader<'cb>> {
        let mut attr = sys::perf_event_attr {
            type_: sys::PERF_TYPE_SOFTWARE,
            size: size_of::<sys::perf_event_attr>() as u32,
            config: u64::from(sys::PERF_COUNT_SW_BPF_OUTPUT),
            sample_type: u64::from(sys::PERF_SAMPLE_RAW),
            ..Default::default()
        };
        attr.__bindgen_anon_1.sample_period = 1;
        attr.set_watermark(1);
        attr.__bindgen_anon_2.wakeup_watermark = wakeup_bytes.max(1);
        let mut cb: Box<Callback<'cb>> = Box::new(Box::new(cb));
        let ctx = ptr::from_mut::<Callback<'cb>>(&mut cb).cast::<c_void>();
        // SAFETY: attr is a valid perf_event_attr libbpf only reads during
        // the call; ctx points at the boxed callback, which this reader keeps
        // at a fixed address until perf_buffer__free has run (Drop); the
        // map fd is borrowed for the call.
        let pb = unsafe {
            sys::perf_buffer__new_raw(
                map.as_raw_fd(),
                pages as sys::size_t,
                &mut attr,
                Some(on_event),
                ctx,
                ptr::null(),
            )
        };
        let pb = NonNull::new(pb)
            .ok_or_else(io::Error::last_os_error)
            .context("opening perf buffers (perf_buffer__new_raw)")?;
        Ok(PerfReader { pb, _cb: cb })
    }

    /// The epoll fd that is ready when a buffer has reached its watermark.
    pub fn epoll_fd(&self) -> RawFd {
        // SAFETY: pb is a live perf_buffer until Drop.
        unsafe { sys::perf_buffer__epoll_fd(self.pb.as_ptr()) }
    }

    /// Buffers: one per CPU the array has a slot for.
    pub fn buffers(&self) -> usize {
        // SAFETY: pb is a live perf_buffer until Drop.
        unsafe { sys::perf_buffer__buffer_cnt(self.pb.as_ptr()) as usize }
    }

    /// Hand every record waiting in buffer `idx` to the callback.
    pub fn consume_buffer(&self, idx: usize) -> Result<()> {
        // SAFETY: pb is a live perf_buffer until Drop; libbpf checks idx.
        let ret = unsafe { sys::perf_buffer__consume_buffer(self.pb.as_ptr(), idx as _) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret))
                .with_context(|| format!("reading perf buffer {idx}"));
        }
        Ok(())
    }

    /// Hand every record waiting in any buffer to the callback.
    pub fn consume(&self) -> Result<()> {
        for idx in 0..self.buffers() {
            self.consume_buffer(idx)?;
        }
        Ok(())
    }
}

impl Drop for PerfReader<'_> {
    fn drop(&mut self) {
        // SAFETY: pb came from perf_buffer__new_raw and is freed once; the
        // callback it calls is still alive (fields drop after this).
        unsafe { sys::perf_buffer__free(self.pb.as_ptr()) }
    }
}

/// libbpf's event callback: a PERF_RECORD_SAMPLE of sample type
/// PERF_SAMPLE_RAW is the header, a u32 size and that many bytes (padded
/// to 8); other records (PERF_RECORD_LOST) are skipped, as the BPF side
/// counts what it could not send.
unsafe extern "C" fn on_event(
    ctx: *mut c_void,
    _cpu: c_int,
    event: *mut perf_event_header,
) -> sys::bpf_perf_event_ret {
    // SAFETY: libbpf hands over one whole record of header.size bytes (a
    // record that wraps the ring is first copied into one piece), and ctx is
    // the callback PerfReader::open boxed, alive while the buffer is.
    unsafe {
        let header = ptr::read_unaligned(event);
        if header.type_ != sys::PERF_RECORD_SAMPLE {
            return sys::LIBBPF_PERF_EVENT_CONT;
        }
        let rest = usize::from(header.size).saturating_sub(size_of::<perf_event_header>());
        if rest < size_of::<u32>() {
            return sys::LIBBPF_PERF_EVENT_CONT;
        }
        let base = event.cast::<u8>().add(size_of::<perf_event_header>());
        let size = ptr::read_unaligned(base.cast::<u32>()) as usize;
        let data = std::slice::from_raw_parts(
            base.add(size_of::<u32>()),
            size.min(rest - size_of::<u32>()),
        );
        let cb = &mut *ctx.cast::<Callback<'_>>();
        cb(data);
    }
    sys::LIBBPF_PERF_EVENT_CONT
}
