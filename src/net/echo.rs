//! What `xdpctl afxdp` answers in user space: an ICMPv6 echo request turned,
//! in place, into its echo reply (advanced03's exercise, which the tutorial
//! leaves switched off).

const ETH_HLEN: usize = 14;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Where the ICMPv6 header starts: right after a plain IPv6 header.
const ICMP: usize = ETH_HLEN + IPV6_HLEN;

/// Turn an ICMPv6 echo request into its reply: swap the MAC and IPv6
/// addresses, make type 128 type 129, and fix the checksum for that one
/// change. Anything else is left untouched and returns false, echo requests
/// to a multicast or broadcast MAC or a multicast IPv6 address included: the
/// reply would carry that group address as its source.
pub fn icmp6_echo_reply(frame: &mut [u8]) -> bool {
    if frame.len() < ICMP + 8
        || is_group_mac(frame[0])
        || u16::from_be_bytes([frame[12], frame[13]]) != ETH_P_IPV6
        || frame[ETH_HLEN] >> 4 != 6
        || frame[ETH_HLEN + 6] != IPPROTO_ICMPV6
        || frame[ETH_HLEN + 24] == 0xff
        || frame[ICMP] != ICMPV6_ECHO_REQUEST
        || frame[ICMP + 1] != 0
    {
        return false;
    }
    let (dst, src) = frame[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (saddr, daddr) = frame[ETH_HLEN + 8..ICMP].split_at_mut(16);
    saddr.swap_with_slice(daddr);
    frame[ICMP] = ICMPV6_ECHO_REPLY;
    // Swapping the addresses leaves the pseudo-header's sum as it was; only
    // the type/code word changed.
    let check = u16::from_be_bytes([frame[ICMP + 2], frame[ICMP + 3]]);
    let check = csum_replace(
        check,
        u16::from_be_bytes([ICMPV6_ECHO_REQUEST, 0]),
        u16::from_be_bytes([ICMPV6_ECHO_REPLY, 0]),
    );
    frame[ICMP + 2..ICMP + 4].copy_from_slice(&check.to_be_bytes());
    true
}

/// Whether a MAC whose first octet is `first` is a group address (multicast
/// or broadcast): the I/G bit, the lowest of the first octet, is set.
fn is_group_mac(first: u8) -> bool {
    first & 0x01 != 0
}

/// The checksum `check` after one 16-bit word of the data went from `old`
/// to `new` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
fn csum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const IP_A: [u8; 16] = [0xfd, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const IP_B: [u8; 16] = [0xfd, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// RFC 1071 sum of big-endian words, written apart from the code above.
    fn sum(data: &[u8]) -> u32 {
        let mut s: u32 =
            data.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }

    /// The ICMPv6 checksum of `icmp` between `src` and `dst` (RFC 8200 8.1).
    fn icmp6_checksum(src: &[u8], dst: &[u8], icmp: &[u8]) -> u16 {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(src);
        pseudo.extend_from_slice(dst);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
        let mut zeroed = icmp.to_vec();
        zeroed[2] = 0;
        zeroed[3] = 0;
        !(sum(&[pseudo, zeroed].concat()) as u16)
    }

    /// An echo request from A to B with `payload`, its checksum set.
    fn request(payload: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        icmp.extend_from_slice(payload);
        let c = icmp6_checksum(&IP_A, &IP_B, &icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&B);
        f.extend_from_slice(&A);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[IPPROTO_ICMPV6, 64]);
        f.extend_from_slice(&IP_A);
        f.extend_from_slice(&IP_B);
        f.extend_from_slice(&icmp);
        f
    }

    fn check_reply(payload: &[u8]) {
        let mut f = request(payload);
        assert!(icmp6_echo_reply(&mut f));
        assert_eq!(&f[0..6], &A, "destination MAC is the requester's");
        assert_eq!(&f[6..12], &B);
        assert_eq!(&f[22..38], &IP_B, "source address is the one asked");
        assert_eq!(&f[38..54], &IP_A);
        assert_eq!(f[54], ICMPV6_ECHO_REPLY);
        assert_eq!(&f[58..], &request(payload)[58..], "identifier, sequence, data kept");
        let want = icmp6_checksum(&IP_B, &IP_A, &f[54..]);
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), want, "payload {payload:02x?}");
    }

    #[test]
    fn a_request_becomes_a_reply_with_a_valid_checksum() {
        check_reply(&[0xab; 56]);
        check_reply(&[]);
        check_reply(&[1, 2, 3]);
    }

    #[test]
    fn the_checksum_is_right_for_every_starting_value() {
        // Vary the first payload word over all 65536 values, so the request's
        // checksum takes every value, 0x0000 and 0xffff among them.
        for w in 0..=u16::MAX {
            let [hi, lo] = w.to_be_bytes();
            check_reply(&[hi, lo, 0x5a, 0xa5]);
        }
    }

    #[test]
    fn other_frames_are_left_alone() {
        let untouched = |mut f: Vec<u8>| {
            let before = f.clone();
            assert!(!icmp6_echo_reply(&mut f));
            assert_eq!(f, before);
        };
        let mut reply = request(&[0; 8]);
        reply[54] = ICMPV6_ECHO_REPLY;
        untouched(reply);
        let mut ns = request(&[0; 8]);
        ns[54] = 135;
        untouched(ns);
        let mut udp = request(&[0; 8]);
        udp[20] = 17;
        untouched(udp);
        let mut ipv4 = request(&[0; 8]);
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        untouched(ipv4);
        let mut multicast = request(&[0; 8]);
        multicast[38] = 0xff;
        untouched(multicast);
        untouched(request(&[])[..60].to_vec());
    }

    #[test]
    fn requests_to_a_group_mac_are_left_alone() {
        for mac in [
            [0xff; 6],                      // broadcast
            [0x33, 0x33, 0, 0, 0, 0x01],    // IPv6 all-nodes
            [0x33, 0x33, 0xff, 0, 0, 0x02], // IPv6 solicited-node
            [0x01, 0x00, 0x5e, 0, 0, 0x01], // IPv4 all-hosts
            [0x03, 0, 0, 0, 0, 0x0b],       // locally administered group
        ] {
            let mut f = request(&[0xab; 8]);
            f[..6].copy_from_slice(&mac);
            let before = f.clone();
            assert!(!icmp6_echo_reply(&mut f), "to {mac:02x?}");
            assert_eq!(f, before, "to {mac:02x?}");
        }
    }
}
