//! Ctrl-C and SIGTERM for commands that run until stopped: they end the
//! current wait, so the command leaves through its normal cleanup.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context, Result};

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
