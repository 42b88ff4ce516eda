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

/// A fact a lower module reports, in words that name no command-line flag:
/// benches and tests reach the same code and have none. The command layer,
/// which knows its flags, may phrase it ([`phrase`]): the sentence with the
/// flag and the fix is then what the message says. `K` is the module's own
/// enum of what went wrong, whose Display is the bare fact.
#[derive(Debug)]
pub struct Fact<K> {
    pub kind: K,
    said: Option<String>,
}

impl<K> Fact<K> {
    pub fn new(kind: K) -> Self {
        Fact { kind, said: None }
    }
}

impl<K: fmt::Display> fmt::Display for Fact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.said {
            Some(said) => f.write_str(said),
            None => self.kind.fmt(f),
        }
    }
}

impl<K: fmt::Debug + fmt::Display> std::error::Error for Fact<K> {}

/// `kind` as an error (or as context on one, with `.with_context`).
pub fn fact<K>(kind: K) -> Fact<K> {
    Fact::new(kind)
}

/// Let `say` phrase the `Fact<K>` somewhere in `err`'s chain, if there is
/// one not phrased yet (the innermost command's words win); the chain, and
/// with it the exit status, stays as it was.
pub fn phrase<K>(mut err: anyhow::Error, say: impl FnOnce(&K) -> String) -> anyhow::Error
where
    K: fmt::Debug + fmt::Display + Send + Sync + 'static,
{
    if let Some(fact) = err.downcast_mut::<Fact<K>>() {
        if fact.said.is_none() {
            fact.said = Some(say(&fact.kind));
        }
    }
    err
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
    fn a_phrased_fact_keeps_its_chain_and_exit_status() {
        #[derive(Debug)]
        struct Full(u32);
        impl fmt::Display for Full {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the ring holds {}", self.0)
            }
        }
        let err = Err::<(), _>(anyhow::Error::new(fact(Full(8))))
            .context(Exit::attach("attaching"))
            .context("on veth0")
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "on veth0: attaching: the ring holds 8");
        let err = phrase(err, |k: &Full| format!("--ring {}: too small", k.0));
        assert_eq!(format!("{err:#}"), "on veth0: attaching: --ring 8: too small");
        assert_eq!(exit_code(&err), EXIT_ATTACH);
    }

    #[test]
    fn plain_errors_exit_1() {
        assert_eq!(exit_code(&anyhow!("no such interface")), 1);
    }
}
