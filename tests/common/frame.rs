//! The frame builder shared by tests and benches: a frame described field by
//! field (MACs, VLAN tags, IPv4 or IPv6, ICMP/UDP/TCP), laid out with every
//! length and checksum computed here, independently of the BPF side; and a
//! checker that parses a frame afresh and verifies the checksums it carries.
//! Pure Rust: benches include it with `#[path]`.
#![allow(dead_code)] // each test binary and bench uses its own subset

/// One's complement sum (RFC 1071) of `data` as big-endian 16-bit words, an
/// odd last byte padded with zero: the tests' own, independent of the BPF side.
/// A checksum is its complement; data that carries a valid one sums to 0xffff.
pub fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A MAC as `ip` takes it: `02:aa:00:00:00:01`.
pub fn mac_text(mac: Mac) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

// ---------------------------------------------------------------------------
// Checksums, written from RFC 1071 and independent of the BPF side.

pub fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Parses `frame` afresh and checks the checksums it carries: the IPv4 header's,
/// and the ICMP, ICMPv6, UDP or TCP one over (pseudo-header and) the rest of the
/// frame. A valid checksum makes the sum over the covered data 0xffff.
pub fn assert_checksums(frame: &[u8], what: &str) {
    let mut at = 14;
    let mut ethertype = be16(frame, 12);
    while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(frame, at + 2);
        at += 4;
    }
    let (v4, proto, mut pseudo, l4) = match ethertype {
        ETH_P_IP => {
            let ihl = usize::from(frame[at] & 0x0f) * 4;
            if ihl < 20 {
                return; // a malformed header, made so on purpose
            }
            assert_eq!(ones_sum(&frame[at..at + ihl]), 0xffff, "{what}: IPv4 header checksum");
            if be16(frame, at + 6) & 0x1fff != 0 {
                return; // a later fragment: no L4 header to check
            }
            let l4 = &frame[at + ihl..];
            let proto = frame[at + 9];
            let mut pseudo = frame[at + 12..at + 20].to_vec();
            pseudo.extend([0, proto]);
            pseudo.extend((l4.len() as u16).to_be_bytes());
            (true, proto, pseudo, l4)
        }
        ETH_P_IPV6 => {
            let l4 = &frame[at + 40..];
            let proto = frame[at + 6];
            let mut pseudo = frame[at + 8..at + 40].to_vec();
            pseudo.extend((l4.len() as u32).to_be_bytes());
            pseudo.extend([0, 0, 0, proto]);
            (false, proto, pseudo, l4)
        }
        _ => return,
    };
    match proto {
        IPPROTO_ICMP if v4 => pseudo.clear(), // ICMP has no pseudo-header
        IPPROTO_UDP if v4 && be16(l4, 6) == 0 => return, // "no checksum"
        IPPROTO_ICMPV6 | IPPROTO_UDP | IPPROTO_TCP => {}
        _ => return,
    }
    pseudo.extend(l4);
    assert_eq!(ones_sum(&pseudo), 0xffff, "{what}: protocol {proto} checksum");
}

// ---------------------------------------------------------------------------
// Frames.

pub type Mac = [u8; 6];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const SRC_MAC: Mac = [0x02, 0xaa, 0x00, 0x00, 0x00, 0x01];
pub const DST_MAC: Mac = [0x02, 0xbb, 0x00, 0x00, 0x00, 0x02];
pub const SRC4: [u8; 4] = [192, 0, 2, 1];
pub const DST4: [u8; 4] = [198, 51, 100, 2];
pub const SRC6: [u8; 16] = [0xfd, 0, 0xde, 0xad, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0xfd, 0, 0xde, 0xad, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];

/// Router alert, three NOPs, end of options: 8 bytes, ihl 7.
pub const IP_OPTIONS: [u8; 8] = [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00];
/// MSS 1460, two NOPs, SACK permitted: 8 bytes, doff 7.
pub const TCP_OPTIONS: [u8; 8] = [0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02];

/// VLAN tags of a frame: (TPID, TCI), outermost first.
pub type Tags = &'static [(u16, u16)];

/// No tag, one 802.1Q, one 802.1ad, and QinQ (802.1ad outside, 802.1Q inside).
pub const TAG_SETS: [Tags; 4] = [
    &[],
    &[(ETH_P_8021Q, 100)],
    &[(ETH_P_8021AD, 0x2fff)],
    &[(ETH_P_8021AD, 10), (ETH_P_8021Q, 20)],
];

#[derive(Clone, Debug)]
pub enum Net {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        frag: u16,
        options: Vec<u8>,
        ihl: Option<u8>,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
    },
    /// Any other ethertype: the payload follows the Ethernet header.
    Other(u16),
}

#[derive(Clone, Debug)]
pub enum L4 {
    /// Echo layout (id, seq) whatever the type.
    Icmp {
        kind: u8,
        seq: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
        csum: bool,
    },
    Tcp {
        sport: u16,
        dport: u16,
        options: Vec<u8>,
        doff: Option<u8>,
    },
    /// An IP protocol whose header, if any, is part of the payload.
    Raw(u8),
}

/// A frame described field by field; `bytes()` lays it out with every length
/// and checksum computed.
#[derive(Clone, Debug)]
pub struct Frame {
    pub dst: Mac,
    pub src: Mac,
    /// (TPID, TCI), outermost first.
    pub tags: Vec<(u16, u16)>,
    pub net: Net,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

pub fn udp(sport: u16, dport: u16) -> L4 {
    L4::Udp { sport, dport, csum: true }
}

pub fn tcp(sport: u16, dport: u16) -> L4 {
    L4::Tcp { sport, dport, options: Vec::new(), doff: None }
}

pub fn tcp_with_options(sport: u16, dport: u16) -> L4 {
    L4::Tcp { sport, dport, options: TCP_OPTIONS.to_vec(), doff: None }
}

pub fn ping4(seq: u16) -> Frame {
    Frame::v4(L4::Icmp { kind: 8, seq })
}

pub fn ping6(seq: u16) -> Frame {
    Frame::v6(L4::Icmp { kind: 128, seq })
}

pub fn arp() -> Frame {
    Frame::other(ETH_P_ARP, (0..28).collect())
}

impl Frame {
    pub fn v4(l4: L4) -> Frame {
        let net = Net::V4 { src: SRC4, dst: DST4, frag: 0, options: Vec::new(), ihl: None };
        Frame::new(net, l4)
    }

    pub fn v6(l4: L4) -> Frame {
        Frame::new(Net::V6 { src: SRC6, dst: DST6 }, l4)
    }

    pub fn other(ethertype: u16, payload: Vec<u8>) -> Frame {
        Frame { payload, ..Frame::new(Net::Other(ethertype), L4::Raw(0)) }
    }

    pub fn new(net: Net, l4: L4) -> Frame {
        // 21 bytes: an odd length, so the checksums' zero padding is exercised.
        let payload = (0..21).map(|i| 0xa0 + i).collect();
        Frame { dst: DST_MAC, src: SRC_MAC, tags: Vec::new(), net, l4, payload, ttl: 64 }
    }

    pub fn tags(mut self, tags: &[(u16, u16)]) -> Frame {
        self.tags = tags.to_vec();
        self
    }

    pub fn payload(mut self, payload: Vec<u8>) -> Frame {
        self.payload = payload;
        self
    }

    pub fn v4_mut(
        &mut self,
    ) -> (&mut [u8; 4], &mut [u8; 4], &mut u16, &mut Vec<u8>, &mut Option<u8>) {
        match &mut self.net {
            Net::V4 { src, dst, frag, options, ihl } => (src, dst, frag, options, ihl),
            other => panic!("not IPv4: {other:?}"),
        }
    }

    /// Flags and fragment offset, as in the header (MF 0x2000, DF 0x4000).
    pub fn frag(mut self, value: u16) -> Frame {
        *self.v4_mut().2 = value;
        self
    }

    pub fn ip_options(mut self, options: &[u8]) -> Frame {
        *self.v4_mut().3 = options.to_vec();
        self
    }

    /// An ihl that disagrees with the header laid out.
    pub fn ihl(mut self, ihl: u8) -> Frame {
        *self.v4_mut().4 = Some(ihl);
        self
    }

    pub fn src_mac(mut self, mac: Mac) -> Frame {
        self.src = mac;
        self
    }

    pub fn src4(mut self, addr: [u8; 4]) -> Frame {
        *self.v4_mut().0 = addr;
        self
    }

    pub fn src6(mut self, addr: [u8; 16]) -> Frame {
        match &mut self.net {
            Net::V6 { src, .. } => *src = addr,
            other => panic!("not IPv6: {other:?}"),
        }
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Frame {
        self.ttl = ttl;
        self
    }

    /// Zero payload bytes added or taken so that the frame is `len` bytes
    /// long, every length field counting them.
    pub fn pad_to(mut self, len: usize) -> Frame {
        let headers = self.headers_len();
        assert!(len >= headers, "{len} bytes cannot hold {headers} of headers");
        self.payload = vec![0; len - headers];
        self
    }

    pub fn dst_mac(mut self, mac: Mac) -> Frame {
        self.dst = mac;
        self
    }

    pub fn dst4(mut self, addr: [u8; 4]) -> Frame {
        *self.v4_mut().1 = addr;
        self
    }

    pub fn dst6(mut self, addr: [u8; 16]) -> Frame {
        match &mut self.net {
            Net::V6 { dst, .. } => *dst = addr,
            other => panic!("not IPv6: {other:?}"),
        }
        self
    }

    pub fn kind(mut self, new: u8) -> Frame {
        match &mut self.l4 {
            L4::Icmp { kind, .. } => *kind = new,
            other => panic!("not ICMP: {other:?}"),
        }
        self
    }

    pub fn dport(&self) -> u16 {
        match &self.l4 {
            L4::Udp { dport, .. } | L4::Tcp { dport, .. } => *dport,
            other => panic!("no ports: {other:?}"),
        }
    }

    pub fn with_dport(mut self, port: u16) -> Frame {
        match &mut self.l4 {
            L4::Udp { dport, .. } | L4::Tcp { dport, .. } => *dport = port,
            other => panic!("no ports: {other:?}"),
        }
        self
    }

    pub fn without_udp_checksum(mut self) -> Frame {
        match &mut self.l4 {
            L4::Udp { csum, .. } => *csum = false,
            other => panic!("not UDP: {other:?}"),
        }
        self
    }

    pub fn tcp_doff(mut self, value: u8) -> Frame {
        match &mut self.l4 {
            L4::Tcp { doff, .. } => *doff = Some(value),
            other => panic!("not TCP: {other:?}"),
        }
        self
    }

    /// What an echo responder sends back: MACs and addresses swapped, type
    /// echo reply, checksums computed afresh.
    pub fn echo_reply(&self) -> Frame {
        let mut r = self.clone();
        (r.src, r.dst) = (self.dst, self.src);
        let reply = match &mut r.net {
            Net::V4 { src, dst, .. } => {
                std::mem::swap(src, dst);
                0
            }
            Net::V6 { src, dst } => {
                std::mem::swap(src, dst);
                129
            }
            Net::Other(_) => panic!("not IP"),
        };
        r.kind(reply)
    }

    pub fn eth_len(&self) -> usize {
        14 + 4 * self.tags.len()
    }

    pub fn l3_len(&self) -> usize {
        match &self.net {
            Net::V4 { options, .. } => 20 + options.len(),
            Net::V6 { .. } => 40,
            Net::Other(_) => 0,
        }
    }

    pub fn l4_header_len(&self) -> usize {
        match &self.l4 {
            L4::Icmp { .. } | L4::Udp { .. } => 8,
            L4::Tcp { options, .. } => 20 + options.len(),
            L4::Raw(_) => 0,
        }
    }

    /// Ethernet, tags, IP header and L4 header: what a parser reads.
    pub fn headers_len(&self) -> usize {
        self.eth_len() + self.l3_len() + self.l4_header_len()
    }

    pub fn l4_offset(&self) -> usize {
        self.eth_len() + self.l3_len()
    }

    pub fn ip_proto(&self) -> u8 {
        match (&self.l4, &self.net) {
            (L4::Icmp { .. }, Net::V6 { .. }) => IPPROTO_ICMPV6,
            (L4::Icmp { .. }, _) => IPPROTO_ICMP,
            (L4::Udp { .. }, _) => IPPROTO_UDP,
            (L4::Tcp { .. }, _) => IPPROTO_TCP,
            (L4::Raw(p), _) => *p,
        }
    }

    /// L4 header and payload with the checksum field zero.
    pub fn l4_unchecked(&self) -> Vec<u8> {
        let mut h = match &self.l4 {
            L4::Icmp { kind, seq } => {
                let mut h = vec![*kind, 0, 0, 0, 0x12, 0x34];
                h.extend(seq.to_be_bytes());
                h
            }
            L4::Udp { sport, dport, .. } => {
                let mut h = sport.to_be_bytes().to_vec();
                h.extend(dport.to_be_bytes());
                h.extend(((8 + self.payload.len()) as u16).to_be_bytes());
                h.extend([0, 0]);
                h
            }
            L4::Tcp { sport, dport, options, doff } => {
                assert_eq!(options.len() % 4, 0, "TCP options come in words");
                let doff = doff.unwrap_or(((20 + options.len()) / 4) as u8);
                let mut h = sport.to_be_bytes().to_vec();
                h.extend(dport.to_be_bytes());
                h.extend([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]); // seq, ack
                h.extend([doff << 4, 0x18, 0xff, 0xff, 0, 0, 0, 0]); // PSH|ACK, window
                h.extend(options);
                h
            }
            L4::Raw(_) => Vec::new(),
        };
        h.extend(&self.payload);
        h
    }

    pub fn pseudo_header(&self, l4_len: usize) -> Vec<u8> {
        let proto = self.ip_proto();
        match &self.net {
            Net::V4 { .. } if proto == IPPROTO_ICMP => Vec::new(),
            Net::V4 { src, dst, .. } => {
                let mut p = [src.as_slice(), dst.as_slice(), &[0, proto]].concat();
                p.extend((l4_len as u16).to_be_bytes());
                p
            }
            Net::V6 { src, dst } => {
                let mut p = [src.as_slice(), dst.as_slice()].concat();
                p.extend((l4_len as u32).to_be_bytes());
                p.extend([0, 0, 0, proto]);
                p
            }
            Net::Other(_) => Vec::new(),
        }
    }

    /// One's complement sum over pseudo-header and L4 bytes, checksum field
    /// zero: the L4 checksum is its complement.
    pub fn l4_sum(&self) -> u16 {
        let l4 = self.l4_unchecked();
        ones_sum(&[self.pseudo_header(l4.len()), l4].concat())
    }

    pub fn l4_bytes(&self) -> Vec<u8> {
        let mut l4 = self.l4_unchecked();
        let field = match &self.l4 {
            L4::Icmp { .. } => Some(2),
            L4::Udp { csum: true, .. } => Some(6),
            L4::Tcp { .. } => Some(16),
            L4::Udp { csum: false, .. } | L4::Raw(_) => None,
        };
        if let Some(at) = field {
            let mut check = !self.l4_sum();
            // RFC 768: a computed zero is sent as all ones, zero meaning "none".
            if check == 0 && matches!(self.l4, L4::Udp { .. }) {
                check = 0xffff;
            }
            l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
        }
        l4
    }

    pub fn bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut f = [self.dst, self.src].concat();
        let ethertype = match &self.net {
            Net::V4 { .. } => ETH_P_IP,
            Net::V6 { .. } => ETH_P_IPV6,
            Net::Other(t) => *t,
        };
        // Each TPID sits where the previous header names what follows.
        let mut types: Vec<u16> = self.tags.iter().map(|t| t.0).collect();
        types.push(ethertype);
        f.extend(types[0].to_be_bytes());
        for (i, (_, tci)) in self.tags.iter().enumerate() {
            f.extend(tci.to_be_bytes());
            f.extend(types[i + 1].to_be_bytes());
        }
        match &self.net {
            Net::V4 { src, dst, frag, options, ihl } => {
                assert_eq!(options.len() % 4, 0, "IP options come in words");
                let len = 20 + options.len();
                let ihl = ihl.unwrap_or((len / 4) as u8);
                let mut h = vec![0x40 | ihl, 0];
                h.extend(((len + l4.len()) as u16).to_be_bytes());
                h.extend([0x1c, 0x46]);
                h.extend(frag.to_be_bytes());
                h.extend([self.ttl, self.ip_proto(), 0, 0]);
                h.extend(src);
                h.extend(dst);
                h.extend(options);
                let check = !ones_sum(&h);
                h[10..12].copy_from_slice(&check.to_be_bytes());
                f.extend(h);
            }
            Net::V6 { src, dst } => {
                f.extend([0x60, 0, 0, 0]);
                f.extend((l4.len() as u16).to_be_bytes());
                f.extend([self.ip_proto(), self.ttl]);
                f.extend(src);
                f.extend(dst);
            }
            Net::Other(_) => {}
        }
        f.extend(l4);
        f
    }
}
