//! Capture files that tcpdump and Wireshark read: classic pcap with nanosecond
//! timestamps, or pcapng with the interface's name and, at the end, the
//! capture's statistics (packets seen, samples lost), and a comment per
//! packet where there is one to make (the verdict of the program that saw
//! it; pcap has no room for it). Encoding is pcap-file's.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }

    /// What a file name asks for when --format is not given: pcapng for
    /// `*.pcapng`, as Wireshark names them; pcap otherwise, as tcpdump writes.
    pub fn for_path(path: &Path) -> Format {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("pcapng") => Format::Pcapng,
            _ => Format::Pcap,
        }
    }
}

/// What is known at the end of a capture, for pcapng's statistics block.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub start: Duration,
    pub end: Duration,
    /// Packets the capture point saw.
    pub seen: u64,
    /// Packets it saw but could not deliver.
    pub lost: u64,
}

/// Writes one interface's packets. Packet writes go to a buffer; `flush`
/// pushes them out (to a reader on a pipe, say).
pub struct CaptureWriter<W: Write> {
    out: Shared<W>,
    format: Inner<W>,
}

enum Inner<W: Write> {
    Pcap(PcapWriter<Shared<W>>),
    Pcapng(PcapNgWriter<Shared<W>>),
}

impl<W: Write> CaptureWriter<W> {
    /// Write the file header for an Ethernet interface `dev` captured with
    /// `snaplen`.
    pub fn new(out: W, format: Format, dev: &str, snaplen: u32) -> Result<Self> {
        let out = Shared(Rc::new(RefCell::new(out)));
        let inner = match format {
            Format::Pcap => {
                let header = PcapHeader {
                    snaplen,
                    datalink: DataLink::ETHERNET,
                    ts_resolution: TsResolution::NanoSecond,
                    // As tcpdump writes them (pcap-file defaults to big-endian).
                    endianness: Endianness::native(),
                    ..Default::default()
                };
                Inner::Pcap(PcapWriter::with_header(out.clone(), header).map_err(error)?)
            }
            Format::Pcapng => {
                let section = SectionHeaderBlock {
                    // pcap-file writes 64-bit timestamps of statistics blocks
                    // as one integer; the format wants the high word first,
                    // which only big-endian order gives. Readers take either.
                    endianness: Endianness::Big,
                    options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                        "xdpctl ",
                        env!("CARGO_PKG_VERSION")
                    )))],
                    ..Default::default()
                };
                let mut w =
                    PcapNgWriter::with_section_header(out.clone(), section).map_err(error)?;
                let interface = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Owned(dev.to_string())),
                        // pcap-file writes packet timestamps in nanoseconds.
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                };
                w.write_pcapng_block(interface).map_err(error)?;
                Inner::Pcapng(w)
            }
        };
        Ok(CaptureWriter { out, format: inner })
    }

    /// One packet: `data` is what was captured of a frame `orig_len` long,
    /// seen at `time` (since the Unix epoch).
    pub fn packet(&mut self, time: Duration, orig_len: u32, data: &[u8]) -> Result<()> {
        self.noted_packet(time, orig_len, data, None)
    }

    /// A packet with a comment (pcapng's opt_comment, shown by tshark as
    /// frame.comment); pcap drops the comment.
    pub fn noted_packet(
        &mut self,
        time: Duration,
        orig_len: u32,
        data: &[u8],
        comment: Option<String>,
    ) -> Result<()> {
        match &mut self.format {
            Inner::Pcap(w) => w.write_packet(&PcapPacket::new(time, orig_len, data)),
            Inner::Pcapng(w) => w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: time,
                original_len: orig_len,
                data: Cow::Borrowed(data),
                options: comment
                    .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c)))
                    .into_iter()
                    .collect(),
            }),
        }
        .map(drop)
        .map_err(error)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(anyhow::Error::new)
    }

    /// End the capture: pcapng records `totals` in an interface statistics
    /// block (pcap has nowhere to put them); then flush.
    pub fn finish(&mut self, totals: Totals) -> Result<()> {
        if let Inner::Pcapng(w) = &mut self.format {
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            let stats = InterfaceStatisticsBlock {
                interface_id: 0,
                timestamp: nanos(totals.end),
                options: vec![
                    InterfaceStatisticsOption::IsbStartTime(nanos(totals.start)),
                    InterfaceStatisticsOption::IsbEndTime(nanos(totals.end)),
                    InterfaceStatisticsOption::IsbIfRecv(totals.seen),
                    InterfaceStatisticsOption::IsbIfDrop(totals.lost),
                ],
            };
            w.write_pcapng_block(stats).map_err(error)?;
        }
        self.flush()
    }
}

/// Encoding into memory, for a writer elsewhere to write out.
impl CaptureWriter<Vec<u8>> {
    /// Bytes encoded and not yet taken.
    pub fn buffered(&self) -> usize {
        self.out.0.borrow().len()
    }

    /// Take what is encoded: it is swapped with `buf`, which the writer
    /// continues into (cleared first; its allocation is kept).
    pub fn swap(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        std::mem::swap(&mut *self.out.0.borrow_mut(), buf);
    }
}

/// Keeps I/O errors as they are, so a closed pipe is recognised upstream.
fn error(e: PcapError) -> anyhow::Error {
    match e {
        PcapError::IoError(e) => anyhow::Error::new(e).context("writing the capture"),
        other => anyhow!("writing the capture: {other}"),
    }
}

/// The output, shared between the format writer and `flush` (pcap-file's
/// pcap writer gives no access to what it wraps).
struct Shared<W>(Rc<RefCell<W>>);

impl<W> Clone for Shared<W> {
    fn clone(&self) -> Self {
        Shared(Rc::clone(&self.0))
    }
}

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// pcapng sections are written big-endian.
    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// A pcapng timestamp: high word, then low word.
    fn be_ts(b: &[u8]) -> u64 {
        (u64::from(be32(b, 0)) << 32) | u64::from(be32(b, 4))
    }

    #[test]
    fn formats_follow_the_file_name_unless_told() {
        assert_eq!(Format::for_path(Path::new("a.pcapng")), Format::Pcapng);
        assert_eq!(Format::for_path(Path::new("A.PCAPNG")), Format::Pcapng);
        assert_eq!(Format::for_path(Path::new("a.pcap")), Format::Pcap);
        assert_eq!(Format::for_path(Path::new("-")), Format::Pcap);
    }

    #[test]
    fn pcap_records_nanoseconds_and_both_lengths() {
        let mut file = Vec::new();
        let mut w = CaptureWriter::new(&mut file, Format::Pcap, "veth0", 96).unwrap();
        w.packet(Duration::new(1_700_000_000, 123_456_789), 118, &[0xab; 60]).unwrap();
        w.finish(Totals::default()).unwrap();
        drop(w);
        // Global header (24 bytes), then 16 bytes of record header and the data.
        assert_eq!(file.len(), 24 + 16 + 60);
        assert_eq!(u32_at(&file, 0), 0xa1b2_3c4d, "nanosecond magic");
        assert_eq!(u32_at(&file, 16), 96, "snaplen");
        assert_eq!(u32_at(&file, 20), 1, "LINKTYPE_ETHERNET");
        assert_eq!(u32_at(&file, 24), 1_700_000_000);
        assert_eq!(u32_at(&file, 28), 123_456_789);
        assert_eq!(u32_at(&file, 32), 60, "captured length");
        assert_eq!(u32_at(&file, 36), 118, "original length");
        assert!(file[40..].iter().all(|&b| b == 0xab));
    }

    #[test]
    fn encoded_bytes_are_taken_in_pieces_that_join_up() {
        let mut w = CaptureWriter::new(Vec::new(), Format::Pcap, "veth0", 96).unwrap();
        w.packet(Duration::new(1, 0), 60, &[1; 60]).unwrap();
        assert_eq!(w.buffered(), 24 + 16 + 60);
        let mut first = vec![0xee; 8];
        w.swap(&mut first);
        assert_eq!(w.buffered(), 0, "a cleared buffer goes back to the writer");
        w.packet(Duration::new(2, 0), 30, &[2; 30]).unwrap();
        let mut second = Vec::new();
        w.swap(&mut second);

        let mut whole = Vec::new();
        let mut once = CaptureWriter::new(&mut whole, Format::Pcap, "veth0", 96).unwrap();
        once.packet(Duration::new(1, 0), 60, &[1; 60]).unwrap();
        once.packet(Duration::new(2, 0), 30, &[2; 30]).unwrap();
        drop(once);
        assert_eq!([first, second].concat(), whole);
    }

    #[test]
    fn a_sample_longer_than_the_snaplen_is_refused() {
        let mut file = Vec::new();
        let mut w = CaptureWriter::new(&mut file, Format::Pcap, "veth0", 10).unwrap();
        assert!(w.packet(Duration::ZERO, 20, &[0; 20]).is_err());
    }

    /// Blocks of a pcapng file as (type, body), walked by their lengths.
    fn blocks(file: &[u8]) -> Vec<(u32, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < file.len() {
            let (kind, len) = (be32(file, at), be32(file, at + 4) as usize);
            assert_eq!(be32(file, at + len - 4) as usize, len, "trailing length");
            out.push((kind, &file[at + 8..at + len - 4]));
            at += len;
        }
        out
    }

    /// Options of a block body from `start`: (code, value).
    fn options(body: &[u8], mut at: usize) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while at + 4 <= body.len() {
            let code = u16::from_be_bytes([body[at], body[at + 1]]);
            let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
            if code == 0 {
                break;
            }
            out.push((code, &body[at + 4..at + 4 + len]));
            at += 4 + len.div_ceil(4) * 4;
        }
        out
    }

    #[test]
    fn pcapng_keeps_a_packets_comment() {
        let mut file = Vec::new();
        let mut w = CaptureWriter::new(&mut file, Format::Pcapng, "veth0", 96).unwrap();
        w.noted_packet(Duration::new(1, 0), 60, &[1; 60], Some("verdict=drop".into())).unwrap();
        drop(w);
        let epb = blocks(&file)[2].1;
        // Interface, timestamp, two lengths (20 bytes), then the data padded to 4.
        let opts = options(epb, 20 + 60);
        assert_eq!(opts, [(1, b"verdict=drop".as_slice())], "opt_comment");
    }

    #[test]
    fn pcapng_names_the_interface_and_records_what_was_lost() {
        let mut file = Vec::new();
        let mut w = CaptureWriter::new(&mut file, Format::Pcapng, "veth0", 9216).unwrap();
        w.packet(Duration::new(2, 5), 61, &[7; 61]).unwrap();
        let totals =
            Totals { start: Duration::new(1, 0), end: Duration::new(3, 0), seen: 40, lost: 3 };
        w.finish(totals).unwrap();
        drop(w);

        let blocks = blocks(&file);
        let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
        assert_eq!(kinds, [0x0a0d_0d0a, 1, 6, 5], "SHB, IDB, EPB, ISB");

        let idb = blocks[1].1;
        assert_eq!(u16::from_be_bytes([idb[0], idb[1]]), 1, "LINKTYPE_ETHERNET");
        assert_eq!(be32(idb, 4), 9216, "snaplen");
        let opts = options(idb, 8);
        assert!(opts.contains(&(2, b"veth0".as_slice())), "if_name: {opts:?}");
        assert!(opts.contains(&(9, [9u8].as_slice())), "if_tsresol: {opts:?}");

        let epb = blocks[2].1;
        assert_eq!(be_ts(&epb[4..]), 2_000_000_005);
        assert_eq!((be32(epb, 12), be32(epb, 16)), (61, 61));
        assert_eq!(&epb[20..81], &[7; 61]);

        let isb = blocks[3].1;
        assert_eq!(be_ts(&isb[4..]), 3_000_000_000, "ISB timestamp");
        let opts = options(isb, 12);
        let value = |code: u16| opts.iter().find(|o| o.0 == code).unwrap().1;
        assert_eq!(be_ts(value(2)), 1_000_000_000, "isb_starttime");
        assert_eq!(be_ts(value(3)), 3_000_000_000, "isb_endtime");
        assert_eq!(value(4), 40u64.to_be_bytes(), "isb_ifrecv");
        assert_eq!(value(5), 3u64.to_be_bytes(), "isb_ifdrop");
    }
}
