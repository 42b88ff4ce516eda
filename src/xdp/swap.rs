//! Putting a program on an interface in place of whatever is there, with a way
//! back: a same-mode swap is atomic, a program in the other of native/skb (which
//! cannot coexist) is taken off first, and until `commit` a drop puts
//! everything back as it was.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use libbpf_rs::Program;

use crate::net::iface::Iface;
use crate::xdp::attach::{self, Attachment, Mode};

pub struct Swap<'a> {
    dev: &'a Iface,
    prog: OwnedFd,
    prog_id: u32,
    mode: Option<Mode>,
    /// Programs taken off the interface, each with an fd that keeps it alive.
    taken_off: Vec<(Attachment, OwnedFd)>,
    committed: bool,
}

impl<'a> Swap<'a> {
    /// Attach `prog` to `dev` in `mode` (None: the kernel picks), replacing
    /// `current`. `auto` keeps the mode of a program it replaces.
    pub fn attach(
        dev: &'a Iface,
        prog: OwnedFd,
        prog_id: u32,
        mode: Option<Mode>,
        current: &[Attachment],
    ) -> Result<Swap<'a>> {
        let mode = mode.or_else(|| current.first().map(|a| a.mode));
        let mut swap = Swap { dev, prog, prog_id, mode, taken_off: Vec::new(), committed: false };
        let mut same = None;
        for att in current {
            let fd = Program::fd_from_id(att.prog_id)
                .with_context(|| format!("opening attached program id {}", att.prog_id))?;
            if Some(att.mode) == mode {
                same = Some((*att, fd));
            } else if att.mode != Mode::Hw && mode != Some(Mode::Hw) {
                // Offloaded programs coexist with either other mode; these do not.
                attach::detach(dev, *att)?;
                swap.taken_off.push((*att, fd));
            }
        }
        attach::attach(dev, swap.prog.as_fd(), mode, same.as_ref().map(|(_, fd)| fd.as_fd()))?;
        swap.taken_off.extend(same);
        Ok(swap)
    }

    /// The mode asked of the kernel; None when it chose.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// What the new program replaced.
    pub fn replaced(&self) -> impl Iterator<Item = &Attachment> {
        self.taken_off.iter().map(|(a, _)| a)
    }

    /// Keep the new program; the drop then changes nothing.
    pub fn commit(mut self) {
        self.committed = true;
    }

    fn restore(&mut self) -> Result<()> {
        let new = attach::query(self.dev.index)?.into_iter().find(|a| a.prog_id == self.prog_id);
        if let Some(new) = new {
            match self.taken_off.iter().position(|(a, _)| a.mode == new.mode) {
                // Swap back atomically: no moment without a program.
                Some(i) => {
                    let (old, fd) = self.taken_off.remove(i);
                    attach::attach(self.dev, fd.as_fd(), Some(old.mode), Some(self.prog.as_fd()))?;
                }
                None => attach::detach(self.dev, new)?,
            }
        }
        for (old, fd) in &self.taken_off {
            attach::attach(self.dev, fd.as_fd(), Some(old.mode), None)?;
        }
        Ok(())
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Err(e) = self.restore() {
            let msg = format!("could not restore the programs of {}: {e:#}", self.dev.name);
            crate::output::say(&msg);
        }
    }
}
