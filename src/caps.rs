//! The capabilities a command needs, checked before it does anything, so a
//! user without them hears which ones rather than a bare EPERM from deep
//! inside libbpf.

use std::fmt;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    NetAdmin,
    NetRaw,
    IpcLock,
    SysAdmin,
    Perfmon,
    Bpf,
}

impl Cap {
    fn bit(self) -> u32 {
        match self {
            Cap::NetAdmin => 12,
            Cap::NetRaw => 13,
            Cap::IpcLock => 14,
            Cap::SysAdmin => 21,
            Cap::Perfmon => 38,
            Cap::Bpf => 39,
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
            Cap::IpcLock => "CAP_IPC_LOCK",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        })
    }
}

/// The effective set, from the `CapEff:` line of /proc/self/status.
fn parse_effective(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Which of `needed` the effective set `eff` lacks. CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as the kernel lets it.
fn missing(eff: u64, needed: &[Cap]) -> Vec<Cap> {
    let has = |c: Cap| eff & (1 << c.bit()) != 0;
    let covered = |c: Cap| has(c) || (matches!(c, Cap::Bpf | Cap::Perfmon) && has(Cap::SysAdmin));
    needed.iter().copied().filter(|&c| !covered(c)).collect()
}

/// Whether this process has `cap` in its effective set.
pub fn has(cap: Cap) -> Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    Ok(parse_effective(&status).is_some_and(|eff| eff & (1 << cap.bit()) != 0))
}

/// Refuse to run `command` without the capabilities it needs.
pub fn require(command: &str, needed: &[Cap]) -> Result<()> {
    if needed.is_empty() {
        return Ok(());
    }
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let Some(eff) = parse_effective(&status) else {
        return Ok(()); // no CapEff line: let the kernel decide
    };
    let lacking = missing(eff, needed);
    if !lacking.is_empty() {
        let names = |v: &[Cap]| v.iter().map(Cap::to_string).collect::<Vec<_>>().join(", ");
        bail!(
            "`xdpctl {command}` needs {}; this process lacks {}: run it as root \
             (sudo xdpctl {command} ...)",
            names(needed),
            names(&lacking)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        let status = "Name:\txdpctl\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_effective(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_effective("Name:\tx\n"), None);
    }

    #[test]
    fn names_what_is_missing_and_lets_sys_admin_stand_in() {
        let need = [Cap::Bpf, Cap::NetAdmin];
        assert_eq!(missing(0, &need), need.to_vec());
        assert_eq!(missing(1 << 12, &need), vec![Cap::Bpf]);
        assert!(missing(1 << 12 | 1 << 39, &need).is_empty());
        assert!(missing(1 << 12 | 1 << 21, &need).is_empty(), "CAP_SYS_ADMIN covers CAP_BPF");
        assert_eq!(missing(1 << 21, &[Cap::NetRaw]), vec![Cap::NetRaw]);
    }
}
