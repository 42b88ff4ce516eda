//! Moving packets and bytes: AF_XDP sockets, the traffic generator's engine,
//! captures, the perf buffers they read and the files and pipes they are
//! written to, clocks, and the exporter's bounded HTTP.

pub mod capture;
pub mod clock;
pub mod httpd;
pub mod outfile;
pub mod perfbuf;
pub mod spool;
pub mod trafficgen;
pub mod xsk;
