//! `xdpctl top`: every interface's XDP programs, live, like top: program,
//! mode, owner, the interface's own rx/tx rates, per-action rates from the
//! stats maps xdpctl pinned, and each program's nanoseconds per packet and
//! share of a CPU from the kernel's BPF stats, which are on only while it
//! runs. On a terminal a full-screen view (keys: `keys::HELP`); elsewhere
//! plain lines, one per program per interval (NDJSON with --json).
//!
//! collect.rs reads, model.rs turns readings into sorted rows, keys.rs and
//! view.rs are the terminal's; this file is the loop.

mod collect;
pub mod keys;
pub mod model;
pub mod view;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::crossterm::event;

use crate::obj::proginfo::{self, BpfStats};
use crate::output::Output;
use crate::sampler::{self, Sample, Tick, Ticker};
use crate::stop::Stop;
use crate::xdp::bpffs;
use collect::Collector;
use keys::{Action, Ui};
use model::{cells, header, line, Column, Model, Order, Row};
use view::{Input, Keyboard, Screen, Screenful};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub sampling: sampler::Args,
    /// Also interfaces without an XDP program, for their rx/tx rates
    /// (`a` toggles)
    #[arg(short, long)]
    pub all: bool,
    /// Only interfaces or programs whose name contains TEXT (`/` changes it)
    #[arg(short, long, value_name = "TEXT")]
    pub filter: Option<String>,
}

/// How often the live view looks for keys and stop requests between refreshes.
const KEY_CHECK: Duration = Duration::from_millis(100);
/// How long crossterm may take to make a key of the bytes that came.
const KEY_PARSE: Duration = Duration::from_millis(10);

pub fn run(args: &Args, out: Output) -> Result<()> {
    bpffs::ensure_mounted()?;
    // Held to the end of the command: dropping it turns the stats off.
    let stats = proginfo::enable_stats()?;
    let stats_note = match stats {
        BpfStats::AlreadyOn => "on (kernel.bpf_stats_enabled)",
        BpfStats::Ours(_) => "on while top runs",
    };
    let stop = Stop::install()?;
    let mut collector = Collector::default();
    let mut model = Model::default();
    let first = model.update(collector.read()?);
    let order = Order {
        sort: Column::Cpu,
        reverse: false,
        filter: args.filter.clone().unwrap_or_default(),
        all: args.all,
    };
    let result = if out.live() {
        let mut ui = Ui { order, paused: false, editing: None };
        live(args, &stop, &mut collector, &mut model, first, &mut ui, stats_note)
    } else {
        plain(args, out, &stop, &mut collector, &mut model, &order)
    };
    drop(stats);
    result
}

/// The full-screen view until `q`, Ctrl-C, SIGTERM or `--count` refreshes.
fn live(
    args: &Args,
    stop: &Stop,
    collector: &mut Collector,
    model: &mut Model,
    mut rows: Vec<Row>,
    ui: &mut Ui,
    stats: &str,
) -> Result<()> {
    let keyboard = Keyboard::open()?;
    let mut screen = Screen::enter()?;
    let mut ticker = Ticker::new(Duration::from_secs_f64(args.sampling.interval));
    let (mut refreshes, mut dirty) = (0u64, true);
    loop {
        if dirty {
            let shown = ui.order.apply(&rows);
            let what = Screenful { rows: &shown, ui, interval: args.sampling.interval, stats };
            screen.draw(&what)?;
            dirty = false;
        }
        if stop.requested() {
            return Ok(());
        }
        let wait = ticker.left(Instant::now()).min(KEY_CHECK);
        match keyboard.wait(wait)? {
            // No one to show it to: leave, and the stats go off.
            Input::HungUp => return Ok(()),
            Input::Keys => {
                // A key's bytes have come; crossterm parses them (a part of
                // an escape sequence waits for the rest).
                let mut within = KEY_PARSE;
                while event::poll(within).context("reading a key")? {
                    match ui.event(&event::read().context("reading a key")?) {
                        Action::Quit => return Ok(()),
                        Action::Redraw => dirty = true,
                        Action::Nothing => {}
                    }
                    within = Duration::ZERO;
                }
            }
            Input::Nothing => {}
        }
        if ticker.tick(Instant::now()).is_some() {
            let fresh = model.update(collector.read()?);
            // Paused: the screen stays; the readings go on, so rates
            // after resuming are over one interval.
            if !ui.paused {
                rows = fresh;
                dirty = true;
            }
            refreshes += 1;
            if args.sampling.done(refreshes) {
                return Ok(());
            }
        }
    }
}

/// Plain lines: a header, then a line per program (per interface with
/// --all) each interval; NDJSON with --json.
fn plain(
    args: &Args,
    out: Output,
    stop: &Stop,
    collector: &mut Collector,
    model: &mut Model,
    order: &Order,
) -> Result<()> {
    let mut first = true;
    args.sampling.run(stop, |period| {
        let rows = model.update(collector.read()?);
        let shown = order.apply(&rows);
        if out.json {
            for row in shown {
                out.json(&Sample::new(period, row))?;
            }
            return Ok(Tick::Printed);
        }
        let mut text = if first { String::new() } else { "\n".to_string() };
        first = false;
        text.push_str(&header());
        text.push('\n');
        for row in shown {
            text.push_str(&line(&cells(row)));
            text.push('\n');
        }
        out.print(&text)?;
        Ok(Tick::Printed)
    })
}
