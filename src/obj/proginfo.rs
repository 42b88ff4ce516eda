//! What the kernel tells of a loaded program by id, in one
//! bpf_prog_get_info_by_fd: its name, tag, and the run count and run time
//! that the kernel's BPF stats add up while they are on.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use libbpf_rs::{libbpf_sys, ErrorKind, ProgramHandle};

/// Where the kernel says whether BPF stats are on for everyone.
const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// One program's facts.
pub struct ProgFacts {
    /// The kernel's name (15 characters at most).
    pub name: String,
    pub tag: String,
    /// Runs and nanoseconds spent while BPF stats were on.
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// Program `id`'s facts; None if it was unloaded since its id was read.
/// Being refused (no CAP_SYS_ADMIN) is an error, never "nothing there".
pub fn facts(id: u32) -> Result<Option<ProgFacts>> {
    let prog = match ProgramHandle::from_prog_id(id) {
        Ok(prog) => prog,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening program id {id}")),
    };
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = u32::try_from(std::mem::size_of_val(&info)).context("bpf_prog_info size")?;
    // SAFETY: `info` is a live, zeroed bpf_prog_info of `len` bytes, every
    // array pointer in it null, so the kernel writes only the struct itself.
    let ret = unsafe {
        libbpf_sys::bpf_prog_get_info_by_fd(prog.as_fd().as_raw_fd(), &mut info, &mut len)
    };
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret))
            .with_context(|| format!("reading the info of program id {id}"));
    }
    let name: Vec<u8> = info.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Ok(Some(ProgFacts {
        name: String::from_utf8_lossy(&name).into_owned(),
        tag: info.tag.iter().map(|b| format!("{b:02x}")).collect(),
        run_cnt: info.run_cnt,
        run_time_ns: info.run_time_ns,
    }))
}

/// Whether the sysctl turns BPF stats on. A process holding a
/// BPF_ENABLE_STATS fd turns them on too, and no file tells that: what it
/// counted shows as non-zero run counts.
pub fn stats_sysctl_on() -> Result<bool> {
    match fs::read_to_string(STATS_SYSCTL) {
        Ok(text) => Ok(text.trim() != "0"),
        // Kernels before 5.8 have no such sysctl, nor run counts.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {STATS_SYSCTL}")),
    }
}

/// The kernel's BPF stats (run counts and times), on while this is held.
pub enum BpfStats {
    /// The sysctl has them on for everyone: someone else's to turn off.
    AlreadyOn,
    /// On for as long as this process holds the fd; dropping it (or the
    /// process ending) turns them off, so they are never left on.
    Ours(OwnedFd),
}

/// Turn the BPF stats on for as long as the result is held, through a
/// BPF_ENABLE_STATS fd of this process, never the sysctl (which would stay
/// on after a crash); left alone if the sysctl already has them on.
pub fn enable_stats() -> Result<BpfStats> {
    if stats_sysctl_on()? {
        return Ok(BpfStats::AlreadyOn);
    }
    // SAFETY: a plain system call wrapper with no pointer arguments.
    let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd))
            .context("turning the kernel's BPF stats on (BPF_ENABLE_STATS)");
    }
    // SAFETY: a new fd the kernel just gave this process, owned by no one else.
    Ok(BpfStats::Ours(unsafe { OwnedFd::from_raw_fd(fd) }))
}
