//! `--mode hw`: a program offloaded to the device runs on the NIC, and the
//! kernel attaches in hw mode only a program (and maps) loaded for that device
//! (prog_ifindex). A device that announces no XDP offload is refused before
//! anything is loaded; one that does gets the object bound to it.

use std::fmt;

use anyhow::Result;
use libbpf_rs::OpenObject;

use crate::error::fact;
use crate::escape;
use crate::net::features::HW_OFFLOAD;
use crate::net::iface::Iface;
use crate::xdp::attach::{self, Mode};

/// The device's driver announces no XDP hardware offload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHwOffload(pub String);

impl fmt::Display for NoHwOffload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{0} cannot run XDP programs offloaded (its driver announces no XDP hardware \
             offload; `ip -d link show dev {0}` names the driver)",
            self.0
        )
    }
}

/// Refuse offload mode on a device whose driver announces no XDP hardware
/// offload, in one line, before anything is loaded.
pub fn check(dev: &Iface, mode: Option<Mode>) -> Result<()> {
    if mode != Some(Mode::Hw) {
        return Ok(());
    }
    match attach::features(dev.index)? {
        Some(features) if features & HW_OFFLOAD == 0 => {
            Err(fact(NoHwOffload(escape::text(&dev.name).into_owned())).into())
        }
        // Kernels before 6.3 announce nothing: the load for the device tells.
        _ => Ok(()),
    }
}

/// Load the object's selected program and the maps it creates for `dev`, so
/// that the driver verifies them and an hw-mode attach takes them. Maps of an
/// offloaded program live on the device too: the kernel refuses a host map.
pub fn bind(obj: &mut OpenObject, dev: &Iface, mode: Option<Mode>) {
    if mode != Some(Mode::Hw) {
        return;
    }
    for mut prog in obj.progs_mut() {
        if prog.autoload() {
            prog.set_ifindex(dev.index);
        }
    }
    for mut map in obj.maps_mut() {
        if map.autocreate() {
            map.set_map_ifindex(dev.index);
        }
    }
}
