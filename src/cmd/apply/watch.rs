//! `xdpctl apply --watch`: apply at start, then again whenever an interface
//! appears or changes (RTM_NEWLINK, heard on a netlink socket subscribed to
//! the link group), on SIGHUP, and when the file changes (inotify on its
//! directory: editors and config management replace files rather than
//! write them). No polling: the process sleeps in poll(2) on three fds.
//! SIGTERM and SIGINT end it with exit 0, leaving the attachments, which
//! are the wanted state.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cmd::advice;
use crate::cmd::apply::config::Config;
use crate::cmd::apply::{pass, Args, Shown};
use crate::net::netlink::LinkEvents;
use crate::output::Output;

/// How soon a failed pass is retried on link changes alone.
const RETRY: Duration = Duration::from_secs(1);

/// Why a pass runs.
#[derive(Debug, Default)]
struct Wake {
    stop: bool,
    reread: bool,
    links: bool,
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    // Signals arrive as reads of a signalfd, between passes: a pass (each
    // step transactional) is never cut short.
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        mask.add(sig);
    }
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("creating a signalfd")?;
    // Subscribed before the first pass: an interface added during it is heard.
    let links = LinkEvents::subscribe()?;
    let (dir, name) = watched(&args.file)?;
    let files = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .context("creating an inotify instance")?;
    let changes = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB;
    files
        .add_watch(dir, changes)
        .with_context(|| format!("watching {} for changes", dir.display()))?;

    // A bad file at start is an error; later, the last good one stays.
    let mut config = Config::read(&args.file)?;
    let mut failed = report(pass(&config, args, Shown::Always, out), out);
    let mut last = Instant::now();
    loop {
        let wake = wait(&signals, &links, &files, &name)?;
        if wake.stop {
            return Ok(());
        }
        // A step that fails after attaching undoes itself, which the link
        // socket hears: retry such a pass at most once a second.
        if failed && !wake.reread {
            std::thread::sleep(RETRY.saturating_sub(last.elapsed()));
        }
        if wake.reread {
            match Config::read(&args.file) {
                Ok(c) => config = c,
                Err(e) => {
                    failed = report(Err(e.context("keeping the last good file")), out);
                    continue;
                }
            }
        }
        // A pass after our own attachments hears of them too: it finds
        // nothing to do, and says nothing unless the file was reread.
        let shown = if wake.reread { Shown::Always } else { Shown::IfChanged };
        failed = report(pass(&config, args, shown, out), out);
        last = Instant::now();
    }
}

/// The directory to watch and the file's name in it.
fn watched(file: &Path) -> Result<(&Path, OsString)> {
    let name = file
        .file_name()
        .with_context(|| format!("{}: names no file", file.display()))?
        .to_os_string();
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// A failed pass is told, and watching goes on; whether it failed.
fn report(result: Result<()>, out: Output) -> bool {
    match result {
        Ok(()) => false,
        Err(e) => {
            out.error(&advice::phrase_all(e));
            true
        }
    }
}

/// Sleep until something calls for a pass, then drain every fd: a burst of
/// events (an editor's save, many veths) makes one pass.
fn wait(signals: &SignalFd, links: &LinkEvents, files: &Inotify, name: &OsString) -> Result<Wake> {
    let mut wake = Wake::default();
    while !(wake.stop || wake.reread || wake.links) {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(links.as_fd(), PollFlags::POLLIN),
            PollFd::new(files.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("waiting for events"),
        }
        while let Some(info) = signals.read_signal().context("reading a signal")? {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => wake.reread = true,
                _ => wake.stop = true,
            }
        }
        wake.links |= links.drain()?;
        loop {
            match files.read_events() {
                Ok(events) => {
                    // An overflow lost events: the file may have changed.
                    wake.reread |= events.iter().any(|e| {
                        e.name.as_ref() == Some(name)
                            || e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    });
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e).context("reading file events"),
            }
        }
    }
    Ok(wake)
}
