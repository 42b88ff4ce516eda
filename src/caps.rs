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

/// The effective set, from the `CapEff:` line of /proc/self/status (what
/// `effective` must agree with).
#[cfg(test)]
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

/// The effective set, asked of the kernel (capget): one system call, where
/// /proc/self/status is a file the kernel writes out in full for every reader.
fn effective() -> Result<Option<u64>> {
    // struct __user_cap_header_struct and two __user_cap_data_struct
    // (effective, permitted, inheritable) for _LINUX_CAPABILITY_VERSION_3.
    const VERSION_3: u32 = 0x2008_0522;
    let header = [VERSION_3, 0u32];
    let mut data = [[0u32; 3]; 2];
    // SAFETY: `header` and `data` are live arrays of the layout capget(2)
    // reads and writes for version 3 (a header, then two data structs).
    let rc = unsafe { libc::syscall(libc::SYS_capget, header.as_ptr(), data.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("capget");
    }
    Ok(Some(u64::from(data[0][0]) | u64::from(data[1][0]) << 32))
}

/// Whether this process has `cap` in its effective set.
pub fn has(cap: Cap) -> Result<bool> {
    Ok(effective()?.is_some_and(|eff| eff & (1 << cap.bit()) != 0))
}

/// Refuse to run `command` without the capabilities it needs.
pub fn require(command: &str, needed: &[Cap]) -> Result<()> {
    if needed.is_empty() {
        return Ok(());
    }
    let Some(eff) = effective()? else {
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
    #[test]
    fn capget_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(effective().unwrap(), parse_effective(&status));
    }

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
