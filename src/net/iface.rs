//! Network interfaces by name and index, asked of the kernel rather than read
//! from /sys, which `ip netns exec` remounts with another namespace's devices.

use std::fmt;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::net::if_::{if_nameindex, if_nametoindex};

use crate::error::fact;

/// Linux interface names are at most IFNAMSIZ - 1 bytes.
const IFNAMSIZ: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
}

/// Why a name given as an interface's does not lead to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfaceProblem {
    Invalid(String),
    NoSuch(String),
}

impl fmt::Display for IfaceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfaceProblem::Invalid(name) => write!(
                f,
                "{name:?} is not a valid interface name (1-15 bytes, not . or .., no '/', ':' \
                 or whitespace)"
            ),
            IfaceProblem::NoSuch(name) => write!(f, "{name}: no such interface here"),
        }
    }
}

/// The interface called `name` in this network namespace.
pub fn resolve(name: &str) -> Result<Iface> {
    check_name(name)?;
    match if_nametoindex(name) {
        Ok(index) => Ok(Iface { name: name.to_string(), index }),
        Err(Errno::ENODEV) => Err(fact(IfaceProblem::NoSuch(name.to_string())).into()),
        Err(e) => Err(e).with_context(|| format!("looking up interface {name}")),
    }
}

/// Whether interface `index` still exists in this network namespace (one
/// deleted, or moved to another namespace, does not). The kernel does not
/// hand a freed index to the next interface at once.
pub fn exists(index: u32) -> Result<bool> {
    let mut name = [0 as libc::c_char; IFNAMSIZ];
    // SAFETY: `name` holds IFNAMSIZ (IF_NAMESIZE) bytes, as if_indextoname
    // requires; it writes at most that many.
    let found = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if !found.is_null() {
        return Ok(true);
    }
    match Errno::last() {
        Errno::ENXIO | Errno::ENODEV => Ok(false),
        e => Err(e).with_context(|| format!("looking up interface index {index}")),
    }
}

/// Refuse what cannot be an interface name, before any syscall: the
/// kernel's rules (dev_valid_name) are 1-15 bytes, not "." or "..", and no
/// '/', ':' or whitespace.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() >= IFNAMSIZ
        || name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.contains(char::is_whitespace)
    {
        return Err(fact(IfaceProblem::Invalid(name.to_string())).into());
    }
    Ok(())
}

/// Every interface of this network namespace, by index.
pub fn all() -> Result<Vec<Iface>> {
    let list = if_nameindex().context("listing network interfaces")?;
    let mut out: Vec<Iface> = list
        .iter()
        .map(|i| Iface { name: i.name().to_string_lossy().into_owned(), index: i.index() })
        .collect();
    out.sort_by_key(|i| i.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves() {
        let lo = resolve("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert!(all().unwrap().contains(&lo));
    }

    #[test]
    fn bad_names_are_refused_with_the_input_named() {
        for bad in ["", ".", "..", "a/b", "eth0:1", "has space", "tab\there", "sixteen-chars-xx"] {
            let err = resolve(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        // The fact only: the command adds the flag and `ip link` (cmd::advice).
        let err = resolve("nosuchif0").unwrap_err().to_string();
        assert_eq!(err, "nosuchif0: no such interface here");
    }
}
