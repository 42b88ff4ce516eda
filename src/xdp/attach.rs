//! XDP attachments: query, attach, replace, detach. Netlink attachments
//! outlive xdpctl, which is what `load` promises; a bpf_link dies with the
//! process, which is what a command that attaches only while it runs wants.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use libbpf_rs::libbpf_sys::{
    self, bpf_link_create_opts, bpf_xdp_attach_opts, bpf_xdp_query_opts, BPF_XDP,
    XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
};
use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::Program;
use nix::errno::Errno;
use serde::Serialize;

use crate::error::fact;
use crate::net::iface::Iface;
use crate::net::netlink::{self, XdpProgs};
use crate::obj::listing;
use crate::obj::logging;
use crate::obj::skel::XdpMd;

/// Where a program runs: in the driver, in the generic (skb) path, or offloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Native,
    Skb,
    Hw,
}

impl Mode {
    fn flag(self) -> u32 {
        match self {
            Mode::Native => XDP_FLAGS_DRV_MODE,
            Mode::Skb => XDP_FLAGS_SKB_MODE,
            Mode::Hw => XDP_FLAGS_HW_MODE,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Native => "native",
            Mode::Skb => "skb",
            Mode::Hw => "hw",
        })
    }
}

/// The mode a user asks for; `auto` lets the kernel pick (native where the driver
/// supports it, else skb).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeRequest {
    Native,
    Skb,
    Hw,
    Auto,
}

impl ModeRequest {
    /// Every command's mode when none is given (load, sample, afxdp, apply's
    /// entries): auto, as `ip link` and bpftool do: native where the driver
    /// has XDP, else skb (the commands say so), and a replacement keeps the
    /// mode of the program it replaces.
    pub const DEFAULT: ModeRequest = ModeRequest::Auto;

    pub fn fixed(self) -> Option<Mode> {
        match self {
            ModeRequest::Native => Some(Mode::Native),
            ModeRequest::Skb => Some(Mode::Skb),
            ModeRequest::Hw => Some(Mode::Hw),
            ModeRequest::Auto => None,
        }
    }
}

/// One program attached to an interface in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub prog_id: u32,
    pub mode: Mode,
}

/// Every XDP program attached to `ifindex` (at most one per mode). One
/// RTM_GETLINK for that index: libbpf's bpf_xdp_query dumps every interface
/// of the namespace to find one. A vanished interface runs nothing.
pub fn query(ifindex: u32) -> Result<Vec<Attachment>> {
    match netlink::get_link(ifindex, None) {
        Ok(link) => Ok(attachments(&link.xdp)),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error)
                    == Some(libc::ENODEV)
            }) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e).with_context(|| format!("querying XDP programs on ifindex {ifindex}")),
    }
}

/// The programs netlink reported for one interface, as attachments.
pub fn attachments(progs: &XdpProgs) -> Vec<Attachment> {
    [(progs.drv, Mode::Native), (progs.skb, Mode::Skb), (progs.hw, Mode::Hw)]
        .into_iter()
        .filter(|(id, _)| *id != 0)
        .map(|(prog_id, mode)| Attachment { prog_id, mode })
        .collect()
}

/// The XDP features `ifindex` announces (enum netdev_xdp_act bits); None on
/// kernels before 6.3, which announce none for any device.
pub fn features(ifindex: u32) -> Result<Option<u64>> {
    Ok(announced(ifindex)?.map(|a| a.flags))
}

/// What a device announces of XDP through the kernel's netdev family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// enum netdev_xdp_act bits.
    pub flags: u64,
    /// For zero-copy AF_XDP: the most buffers one frame may span (0 if
    /// the device has no zero-copy).
    pub zc_max_segs: u32,
}

/// What `ifindex` announces; None on kernels before 6.3, which announce
/// nothing for any device.
pub fn announced(ifindex: u32) -> Result<Option<Announced>> {
    let mut opts =
        bpf_xdp_query_opts { sz: size_of::<bpf_xdp_query_opts>() as _, ..Default::default() };
    // SAFETY: `opts` is a live, correctly sized bpf_xdp_query_opts for the call.
    let ret = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    check(ret).with_context(|| format!("querying the XDP features of ifindex {ifindex}"))?;
    // libbpf leaves 0 when the kernel has no netdev netlink family; newer
    // kernels say 0 for devices without any XDP support.
    if opts.feature_flags == 0 && !announces_features() {
        return Ok(None);
    }
    Ok(Some(Announced { flags: opts.feature_flags, zc_max_segs: opts.xdp_zc_max_segs }))
}

/// Whether this kernel (6.3 or later) announces XDP features.
fn announces_features() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 3)
}

/// `struct xdp_md` for a test run's ctx_in (pass it as
/// `skel::ctx_bytes(&mut md)`): the kernel wants data and data_meta 0 and
/// data_end the frame's length; the frame arrives on `ifindex`, queue 0.
/// Test runs take frames of at most a page, so the length fits a u32.
pub fn test_run_ctx(frame: &[u8], ifindex: u32) -> XdpMd {
    XdpMd { data_end: frame.len() as u32, ingress_ifindex: ifindex, ..XdpMd::default() }
}

/// Attach `prog` to `dev`. With `replace`, atomically swap out that program
/// (which must be attached in the same mode); without it, fail if any program is
/// attached. `mode` None lets the kernel choose.
pub fn attach(
    dev: &Iface,
    prog: BorrowedFd<'_>,
    mode: Option<Mode>,
    replace: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let mut flags = mode.map_or(0, Mode::flag);
    let mut opts = attach_opts();
    match replace {
        Some(old) => {
            flags |= XDP_FLAGS_REPLACE;
            opts.old_prog_fd = old.as_raw_fd();
        }
        None => flags |= XDP_FLAGS_UPDATE_IF_NOEXIST,
    }
    logging::clear();
    // SAFETY: both fds are open for the duration of the call and `opts` is a live,
    // correctly sized bpf_xdp_attach_opts.
    let ret =
        unsafe { libbpf_sys::bpf_xdp_attach(dev.index as i32, prog.as_raw_fd(), flags, &opts) };
    check(ret).map_err(|e| attach_error(e, dev, mode))
}

/// Attach `prog` to `dev` through a bpf_link: detached when the returned fd
/// closes, also when xdpctl is killed. Fails if any program is attached.
pub fn attach_link(dev: &Iface, prog: BorrowedFd<'_>, mode: Option<Mode>) -> Result<OwnedFd> {
    let opts = bpf_link_create_opts {
        sz: size_of::<bpf_link_create_opts>() as _,
        flags: mode.map_or(0, Mode::flag),
        ..Default::default()
    };
    logging::clear();
    // SAFETY: `prog` is open for the call and `opts` is a live, correctly sized
    // bpf_link_create_opts; for BPF_XDP the target is an ifindex.
    let ret =
        unsafe { libbpf_sys::bpf_link_create(prog.as_raw_fd(), dev.index as i32, BPF_XDP, &opts) };
    check(ret).map_err(|e| attach_error(e, dev, mode))?;
    // SAFETY: on success bpf_link_create returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Detach `att` from `dev`, only if it is still the program attached there.
pub fn detach(dev: &Iface, att: Attachment) -> Result<()> {
    // Naming the expected program makes the detach race-free. A program the
    // kernel no longer has is attached nowhere: nothing to do, and detaching
    // without the check could remove a program attached meanwhile.
    let expected = match Program::fd_from_id(att.prog_id) {
        Ok(fd) => fd,
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("opening attached program id {}", att.prog_id))
        }
    };
    let mut opts = attach_opts();
    opts.old_prog_fd = expected.as_raw_fd();
    logging::clear();
    // SAFETY: `expected` stays open across the call; `opts` is a live, correctly
    // sized bpf_xdp_attach_opts.
    let ret = unsafe {
        libbpf_sys::bpf_xdp_detach(dev.index as i32, att.mode.flag() | XDP_FLAGS_REPLACE, &opts)
    };
    check(ret).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "detaching program id {} ({} mode) from {}{}",
            att.prog_id,
            att.mode,
            dev.name,
            kernel_says()
        ))
    })
}

/// The id of the bpf_link that holds `att` on `ifindex`, if a link attached
/// it: the kernel then refuses to replace or detach it by netlink ("Can't
/// replace active BPF XDP link") until the link goes.
pub fn holding_link(ifindex: u32, att: Attachment) -> Result<Option<u32>> {
    let links = listing::links("listing BPF links (needs CAP_SYS_ADMIN)")?;
    Ok(links.into_iter().find_map(|link| match link.info {
        LinkTypeInfo::Xdp(xdp) if xdp.ifindex == ifindex && link.prog_id == att.prog_id => {
            Some(link.id)
        }
        _ => None,
    }))
}

fn attach_opts() -> bpf_xdp_attach_opts {
    bpf_xdp_attach_opts { sz: size_of::<bpf_xdp_attach_opts>() as _, ..Default::default() }
}

fn check(ret: i32) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret))
    } else {
        Ok(())
    }
}

fn kernel_says() -> String {
    logging::kernel_message().map(|m| format!(" (kernel: {m})")).unwrap_or_default()
}

/// A failed attach: the device, the mode asked, the kernel's answer and,
/// for the errnos a user can do something about, what it means.
#[derive(Debug)]
pub struct AttachFailure {
    pub dev: String,
    pub mode: Option<Mode>,
    pub err: io::Error,
    /// " (kernel: ...)" when the kernel said more than the errno.
    kernel: String,
    pub why: AttachWhy,
}

/// What an attach errno means, where it means something a user can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachWhy {
    NoNative,
    Occupied,
    NativeMtu,
    Mtu,
    HwRefused,
    Other,
}

impl fmt::Display for AttachFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.dev;
        let mode = self.mode.map_or("auto".to_string(), |m| m.to_string());
        write!(f, "attaching to {name} in {mode} mode failed: {}{}", self.err, self.kernel)?;
        match self.why {
            AttachWhy::NoNative => write!(f, "; {name} has no native XDP support"),
            AttachWhy::Occupied => {
                write!(f, "; another XDP program is attached to {name} (in this or another mode)")
            }
            AttachWhy::NativeMtu => write!(f, "; native unsupported at this MTU ({name})"),
            AttachWhy::Mtu => write!(f, "; the MTU of {name} is too large for XDP here"),
            // Only a device that announces offload gets this far (offload::check),
            // with the program bound to it: its driver turned this one down.
            AttachWhy::HwRefused => write!(
                f,
                "; the driver of {name} did not take the offloaded program (the kernel's \
                 message says why)"
            ),
            AttachWhy::Other => Ok(()),
        }
    }
}

/// What an attach errno means on `dev` in `mode`.
fn attach_error(err: io::Error, dev: &Iface, mode: Option<Mode>) -> anyhow::Error {
    let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
    let why = match (errno, mode) {
        (Errno::EOPNOTSUPP, Some(Mode::Native)) => AttachWhy::NoNative,
        (Errno::EEXIST | Errno::EBUSY, _) => AttachWhy::Occupied,
        (Errno::ERANGE | Errno::E2BIG, Some(Mode::Native)) => AttachWhy::NativeMtu,
        (Errno::ERANGE | Errno::E2BIG, _) => AttachWhy::Mtu,
        (Errno::EOPNOTSUPP | Errno::EINVAL, Some(Mode::Hw)) => AttachWhy::HwRefused,
        _ => AttachWhy::Other,
    };
    let failure = AttachFailure { dev: dev.name.clone(), mode, err, kernel: kernel_says(), why };
    anyhow::Error::new(fact(failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_interface_has_nothing_attached() {
        // ifindex far above anything this host allocates
        assert_eq!(query(0x7fff_fff0).unwrap(), vec![]);
    }
}
