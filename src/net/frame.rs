//! The UDP frames `xdpctl trafficgen` sends: Ethernet, IPv4 or IPv6, UDP, a
//! zero payload, with every checksum filled in.

use std::net::IpAddr;

use anyhow::{bail, Result};

use crate::net::mac::Mac;

pub const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const PROTO_UDP: u8 = 17;

/// What one generated frame looks like.
#[derive(Debug, Clone)]
pub struct UdpSpec {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// The whole frame, Ethernet header included, FCS excluded.
    pub size: usize,
}

/// Where the UDP header starts in a frame with these addresses.
pub fn udp_offset(ip: IpAddr) -> usize {
    ETH_LEN + if ip.is_ipv4() { IPV4_LEN } else { IPV6_LEN }
}

/// The smallest frame that holds the headers for `ip`'s family.
pub fn min_size(ip: IpAddr) -> usize {
    udp_offset(ip) + UDP_LEN
}

/// Build the frame `spec` describes.
pub fn udp(spec: &UdpSpec) -> Result<Vec<u8>> {
    let udp_at = udp_offset(spec.src_ip);
    if spec.size < udp_at + UDP_LEN || spec.size > usize::from(u16::MAX) {
        bail!(
            "frame size {} out of range: a UDP/{} frame takes {} to 65535 bytes",
            spec.size,
            if spec.src_ip.is_ipv4() { "IPv4" } else { "IPv6" },
            udp_at + UDP_LEN
        );
    }
    let mut f = vec![0u8; spec.size];
    f[0..6].copy_from_slice(&spec.dst_mac.0);
    f[6..12].copy_from_slice(&spec.src_mac.0);
    // Sizes fit in u16: checked above.
    let udp_len = (spec.size - udp_at) as u16;
    let mut pseudo = Vec::with_capacity(40);
    match (spec.src_ip, spec.dst_ip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[ETH_LEN..udp_at];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(udp_len + IPV4_LEN as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64; // TTL
            ip[9] = PROTO_UDP;
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            let check = checksum(&[ip]);
            ip[10..12].copy_from_slice(&check.to_be_bytes());
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, PROTO_UDP]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut f[ETH_LEN..udp_at];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = PROTO_UDP;
            ip[7] = 64; // hop limit
            ip[8..24].copy_from_slice(&src.octets());
            ip[24..40].copy_from_slice(&dst.octets());
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, PROTO_UDP]);
        }
        (src, dst) => bail!(
            "source {src} and destination {dst} are of different IP versions; \
             give both as IPv4 or both as IPv6"
        ),
    }
    let udp = &mut f[udp_at..];
    udp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    // RFC 768: a computed 0 goes out as 0xffff; 0 means "no checksum".
    let check = match checksum(&[&pseudo, udp]) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&check.to_be_bytes());
    Ok(f)
}

/// The Internet checksum (RFC 1071) over `parts` laid end to end; each part
/// but the last has an even length.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in &mut words {
            sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(src: &str, dst: &str, size: usize) -> UdpSpec {
        UdpSpec {
            src_mac: "02:00:00:00:00:01".parse().unwrap(),
            dst_mac: "02:00:00:00:00:02".parse().unwrap(),
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            src_port: 1234,
            dst_port: 9,
            size,
        }
    }

    /// Sum 16-bit words the slow way, with a 32-bit accumulator folded at
    /// the end: a whole, correct checksum region sums to 0xffff.
    fn ones_sum(bytes: &[u8]) -> u32 {
        let mut s: u32 = 0;
        for i in (0..bytes.len()).step_by(2) {
            let hi = u32::from(bytes[i]) << 8;
            let lo = bytes.get(i + 1).map_or(0, |b| u32::from(*b));
            s += hi | lo;
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }

    #[test]
    fn ipv4_frame_has_valid_header_and_udp_checksums() {
        for size in [42, 60, 64, 65, 1514] {
            let f = udp(&spec("198.18.0.1", "198.18.0.2", size)).unwrap();
            assert_eq!(f.len(), size);
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            assert_eq!(ones_sum(&f[14..34]), 0xffff, "IPv4 header checksum, size {size}");
            assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, size - 14);
            let udp_len = size - 34;
            let mut pseudo = f[26..34].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
            pseudo.extend_from_slice(&f[34..]);
            assert_eq!(ones_sum(&pseudo), 0xffff, "UDP checksum, size {size}");
            assert_eq!(u16::from_be_bytes([f[36], f[37]]), 9);
        }
    }

    #[test]
    fn ipv6_frame_has_a_valid_udp_checksum() {
        for size in [62, 64, 99, 1514] {
            let f = udp(&spec("2001:2::1", "2001:2::2", size)).unwrap();
            assert_eq!(&f[12..14], &[0x86, 0xdd]);
            assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, size - 54);
            let mut pseudo = f[22..54].to_vec();
            pseudo.extend_from_slice(&((size - 54) as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo.extend_from_slice(&f[54..]);
            assert_eq!(ones_sum(&pseudo), 0xffff, "UDP checksum, size {size}");
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: these bytes sum to 0xddf2, so the checksum is !0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&bytes]), !0xddf2);
    }

    #[test]
    fn refuses_mixed_families_and_impossible_sizes() {
        let err = udp(&spec("198.18.0.1", "2001:2::2", 64)).unwrap_err().to_string();
        assert!(err.contains("different IP versions"), "{err}");
        let err = udp(&spec("198.18.0.1", "198.18.0.2", 41)).unwrap_err().to_string();
        assert!(err.contains("41") && err.contains("42 to 65535"), "{err}");
        let err = udp(&spec("2001:2::1", "2001:2::2", 61)).unwrap_err().to_string();
        assert!(err.contains("62 to 65535"), "{err}");
    }
}
