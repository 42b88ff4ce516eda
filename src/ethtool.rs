//! The one ethtool question xdpctl asks: how many receive queues an interface
//! uses now (ETHTOOL_GCHANNELS). Netlink reports the most it could have, and
//! an AF_XDP socket binds only to a queue in use.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Receive queues `dev` uses, or None if its driver does not say.
pub fn rx_queues(dev: &str) -> io::Result<Option<u32>> {
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // struct ethtool_channels: cmd, then max and current counts of rx, tx,
    // other and combined channels, all u32.
    let mut channels = [0u32; 9];
    channels[0] = ETHTOOL_GCHANNELS;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = dev.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (to, from) in req.ifr_name.iter_mut().zip(name) {
        *to = *from as libc::c_char;
    }
    req.ifr_ifru.ifru_data = channels.as_mut_ptr().cast();
    // SAFETY: `req` names the device and points at `channels`, which has the
    // size of struct ethtool_channels and outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(err),
        };
    }
    let (rx, combined) = (channels[5], channels[8]);
    Ok(Some(rx + combined).filter(|&n| n > 0))
}
