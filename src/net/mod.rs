//! The network side: interfaces, netlink, ethtool, MAC addresses, frames,
//! echo replies, namespaces, an interface's XDP features.

pub mod echo;
pub mod ethtool;
pub mod features;
pub mod frame;
pub mod iface;
pub mod mac;
pub mod netlink;
pub mod netns;
