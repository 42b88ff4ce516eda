//! The sentences with xdpctl's flags: lower modules report facts
//! (error::Fact) that read right in a bench or a test, and here each gets the
//! flag the user gave and the fix, as the command line spells them.

use anyhow::Result;

use crate::error::phrase;
use crate::escape;
use crate::io::xsk::XskProblem;
use crate::net::iface::IfaceProblem;
use crate::net::netlink::Link;
use crate::net::netns;
use crate::obj::object::ObjProblem;
use crate::xdp::attach::{AttachFailure, AttachWhy};
use crate::xdp::bpffs::{PinDirProblem, ROOT};
use crate::xdp::libxdp::DispatcherInUse;
use crate::xdp::lock::PinDirBusy;
use crate::xdp::offload::NoHwOffload;
use crate::xdp::pins::Misfit;

/// Every fact in `err` phrased for the command line; `main` asks this of
/// the error a command ends with.
pub fn phrase_all(err: anyhow::Error) -> anyhow::Error {
    let err = iface(err, "--dev");
    let err = phrase(err, pin_dir);
    let err = phrase(err, |b: &PinDirBusy| format!("{b}, or use another --pin-dir"));
    let err = phrase(err, object);
    let err =
        phrase(err, |n: &NoHwOffload| format!("--mode hw: {n}; use --mode native or --mode skb"));
    let err = phrase(err, |m: &Misfit| {
        if m.by_name {
            format!("{m}, or load with another --pin-dir")
        } else {
            format!("--reuse-maps: {m}; load without --reuse-maps to start fresh")
        }
    });
    let err = phrase(err, |d: &DispatcherInUse| {
        format!("{d}, or --force-dispatcher {} it anyway", d.action)
    });
    let err = phrase(err, attach);
    phrase(err, xsk)
}

/// The facts an `apply` step reports, phrased with the file's keys rather
/// than load's flags (`main` phrases what is left).
pub fn for_file(err: anyhow::Error) -> anyhow::Error {
    let err = iface(err, "redirect_dev");
    let err = phrase(err, |p: &PinDirProblem| format!("pin_dir {p}"));
    let err = phrase(err, |p: &ObjProblem| format!("obj {p}"));
    let err = phrase(err, |m: &Misfit| {
        if m.by_name {
            format!("{m}, or give the entry another pin_dir")
        } else {
            format!("{m}; set reuse_maps = false in the entry to start fresh")
        }
    });
    phrase(err, |a: &AttachFailure| {
        let fix = match a.why {
            AttachWhy::NoNative | AttachWhy::NativeMtu | AttachWhy::HwRefused => {
                "; set mode = \"skb\" (or \"auto\") in the entry"
            }
            _ => "",
        };
        format!("{a}{fix}")
    })
}

/// The note for a default (auto) attach the kernel put in skb mode: the
/// driver of `dev` has no native XDP. Generic XDP works everywhere but is
/// slower, and it is not what a user of xdp-loader (native by default) expects.
pub fn skb_fallback(dev: &str) -> String {
    format!(
        "note: {} has no native XDP: running in skb (generic) mode, which is slower; \
         --mode native insists on native",
        escape::text(dev)
    )
}

/// The command that loads xdp_pass on veth `peer`, run where it lives: in
/// the namespace this one calls `netnsid` (the veth's IFLA_LINK_NETNSID),
/// through nsenter (`ip netns exec` would hide the pins, see bpffs).
pub fn load_on_peer(peer: &Link, netnsid: Option<i32>) -> Result<String> {
    on_peer(&format!("xdpctl load --dev {}", escape::text(&peer.name)), netnsid)
}

/// `cmd` quoted, as run in the namespace this one calls `netnsid` (None:
/// this one): through nsenter, never `ip netns exec`, which hides bpffs.
pub fn on_peer(cmd: &str, netnsid: Option<i32>) -> Result<String> {
    let Some(id) = netnsid else { return Ok(format!("`{cmd}`")) };
    Ok(match netns::path_of_nsid(id)? {
        Some(path) => format!("`nsenter --net={} {cmd}`", escape::path(&path)),
        None => format!("`{cmd}` in its network namespace"),
    })
}

/// An interface given with `flag`.
pub fn iface(err: anyhow::Error, flag: &str) -> anyhow::Error {
    phrase(err, |p: &IfaceProblem| format!("{flag} {p}; `ip link` lists the interfaces"))
}

fn pin_dir(p: &PinDirProblem) -> String {
    match p {
        PinDirProblem::Relative(d) => {
            format!("--pin-dir {}: give an absolute path under {ROOT}", d.display())
        }
        PinDirProblem::ParentDir(_) => format!("--pin-dir {p}; name the directory itself"),
        PinDirProblem::NotBpffs(_) => format!("--pin-dir {p}; use a directory under {ROOT}"),
        PinDirProblem::MountRoot(d) => {
            format!("--pin-dir {p}; use a directory below it, like {}", d.join("xdpctl").display())
        }
        PinDirProblem::Dot(_) => format!("--pin-dir {p}"),
    }
}

fn object(p: &ObjProblem) -> String {
    match p {
        ObjProblem::NotElf(_) => {
            format!("--obj {p}; build one with `clang -O2 -g -target bpf -c prog.bpf.c`")
        }
        ObjProblem::NotBpf(..) => format!("--obj {p}; build it with `clang -target bpf`"),
        ObjProblem::NoXdp { .. } => format!("--obj {p}; build one in SEC(\"xdp\")"),
        ObjProblem::SeveralXdp { .. } => format!("--obj {p}; pick one with --progname NAME"),
        ObjProblem::SeveralInSection { .. } => {
            format!("{p}; pick one by name with --progname NAME")
        }
        ObjProblem::CannotOpen(_) | ObjProblem::LibbpfRefused(_) => format!("--obj {p}"),
    }
}

fn attach(a: &AttachFailure) -> String {
    let name = &a.dev;
    let fix = match a.why {
        AttachWhy::NoNative => ", try --mode skb".to_string(),
        AttachWhy::Occupied => {
            format!(": see `xdpctl status --dev {name}`, then use --force or `xdpctl unload`")
        }
        AttachWhy::NativeMtu => "; use --skb-mode or lower the MTU".to_string(),
        AttachWhy::Mtu => ", lower it or try --skb-mode".to_string(),
        AttachWhy::HwRefused => ", try --mode native or --mode skb".to_string(),
        AttachWhy::Other => String::new(),
    };
    format!("{a}{fix}")
}

fn xsk(p: &XskProblem) -> String {
    match p {
        XskProblem::Device(_) => format!("--dev {p}"),
        XskProblem::QueueBusy { queue, .. } => {
            format!("--queue {queue}: {p}; stop that one or pick another --queue")
        }
        XskProblem::NoZeroCopy { .. } => format!("--zero-copy: {p}; use --copy"),
        XskProblem::QueueRefused { queue, .. } => format!("--queue {queue}: {p}"),
        XskProblem::BatchTooBig { batch, ring, frames } => {
            format!("--batch {batch}: at most {ring} with --frames {frames} (the ring size)")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::error::fact;

    fn said<K>(kind: K) -> (String, String)
    where
        K: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
    {
        let err = anyhow::Error::new(fact(kind));
        let bare = format!("{err:#}");
        (bare, format!("{:#}", phrase_all(err)))
    }

    /// The fact names no flag; the command's sentence names it and the fix.
    #[test]
    fn facts_name_no_flag_and_commands_add_it() {
        let dir = PathBuf::from("/sys/fs/bpf");
        let cases = [
            said(PinDirProblem::MountRoot(dir.clone())),
            said(PinDirBusy(dir.clone())),
            said(IfaceProblem::NoSuch("veth9".into())),
            said(ObjProblem::NotElf(dir.clone())),
            said(NoHwOffload("veth9".into())),
            said(XskProblem::QueueBusy { dev: "veth9".into(), queue: 3 }),
            said(XskProblem::BatchTooBig { batch: 9, ring: 8, frames: 16 }),
        ];
        for (bare, phrased) in cases {
            assert!(!bare.contains("--"), "{bare}");
            assert!(phrased.contains("--"), "{phrased}");
        }
        let (_, phrased) = said(PinDirProblem::MountRoot(dir));
        assert_eq!(
            phrased,
            "--pin-dir /sys/fs/bpf is the root of a bpffs mount; use a directory below it, \
             like /sys/fs/bpf/xdpctl"
        );
    }

    #[test]
    fn the_innermost_phrasing_wins() {
        let err = anyhow::Error::new(fact(IfaceProblem::NoSuch("veth9".into())));
        let err = phrase_all(iface(err, "--redirect-dev"));
        assert_eq!(
            format!("{err:#}"),
            "--redirect-dev veth9: no such interface here; `ip link` lists the interfaces"
        );
    }
}
