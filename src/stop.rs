//! Ctrl-C and SIGTERM for commands that run until stopped: they end the
//! current wait, so the command leaves through its normal cleanup.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

pub struct Stop(Receiver<()>);

impl Stop {
    /// Install the handler; one per process.
    pub fn install() -> Result<Stop> {
        let (tx, rx) = mpsc::channel();
        ctrlc::set_handler(move || {
            // The receiver is gone only when we are already exiting.
            let _ = tx.send(());
        })
        .context("installing the Ctrl-C handler")?;
        Ok(Stop(rx))
    }

    /// Whether a stop request has come, without waiting.
    pub fn requested(&self) -> bool {
        self.0.try_recv().is_ok()
    }

    /// Wait `period`; false if a stop request came first.
    pub fn sleep(&self, period: Duration) -> bool {
        matches!(self.0.recv_timeout(period), Err(RecvTimeoutError::Timeout))
    }
}

/// Hold off SIGINT, SIGTERM, SIGHUP and SIGQUIT for the rest of the process,
/// from the moment a command starts changing the system: the change then
/// completes, or undoes itself on error, and the process exits with the
/// status that says which; a signal that came meanwhile is dropped at exit.
/// Before this point a signal ends the process with nothing changed.
pub fn defer_signals() -> Result<()> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        set.add(sig);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("blocking signals")
}
