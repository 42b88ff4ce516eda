//! Capturing through the xdpctl program on an interface: whose program it
//! is, whether it has the stats helper's sampling path (if not, the reload
//! that gives it one), and the switch: on for the capture under a lease
//! renewed every second, off when dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::caps::{self, Cap};
use crate::io::clock;
use crate::net::iface::Iface;
use crate::obj::skel::SampleCtl;
use crate::obj::verdicts::{Missing, Tap, Verdict};
use crate::output;
use crate::xdp::attach::{self, Attachment};
use crate::xdp::ifstate::{prog_name, IfState};
use crate::xdp::lock::Lock;

/// How long a program's sampling path stays on without being renewed: what
/// a killed sampler leaves on, at most.
const LEASE_NS: u64 = 3_000_000_000;
/// How often the lease is renewed and the program looked at.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// The program captured through, and its sampling path.
pub(super) struct Through {
    pub(super) prog_id: u32,
    pub(super) prog_name: String,
    pub(super) tap: Tap,
    /// The switch's verdict mask.
    pub(super) verdicts: u32,
    /// One sampler per interface, held while this one runs.
    _lock: Lock,
}

/// The sampling path of the xdpctl program on `dev`, under the sampling
/// lock; refused, with what to do, for another tool's program or one
/// without the path.
pub(super) fn open(dev: &Iface, verdicts: &[Verdict]) -> Result<Through> {
    // Whose program it is, and which maps it uses: other programs' state.
    caps::require("sample", &[Cap::Bpf, Cap::NetAdmin, Cap::SysAdmin]).with_context(|| {
        format!("{} runs an XDP program, and capturing through it reads its maps", dev.name)
    })?;
    let lock = Lock::sampling(dev)?;
    let state = IfState::read(dev)?;
    let Some(att) = state.attached.first().copied() else {
        bail!("{}: its XDP program went away meanwhile; run again", dev.name)
    };
    if !state.is_ours(att)? {
        bail!(
            "{} already has an XDP program: {} (id {}, {} mode), not loaded by xdpctl; xdpctl \
             captures only through its own programs, or with its own sampler on a free \
             interface: `xdpctl unload --dev {0} --force` first",
            dev.name,
            prog_name(att.prog_id),
            att.prog_id,
            att.mode
        );
    }
    let name = state.name_of(att.prog_id);
    let dir = state.pin_dir(None)?;
    match Tap::open(&dir, att.prog_id)? {
        Ok(tap) => Ok(Through {
            prog_id: att.prog_id,
            prog_name: name,
            tap,
            verdicts: Verdict::mask(verdicts),
            _lock: lock,
        }),
        Err(missing) => bail!(no_sampling_path(&state, att, &name, &dir, missing)),
    }
}

/// Why the program on `state`'s interface cannot be captured through, and
/// the reload that fixes it.
fn no_sampling_path(
    state: &IfState,
    att: Attachment,
    name: &str,
    dir: &Path,
    missing: Missing,
) -> String {
    let dev = &state.dev.name;
    let object = state.rec.as_ref().and_then(|r| r.object.clone());
    // A shipped program's record names the shipped object.
    let file = object.filter(|o| o != crate::obj::catalog::ObjectFile::XdpProgKern.name());
    let reload = match &file {
        None => format!("xdpctl load --dev {dev} --progname {name} --force --reuse-maps"),
        Some(f) => {
            format!("xdpctl load --dev {dev} --obj {f} --progname {name} --force --reuse-maps")
        }
    };
    let (why, fix) = match (missing, &file) {
        (Missing::NotPinned, None) => (
            format!(
                "has no sampling switch pinned in {} ({}): an older xdpctl loaded it",
                dir.display(),
                crate::obj::verdicts::CTL_MAP
            ),
            format!("reload it with this xdpctl (`{reload}` keeps its counters)"),
        ),
        (Missing::NotPinned, Some(f)) => (
            format!(
                "has no sampling switch pinned in {}: {f} was not built with xdpctl's \
                 include/xdp_stats_kern.h (or was loaded by an older xdpctl)",
                dir.display()
            ),
            format!(
                "end its programs in xdp_stats_record_action() of this xdpctl's \
                 include/xdp_stats_kern.h, rebuild and reload it (`{reload}`)"
            ),
        ),
        (Missing::NotUsed, _) => (
            format!("does not use the sampling maps pinned in {} (another load's)", dir.display()),
            format!("reload it (`{reload}`)"),
        ),
    };
    format!(
        "{dev} runs {name} (id {}, {} mode), which {why}; {fix}, or `xdpctl unload --dev {dev}` \
         to capture with xdpctl's own sampler",
        att.prog_id, att.mode
    )
}

/// A program's sampling path switched on, its lease renewed while the
/// capture runs; off when dropped, however the capture ends. A killed
/// sampler cannot switch it off: the lease runs out by itself.
pub(super) struct Switch<'a> {
    through: &'a Through,
    dev: &'a Iface,
    ctl: SampleCtl,
    renewed: Instant,
}

impl<'a> Switch<'a> {
    pub(super) fn on(through: &'a Through, dev: &'a Iface, snaplen: u32) -> Result<Switch<'a>> {
        let ctl = SampleCtl {
            expiry_ns: clock::monotonic_ns()? + LEASE_NS,
            enabled: 1,
            verdicts: through.verdicts,
            snaplen,
            pad: 0,
        };
        through.tap.set(&ctl)?;
        Ok(Switch { through, dev, ctl, renewed: Instant::now() })
    }

    /// Renew the lease once a second; false once the program has left the
    /// interface (unloaded, or replaced: even with --reuse-maps a new
    /// program has a switch of its own, a global).
    pub(super) fn renew(&mut self) -> Result<bool> {
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(true);
        }
        let now = attach::query(self.dev.index)?.first().map(|a| a.prog_id);
        if now != Some(self.through.prog_id) {
            return Ok(false);
        }
        self.ctl.expiry_ns = clock::monotonic_ns()? + LEASE_NS;
        self.through.tap.set(&self.ctl)?;
        self.renewed = Instant::now();
        Ok(true)
    }
}

impl Drop for Switch<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.through.tap.off() {
            output::say(&format!(
                "warning: could not switch sampling off ({e:#}); it stops by itself within {} s",
                LEASE_NS / 1_000_000_000
            ));
        }
    }
}

/// The verdicts of a switch's mask, by name: "all" for every one.
pub(super) fn verdict_list(mask: u32) -> String {
    if mask == Verdict::mask(&[]) {
        return "all".into();
    }
    let names: Vec<String> =
        (0..32).filter(|a| mask & (1 << a) != 0).map(Verdict::name_of).collect();
    names.join(", ")
}
