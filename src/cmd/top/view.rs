//! `top` on a terminal: the rows drawn full-screen with ratatui, and the
//! terminal given back as it was on every way out: return, error, panic
//! (a panic hook restores it before the message is printed), and SIGTERM
//! (the loop ends and `Screen` is dropped).

use std::fs::File;
use std::io::{self, IsTerminal, Stdout};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};
use ratatui::{Frame, Terminal};

use crate::cmd::top::keys::{Ui, HELP};
use crate::cmd::top::model::{cells, Column, Row};
use crate::escape;

/// What one screenful shows.
pub struct Screenful<'a> {
    pub rows: &'a [&'a Row],
    pub ui: &'a Ui,
    /// Seconds between refreshes.
    pub interval: f64,
    /// Where the BPF stats come from, for the title line.
    pub stats: &'a str,
}

/// The terminal in raw mode on the alternate screen, given back when dropped.
pub struct Screen {
    term: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    pub fn enter() -> Result<Screen> {
        restore_on_panic();
        enable_raw_mode().context("switching the terminal to raw mode")?;
        // From here on every way out puts the terminal back.
        let screen = (|| {
            execute!(io::stdout(), EnterAlternateScreen, Hide)
                .context("switching to the alternate screen")?;
            let term = Terminal::new(CrosstermBackend::new(io::stdout()))
                .context("setting up the terminal")?;
            Ok(Screen { term })
        })();
        if screen.is_err() {
            restore();
        }
        screen
    }

    pub fn draw(&mut self, what: &Screenful<'_>) -> Result<()> {
        draw_on(&mut self.term, what)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// The terminal keys come from, as crossterm reads it: stdin if that is
/// one, else /dev/tty. The loop waits here rather than in crossterm,
/// which spins forever on a terminal that hung up (its read of 0 bytes is
/// retried); crossterm reads only what this says has come.
pub struct Keyboard {
    /// None: stdin.
    tty: Option<File>,
}

/// What waiting for a key gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Keys,
    Nothing,
    /// The terminal is gone (closed window, killed tmux, ssh dropped).
    HungUp,
}

impl Keyboard {
    pub fn open() -> Result<Keyboard> {
        if io::stdin().is_terminal() {
            return Ok(Keyboard { tty: None });
        }
        let tty = File::open("/dev/tty").context("opening /dev/tty to read keys from")?;
        Ok(Keyboard { tty: Some(tty) })
    }

    /// Wait up to `timeout` for a key.
    pub fn wait(&self, timeout: Duration) -> Result<Input> {
        let stdin = io::stdin();
        let fd = match &self.tty {
            Some(tty) => tty.as_fd(),
            None => stdin.as_fd(),
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            // A signal (SIGTERM, SIGWINCH): the loop looks at it.
            Err(Errno::EINTR) | Ok(0) => Ok(Input::Nothing),
            Err(e) => Err(e).context("waiting for a key"),
            Ok(_) => {
                let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
                match fds[0].revents() {
                    Some(r) if r.intersects(gone) => Ok(Input::HungUp),
                    _ => Ok(Input::Keys),
                }
            }
        }
    }
}

/// Back to the normal screen, cooked mode, cursor shown; best effort, and
/// harmless when the terminal is already so.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

/// A panic puts the terminal back first, so its message is readable and
/// the shell usable.
fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Draw `what` on any backend (a test's in-memory one too).
pub fn draw_on<B: Backend>(term: &mut Terminal<B>, what: &Screenful<'_>) -> Result<()> {
    term.draw(|frame| draw(frame, what)).context("drawing on the terminal")?;
    Ok(())
}

fn draw(frame: &mut Frame<'_>, what: &Screenful<'_>) {
    let [title, table, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)])
            .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(what)), title);
    let order = &what.ui.order;
    let header = Column::ALL.iter().map(|c| {
        let mut text = c.title().to_string();
        let mut style = Style::default().add_modifier(Modifier::BOLD);
        if *c == order.sort {
            // ▼: largest (or A) first.
            text.push(if order.reverse { '▲' } else { '▼' });
            style = style.add_modifier(Modifier::REVERSED);
        }
        cell(*c, text).style(style)
    });
    let rows = what
        .rows
        .iter()
        .map(|r| TableRow::new(Column::ALL.iter().zip(cells(r)).map(|(c, t)| cell(*c, t))));
    let widths = Column::ALL.iter().map(|c| match c {
        Column::Actions => Constraint::Fill(1),
        c => Constraint::Length(c.width() as u16),
    });
    let table_widget = Table::new(rows, widths).header(TableRow::new(header)).column_spacing(1);
    frame.render_widget(table_widget, table);
    if what.rows.is_empty() {
        let none = if order.filter.is_empty() {
            "no interface runs an XDP program (a: show every interface)".to_string()
        } else {
            format!("nothing matches the filter {:?} (Esc clears it)", order.filter)
        };
        let area = table.inner(ratatui::layout::Margin { horizontal: 0, vertical: 1 });
        frame.render_widget(Paragraph::new(escape::controls(&none).into_owned()), area);
    }
    let foot = match &what.ui.editing {
        Some(text) => format!("filter: {}_   Enter keeps it, Esc clears it", escape::text(text)),
        None => HELP.to_string(),
    };
    frame.render_widget(
        Paragraph::new(foot).style(Style::default().add_modifier(Modifier::REVERSED)),
        footer,
    );
}

/// A cell, numbers on the right.
fn cell(column: Column, text: String) -> Cell<'static> {
    let line = Line::from(text);
    Cell::from(if column.numeric() { line.right_aligned() } else { line })
}

fn title_line(what: &Screenful<'_>) -> String {
    let progs = what.rows.iter().filter(|r| r.prog_id.is_some()).count();
    let mut title = format!(
        "xdpctl top - {progs} XDP programs - every {:.1} s - BPF stats {}",
        what.interval, what.stats
    );
    if what.ui.paused {
        title.push_str(" - PAUSED (space resumes)");
    }
    let filter = &what.ui.order.filter;
    if !filter.is_empty() && what.ui.editing.is_none() {
        title.push_str(&format!(" - filter: {}", escape::text(filter)));
    }
    title
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::top::model::{Order, Owner};
    use crate::sampler::Rate;
    use crate::xdp::attach::Mode;
    use ratatui::backend::TestBackend;

    fn screen_text(term: &Terminal<TestBackend>) -> Vec<String> {
        let buf = term.backend().buffer();
        (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect()
    }

    #[test]
    fn a_screenful_has_title_header_rows_and_keys() {
        let rate = |pps: f64| Some(Rate { packets: 0, bytes: 0, pps, bps: pps * 512.0 });
        let row = Row {
            ifname: "veth\u{1b}7".into(),
            ifindex: 7,
            prog: Some("xdp_drop".into()),
            prog_id: Some(42),
            mode: Some(Mode::Native),
            owner: Some(Owner::Xdpctl),
            rx: rate(20_000.0),
            tx: rate(0.0),
            actions: Some(vec![("XDP_DROP".into(), rate(20_000.0).unwrap())]),
            ns_per_run: Some(31.0),
            cpu_percent: Some(0.1),
        };
        let order = Order { sort: Column::Cpu, reverse: false, filter: "ve".into(), all: false };
        let ui = Ui { order, paused: true, editing: None };
        let rows = [&row];
        let what = Screenful { rows: &rows, ui: &ui, interval: 1.0, stats: "on while top runs" };
        let mut term = Terminal::new(TestBackend::new(160, 6)).unwrap();
        draw_on(&mut term, &what).unwrap();
        let lines = screen_text(&term);
        assert!(lines[0].starts_with("xdpctl top - 1 XDP programs - every 1.0 s"), "{lines:?}");
        assert!(lines[0].contains("PAUSED") && lines[0].contains("filter: ve"), "{lines:?}");
        assert!(lines[1].starts_with("IFACE ") && lines[1].contains("CPU%▼"), "{lines:?}");
        let r = &lines[2];
        assert!(r.starts_with("veth\\x1b7 "), "escaped: {r}");
        for part in ["xdp_drop", " 42 ", "native", "xdpctl", "20.0K", " 31 ", "DROP 20.0K/10.2M"] {
            assert!(r.contains(part), "{part:?} in {r}");
        }
        assert!(lines[5].starts_with("q quit"), "{lines:?}");

        // Typing a filter shows it in the footer.
        let typing = Ui { editing: Some("xd".into()), ..ui.clone() };
        let what = Screenful { rows: &[], ui: &typing, ..what };
        draw_on(&mut term, &what).unwrap();
        let lines = screen_text(&term);
        assert!(lines[5].starts_with("filter: xd_"), "{lines:?}");
        assert!(lines[2].contains("nothing matches"), "{lines:?}");
    }
}
