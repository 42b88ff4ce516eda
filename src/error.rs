//! Failures that carry their own exit status: the tutorial gives XDP attach and
//! BPF load failures distinct codes, and scripts rely on telling them apart.

use std::fmt;

/// Exit status of a failed XDP attach (the tutorial's EXIT_FAIL_XDP).
pub const EXIT_ATTACH: u8 = 30;
/// Exit status of a failed BPF object load (the tutorial's EXIT_FAIL_BPF).
pub const EXIT_LOAD: u8 = 40;

/// Context marking an error with the exit status `main` should use.
#[derive(Debug)]
pub struct Exit {
    code: u8,
    what: String,
}

impl Exit {
    pub fn attach(what: impl Into<String>) -> Self {
        Exit { code: EXIT_ATTACH, what: what.into() }
    }

    pub fn load(what: impl Into<String>) -> Self {
        Exit { code: EXIT_LOAD, what: what.into() }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// The exit status for `err`: the innermost-added `Exit` context wins, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Exit>().map_or(1, |e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};

    #[test]
    fn code_survives_outer_context() {
        let err = Err::<(), _>(anyhow!("EOPNOTSUPP"))
            .context(Exit::attach("attaching"))
            .context("loading xdp_pass on veth0")
            .unwrap_err();
        assert_eq!(exit_code(&err), EXIT_ATTACH);
        assert_eq!(format!("{err:#}"), "loading xdp_pass on veth0: attaching: EOPNOTSUPP");
    }

    #[test]
    fn plain_errors_exit_1() {
        assert_eq!(exit_code(&anyhow!("no such interface")), 1);
    }
}
