//! The ethtool questions xdpctl asks (SIOCETHTOOL, no privilege needed):
//! the driver's name (ETHTOOL_GDRVINFO), and how many queues an interface
//! uses now (ETHTOOL_GCHANNELS). Netlink reports the most it could have, and
//! an AF_XDP socket binds only to a queue in use.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
/// struct ethtool_drvinfo: cmd, then driver[32], version[32], fw_version[32],
/// bus_info[32], erom_version[32], reserved2[12] and five u32 counts.
const DRVINFO_LEN: usize = 196;
const DRIVER_NAME: std::ops::Range<usize> = 4..36;

/// The queues a device uses now, as its driver reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    /// Receive queues: dedicated rx channels plus combined ones.
    pub rx: u32,
    /// Transmit queues: dedicated tx channels plus combined ones.
    pub tx: u32,
}

/// Receive queues `dev` uses, or None if its driver does not say.
pub fn rx_queues(dev: &str) -> io::Result<Option<u32>> {
    Ok(channels(dev)?.map(|c| c.rx).filter(|&n| n > 0))
}

/// The queues `dev` uses now, or None if its driver does not say.
pub fn channels(dev: &str) -> io::Result<Option<Channels>> {
    // struct ethtool_channels: cmd, then max and current counts of rx, tx,
    // other and combined channels, all u32.
    let mut channels = [0u32; 9];
    channels[0] = ETHTOOL_GCHANNELS;
    if !ask(dev, channels.as_mut_ptr().cast())? {
        return Ok(None);
    }
    let (rx, tx, combined) = (channels[5], channels[6], channels[8]);
    Ok(Some(Channels { rx: rx + combined, tx: tx + combined }))
}

/// The name of `dev`'s driver ("veth", "bridge", "ixgbe"), or None if it
/// has no ethtool driver information.
pub fn driver(dev: &str) -> io::Result<Option<String>> {
    // u32 words keep the buffer aligned for the kernel's u32 fields.
    let mut info = [0u32; DRVINFO_LEN / 4];
    info[0] = ETHTOOL_GDRVINFO;
    if !ask(dev, info.as_mut_ptr().cast())? {
        return Ok(None);
    }
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name = bytes[DRIVER_NAME].split(|&b| b == 0).next().unwrap_or_default();
    Ok(Some(String::from_utf8_lossy(name).into_owned()).filter(|n| !n.is_empty()))
}

/// One SIOCETHTOOL request for `dev` on the command buffer `data`; false if
/// the driver does not answer this command.
fn ask(dev: &str, data: *mut libc::c_char) -> io::Result<bool> {
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = dev.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (to, from) in req.ifr_name.iter_mut().zip(name) {
        *to = *from as libc::c_char;
    }
    req.ifr_ifru.ifru_data = data;
    // SAFETY: `req` names the device and points at `data`, which the callers
    // size for their command's struct and keep alive across the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(err),
        };
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_channels_and_a_bad_name_is_refused() {
        assert_eq!(channels("lo").unwrap(), None);
        assert!(driver("sixteen-chars-xx").is_err());
    }
}
