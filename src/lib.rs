//! xdpctl: the XDP tutorial rebuilt as one tool. `main.rs` only parses the command
//! line; everything it runs lives here, where tests and benchmarks reach it too.

pub mod caps;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod escape;
pub mod io;
pub mod net;
pub mod obj;
pub mod output;
pub mod sampler;
pub mod stop;
pub mod xdp;
