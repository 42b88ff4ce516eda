//! What is on an interface and who owns it: attaching, swapping, pins and
//! bpffs, xdpctl's records, locks and private state, leftovers, other loaders.

pub mod attach;
pub mod bpffs;
pub mod ifstate;
pub mod leftovers;
pub mod libxdp;
pub mod lock;
pub mod offload;
pub mod pins;
pub mod private;
pub mod record;
pub mod swap;
