//! `top`'s model: what one refresh read (a `Snapshot`), turned into rows
//! of rates against the refresh before, then filtered and sorted. No I/O
//! and no terminal here, so all of it is tested on made-up snapshots.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::escape;
use crate::obj::statsmap::Reading;
use crate::sampler::{per_second, si, Rate};
use crate::xdp::attach::Mode;

/// Who attached a program: xdpctl (its record names it) or another tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    Xdpctl,
    Other,
}

/// One attached program as read at one refresh.
pub struct Prog {
    pub id: u32,
    pub name: String,
    pub mode: Mode,
    pub owner: Owner,
    /// The kernel's BPF stats: runs and nanoseconds while they were on.
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Its stats map's id and a reading of it, where xdpctl pinned one.
    pub actions: Option<(u32, Reading)>,
}

/// One interface as read at one refresh.
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// The device's own counters (packets, bytes), from IFLA_STATS64.
    pub rx: Option<(u64, u64)>,
    pub tx: Option<(u64, u64)>,
    /// Empty: no XDP program runs there.
    pub progs: Vec<Prog>,
}

/// Everything one refresh read.
pub struct Snapshot {
    pub at: Instant,
    pub ifaces: Vec<Iface>,
}

/// One row: an interface and one of its programs (or none), with rates
/// over the period since the refresh before (None: nothing to compare
/// with yet, or the kernel did not tell).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub ifname: String,
    pub ifindex: u32,
    pub prog: Option<String>,
    pub prog_id: Option<u32>,
    pub mode: Option<Mode>,
    pub owner: Option<Owner>,
    /// The interface's own receive and transmit rates.
    pub rx: Option<Rate>,
    pub tx: Option<Rate>,
    /// Per XDP action, from the pinned stats map (xdpctl's programs only).
    #[serde(serialize_with = "as_map")]
    pub actions: Option<Vec<(String, Rate)>>,
    /// Nanoseconds per run of the program, over the period.
    pub ns_per_run: Option<f64>,
    /// Share of one CPU the program took over the period, in percent.
    pub cpu_percent: Option<f64>,
}

/// Actions as a JSON object by name, in key order.
fn as_map<S: serde::Serializer>(
    actions: &Option<Vec<(String, Rate)>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match actions {
        Some(actions) => s.collect_map(actions.iter().map(|(name, rate)| (name, rate))),
        None => s.serialize_none(),
    }
}

/// Rows from consecutive snapshots.
#[derive(Default)]
pub struct Model {
    prev: Option<Snapshot>,
}

impl Model {
    /// The rows of `now`, with rates since the snapshot before; `now` is
    /// kept for the next call.
    pub fn update(&mut self, now: Snapshot) -> Vec<Row> {
        let rows = rows(self.prev.as_ref(), &now);
        self.prev = Some(now);
        rows
    }
}

/// The rows of `now`; rates where `prev` has the same interface, program
/// and stats map.
pub fn rows(prev: Option<&Snapshot>, now: &Snapshot) -> Vec<Row> {
    let period = prev.map_or(0.0, |p| now.at.duration_since(p.at).as_secs_f64());
    let before: HashMap<u32, &Iface> =
        prev.map(|p| p.ifaces.iter().map(|i| (i.index, i)).collect()).unwrap_or_default();
    let mut rows = Vec::new();
    for iface in &now.ifaces {
        let old = before.get(&iface.index).copied().filter(|_| period > 0.0);
        let rate = |pick: fn(&Iface) -> Option<(u64, u64)>| {
            Some(Rate::new(pick(old?)?, pick(iface)?, period))
        };
        let base = Row {
            ifname: iface.name.clone(),
            ifindex: iface.index,
            prog: None,
            prog_id: None,
            mode: None,
            owner: None,
            rx: rate(|i| i.rx),
            tx: rate(|i| i.tx),
            actions: None,
            ns_per_run: None,
            cpu_percent: None,
        };
        if iface.progs.is_empty() {
            rows.push(base);
            continue;
        }
        for prog in &iface.progs {
            let was = old.and_then(|o| o.progs.iter().find(|p| p.id == prog.id));
            let (ns_per_run, cpu_percent) = was.map_or((None, None), |w| run_time(w, prog, period));
            rows.push(Row {
                prog: Some(prog.name.clone()),
                prog_id: Some(prog.id),
                mode: Some(prog.mode),
                owner: Some(prog.owner),
                actions: was.and_then(|w| action_rates(w, prog)),
                ns_per_run,
                cpu_percent,
                ..base.clone()
            });
        }
    }
    rows
}

/// Nanoseconds per run and percent of a CPU between two readings of one
/// program; None where it did not run (or the stats are off).
fn run_time(was: &Prog, now: &Prog, period: f64) -> (Option<f64>, Option<f64>) {
    let runs = now.run_cnt.saturating_sub(was.run_cnt);
    let ns = now.run_time_ns.saturating_sub(was.run_time_ns);
    if runs == 0 || period <= 0.0 {
        return (None, None);
    }
    (Some(ns as f64 / runs as f64), Some(per_second(0, ns, period) / 1e9 * 100.0))
}

/// Each action's rate between two readings of the same stats map.
fn action_rates(was: &Prog, now: &Prog) -> Option<Vec<(String, Rate)>> {
    let ((old_id, old), (id, cur)) = (was.actions.as_ref()?, now.actions.as_ref()?);
    (old_id == id).then(|| cur.rates_since(old).1)
}

/// The columns, in screen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Iface,
    Prog,
    Id,
    Mode,
    Owner,
    RxPps,
    RxBps,
    TxPps,
    TxBps,
    NsPerRun,
    Cpu,
    Actions,
}

impl Column {
    pub const ALL: [Column; 12] = [
        Column::Iface,
        Column::Prog,
        Column::Id,
        Column::Mode,
        Column::Owner,
        Column::RxPps,
        Column::RxBps,
        Column::TxPps,
        Column::TxBps,
        Column::NsPerRun,
        Column::Cpu,
        Column::Actions,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Iface => "IFACE",
            Column::Prog => "PROGRAM",
            Column::Id => "ID",
            Column::Mode => "MODE",
            Column::Owner => "OWNER",
            Column::RxPps => "RX pps",
            Column::RxBps => "RX bit/s",
            Column::TxPps => "TX pps",
            Column::TxBps => "TX bit/s",
            Column::NsPerRun => "NS/PKT",
            Column::Cpu => "CPU%",
            Column::Actions => "XDP ACTIONS pps/bit/s",
        }
    }

    /// Characters the column takes (the last one takes what is left).
    pub fn width(self) -> usize {
        match self {
            Column::Iface => 15,
            Column::Prog => 16,
            Column::Id => 6,
            Column::Mode => 6,
            Column::Owner => 6,
            Column::RxPps | Column::TxPps => 7,
            Column::RxBps | Column::TxBps => 8,
            Column::NsPerRun => 6,
            Column::Cpu => 5,
            Column::Actions => 21,
        }
    }

    /// Numbers line up on the right.
    pub fn numeric(self) -> bool {
        !matches!(
            self,
            Column::Iface | Column::Prog | Column::Mode | Column::Owner | Column::Actions
        )
    }

    /// The column `step` places to the right (left if negative), wrapping.
    pub fn next(self, step: isize) -> Column {
        let n = Column::ALL.len() as isize;
        let at = Column::ALL.iter().position(|c| *c == self).unwrap_or(0) as isize;
        Column::ALL[(at + step).rem_euclid(n) as usize]
    }
}

/// How the rows are shown: which, and in what order.
#[derive(Debug, Clone)]
pub struct Order {
    pub sort: Column,
    /// Against the column's natural order (names A-Z, numbers largest first).
    pub reverse: bool,
    /// Only rows whose interface or program name contains this.
    pub filter: String,
    /// Also interfaces that run no XDP program.
    pub all: bool,
}

impl Order {
    /// The rows to show, in order.
    pub fn apply<'a>(&self, rows: &'a [Row]) -> Vec<&'a Row> {
        let mut shown: Vec<&Row> = rows
            .iter()
            .filter(|r| self.all || r.prog_id.is_some())
            .filter(|r| {
                self.filter.is_empty()
                    || r.ifname.contains(&self.filter)
                    || r.prog.as_deref().is_some_and(|p| p.contains(&self.filter))
            })
            .collect();
        shown.sort_by(|a, b| {
            let by = compare(self.sort, a, b);
            let by = if self.reverse { by.reverse() } else { by };
            by.then_with(|| a.ifname.cmp(&b.ifname)).then_with(|| a.prog_id.cmp(&b.prog_id))
        });
        shown
    }
}

/// `a` before `b` in `column`'s natural order; rows without a value last.
fn compare(column: Column, a: &Row, b: &Row) -> Ordering {
    let text = |r: &Row| -> Option<String> {
        match column {
            Column::Iface => Some(r.ifname.clone()),
            Column::Prog => r.prog.clone(),
            Column::Mode => r.mode.map(|m| m.to_string()),
            Column::Owner => r.owner.map(|o| format!("{o:?}")),
            _ => None,
        }
    };
    if !column.numeric() && column != Column::Actions {
        return match (text(a), text(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
    }
    // Largest first; a missing value below every number.
    let (x, y) = (number(column, a), number(column, b));
    y.unwrap_or(-1.0).total_cmp(&x.unwrap_or(-1.0))
}

fn number(column: Column, r: &Row) -> Option<f64> {
    match column {
        Column::Id => r.prog_id.map(f64::from),
        Column::RxPps => r.rx.map(|r| r.pps),
        Column::RxBps => r.rx.map(|r| r.bps),
        Column::TxPps => r.tx.map(|r| r.pps),
        Column::TxBps => r.tx.map(|r| r.bps),
        Column::NsPerRun => r.ns_per_run,
        Column::Cpu => r.cpu_percent,
        Column::Actions => r.actions.as_ref().map(|a| a.iter().map(|(_, r)| r.pps).sum()),
        _ => None,
    }
}

/// The text of each column of `row`, names escaped for a terminal.
pub fn cells(row: &Row) -> Vec<String> {
    let dash = || "-".to_string();
    let pps = |r: Option<Rate>| r.map_or_else(dash, |r| si(r.pps));
    let bps = |r: Option<Rate>| r.map_or_else(dash, |r| si(r.bps));
    Column::ALL
        .iter()
        .map(|c| match c {
            Column::Iface => escape::text(&row.ifname).into_owned(),
            Column::Prog => row.prog.as_deref().map_or_else(dash, |p| escape::text(p).into_owned()),
            Column::Id => row.prog_id.map_or_else(dash, |id| id.to_string()),
            Column::Mode => row.mode.map_or_else(dash, |m| m.to_string()),
            Column::Owner => row.owner.map_or_else(dash, |o| match o {
                Owner::Xdpctl => "xdpctl".to_string(),
                Owner::Other => "other".to_string(),
            }),
            Column::RxPps => pps(row.rx),
            Column::RxBps => bps(row.rx),
            Column::TxPps => pps(row.tx),
            Column::TxBps => bps(row.tx),
            Column::NsPerRun => row.ns_per_run.map_or_else(dash, |ns| format!("{ns:.0}")),
            Column::Cpu => row.cpu_percent.map_or_else(dash, |p| format!("{p:.1}")),
            Column::Actions => actions_text(row.actions.as_deref()),
        })
        .collect()
}

/// The actions that saw traffic: `DROP 100K/51.2M` (pps/bit/s), or `0`.
fn actions_text(actions: Option<&[(String, Rate)]>) -> String {
    let Some(actions) = actions else { return "-".to_string() };
    let busy: Vec<String> = actions
        .iter()
        .filter(|(_, r)| r.pps > 0.0)
        .map(|(name, r)| {
            let name = name.strip_prefix("XDP_").unwrap_or(name);
            format!("{name} {}/{}", si(r.pps), si(r.bps))
        })
        .collect();
    if busy.is_empty() {
        "0".to_string()
    } else {
        busy.join("  ")
    }
}

/// One line of fixed-width columns (the plain output and the header).
pub fn line(cells: &[String]) -> String {
    let mut text = String::new();
    for (c, cell) in Column::ALL.iter().zip(cells) {
        let w = c.width();
        let cell = match (c.numeric(), *c == Column::Actions) {
            (_, true) => cell.clone(),
            (true, _) => format!("{cell:>w$} "),
            (false, _) => format!("{cell:<w$} "),
        };
        text.push_str(&cell);
    }
    text.trim_end().to_string()
}

/// The header line of the plain output.
pub fn header() -> String {
    line(&Column::ALL.iter().map(|c| c.title().to_string()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj::skel::DataRec;
    use std::time::Duration;

    fn prog(id: u32, runs: u64, ns: u64, drops: u64, at: Instant) -> Prog {
        let mut recs = vec![DataRec::default(); 5];
        recs[1] = DataRec { rx_packets: drops, rx_bytes: drops * 64 };
        Prog {
            id,
            name: "xdp_drop".into(),
            mode: Mode::Native,
            owner: Owner::Xdpctl,
            run_cnt: runs,
            run_time_ns: ns,
            actions: Some((7, Reading { at, recs })),
        }
    }

    fn iface(name: &str, index: u32, rx: u64, progs: Vec<Prog>) -> Iface {
        Iface { name: name.into(), index, rx: Some((rx, rx * 64)), tx: Some((0, 0)), progs }
    }

    fn two(start: Instant) -> (Snapshot, Snapshot) {
        let a = Snapshot {
            at: start,
            ifaces: vec![
                iface("veth1", 3, 1000, vec![prog(40, 1000, 50_000, 1000, start)]),
                iface("lo", 1, 5, vec![]),
            ],
        };
        let later = start + Duration::from_secs(2);
        let b = Snapshot {
            at: later,
            ifaces: vec![
                iface("veth1", 3, 21_000, vec![prog(40, 21_000, 1_050_000, 21_000, later)]),
                iface("lo", 1, 9, vec![]),
            ],
        };
        (a, b)
    }

    #[test]
    fn rates_come_from_the_second_snapshot_on() {
        let (a, b) = two(Instant::now());
        let mut model = Model::default();
        let first = model.update(a);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|r| r.rx.is_none() && r.ns_per_run.is_none()), "{first:?}");
        let rows = model.update(b);
        let veth = &rows[0];
        assert_eq!((veth.ifname.as_str(), veth.prog_id), ("veth1", Some(40)));
        assert_eq!(veth.rx.map(|r| r.pps), Some(10_000.0));
        assert_eq!(veth.rx.map(|r| r.bps), Some(10_000.0 * 64.0 * 8.0));
        // 1 ms of run time in 20000 runs over 2 s: 50 ns each, 0.05 % of a CPU.
        assert_eq!(veth.ns_per_run, Some(50.0));
        assert!((veth.cpu_percent.unwrap() - 0.05).abs() < 1e-9);
        let actions = veth.actions.as_ref().unwrap();
        assert_eq!(actions[1].0, "XDP_DROP");
        assert_eq!(actions[1].1.pps, 10_000.0);
        let cells = cells(veth);
        assert_eq!(cells[Column::ALL.len() - 1], "DROP 10.0K/5.12M");
        assert_eq!(cells[9], "50");
        assert_eq!(rows[1].prog_id, None);
        assert_eq!(rows[1].rx.map(|r| r.pps), Some(2.0));
    }

    #[test]
    fn a_reloaded_program_or_map_starts_without_rates() {
        let (a, mut b) = two(Instant::now());
        b.ifaces[0].progs[0].id = 41;
        let r = rows(Some(&a), &b);
        assert_eq!((r[0].ns_per_run, &r[0].actions), (None, &None));
        assert!(r[0].rx.is_some(), "the interface's own counters go on");
        let (a, mut b) = two(Instant::now());
        b.ifaces[0].progs[0].actions.as_mut().unwrap().0 = 8;
        assert_eq!(rows(Some(&a), &b)[0].actions, None);
        // Stats off: no runs counted, nothing claimed.
        let (mut a, b) = two(Instant::now());
        a.ifaces[0].progs[0].run_cnt = 21_000;
        assert_eq!(rows(Some(&a), &b)[0].cpu_percent, None);
    }

    #[test]
    fn filter_sort_and_all() {
        let (a, b) = two(Instant::now());
        let mut rows = rows(Some(&a), &b);
        let mut busy = rows[0].clone();
        busy.ifname = "eth0".into();
        busy.ifindex = 2;
        busy.cpu_percent = Some(3.0);
        rows.push(busy);
        let mut order =
            Order { sort: Column::Cpu, reverse: false, filter: String::new(), all: false };
        let names = |o: &Order| o.apply(&rows).iter().map(|r| r.ifname.clone()).collect::<Vec<_>>();
        assert_eq!(names(&order), ["eth0", "veth1"], "busiest first, no program-less lo");
        order.reverse = true;
        assert_eq!(names(&order), ["veth1", "eth0"]);
        order = Order { sort: Column::Iface, all: true, ..order };
        assert_eq!(names(&order), ["veth1", "lo", "eth0"], "Z-A reversed");
        order.reverse = false;
        order.filter = "eth".into();
        assert_eq!(names(&order), ["eth0", "veth1"]);
        order.filter = "xdp_dr".into();
        assert_eq!(names(&order), ["eth0", "veth1"], "by program name too");
        order.filter = "nothing".into();
        assert!(names(&order).is_empty());
        assert_eq!(Column::Iface.next(-1), Column::Actions);
        assert_eq!(Column::Actions.next(1), Column::Iface);
    }

    #[test]
    fn lines_line_up_and_names_are_escaped() {
        let (a, mut b) = two(Instant::now());
        b.ifaces[0].name = "x\u{1b}[2J".into();
        let rows = rows(Some(&a), &b);
        let text = line(&cells(&rows[0]));
        assert!(text.starts_with("x\\x1b[2J "), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        let head = header();
        assert!(head.starts_with("IFACE") && head.ends_with("XDP ACTIONS pps/bit/s"), "{head}");
        // The actions start where their title does.
        let plain = line(&cells(&rows[1]));
        let at = head.find("XDP ACTIONS").unwrap();
        assert_eq!(plain.len(), at + 1, "lo has `-` there: {plain:?}");
    }
}
