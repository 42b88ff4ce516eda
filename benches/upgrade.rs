//! Upgrades under traffic (issue 19, item 5): while `xdpctl trafficgen`
//! sends 64-byte frames at a fixed rate into a lab, 50 `xdpctl load --force
//! --reuse-maps` swaps alternate xdp_pass and xdp_drop; frames the interface
//! received that PASS + DROP did not count (or counted twice), per 1000
//! swaps, goal 0; native and skb. Then the same swaps changing mode (xdp_pass
//! native, xdp_drop skb), which the kernel cannot do atomically: the frames
//! that meet no program, and the time that makes at the rate reached.
//! Interleaved rounds, each case in a lab of its own. Run by `make bench`
//! (needs root).

mod common;

use anyhow::Result;
use common::lab::Lab;
use common::swaps::{self, Plan, Tally, Via};
use common::{median, Goal, Row};

const SWAPS: usize = 50;
const RATE: u64 = 100_000;
/// Runs of each case, interleaved; each in a lab of its own.
const ROUNDS: usize = 5;

const CASES: [(&str, (&str, &str)); 3] = [
    ("native", ("--native-mode", "--native-mode")),
    ("skb", ("--skb-mode", "--skb-mode")),
    ("native ↔ skb", ("--native-mode", "--skb-mode")),
];

fn main() -> Result<()> {
    let _tool_dirs = common::ToolDirs::snapshot();
    let mut runs: [Vec<Tally>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for ((_, modes), tallies) in CASES.iter().zip(runs.iter_mut()) {
            let lab = Lab::new();
            let plan =
                Plan { swaps: SWAPS, rate: RATE, modes: *modes, reuse_maps: true, via: Via::Load };
            tallies.push(swaps::under_traffic(&lab, &plan)?);
        }
    }

    let swaps = (SWAPS * ROUNDS) as f64;
    let per_1000 = |n: f64| n * 1000.0 / swaps;
    let sum = |ts: &[Tally], f: &dyn Fn(&Tally) -> i64| ts.iter().map(f).sum::<i64>();
    let swap_ms =
        |ts: &[Tally]| median(ts.iter().flat_map(|t| t.swap_secs.iter().map(|s| s * 1e3)));
    // Frames arrive at a steady rate, so those no program saw measure the
    // time without one. Per swap, each round's.
    let gap_frames = |t: &Tally| t.uncounted() as f64 / SWAPS as f64;
    let gap_ms = |t: &Tally| gap_frames(t) / t.pps * 1e3;
    let each = |ts: &[Tally], f: &dyn Fn(&Tally) -> f64, digits: usize| {
        ts.iter().map(|t| format!("{:.digits$}", f(t))).collect::<Vec<_>>().join(", ")
    };
    println!(
        "## Upgrades under traffic ({SWAPS} `load --force --reuse-maps` swaps, xdp_pass ↔ \
         xdp_drop, while trafficgen sends 64-byte frames at {} kpps; {ROUNDS} interleaved \
         rounds)\n",
        RATE / 1000
    );
    println!(
        "| modes | frames received | PASS + DROP | not counted (< 0: twice) | per 1000 swaps | \
         ms per swap (median) | frames per swap with no program, each round | ms per swap \
         with no program, each round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for ((name, _), ts) in CASES.iter().zip(&runs) {
        let uncounted = sum(ts, &|t| t.uncounted());
        println!(
            "| {name} | {} | {} | {uncounted} | {:.0} | {:.1} | {} | {} |",
            sum(ts, &|t| t.received as i64),
            sum(ts, &|t| t.counted() as i64),
            per_1000(uncounted as f64),
            swap_ms(ts),
            each(ts, &gap_frames, 0),
            each(ts, &gap_ms, 3),
        );
    }
    println!(
        "\nA swap in the same mode replaces the program atomically (XDP_FLAGS_REPLACE) and \
         the new program counts on in the pinned map. The kernel holds one of native and skb \
         at a time, so a mode change detaches, then attaches: frames arriving in between \
         meet no program (received, counted by none; GRO keeps the veth taking them). Time \
         with no program: those frames over the rate reached.\n"
    );

    let mut rows = Vec::new();
    for ((mode, _), ts) in CASES.iter().zip(&runs).take(2) {
        let lost = sum(ts, &|t| t.uncounted().abs());
        rows.push(
            Row::new(
                "upgrade_lost",
                format!(
                    "{SWAPS} swaps xdp_pass ↔ xdp_drop, {mode}, {} kpps, {ROUNDS} rounds",
                    RATE / 1000
                ),
                "frames / 1000 swaps",
            )
            .figures(
                per_1000(lost as f64),
                "frames received",
                per_1000(sum(ts, &|t| t.received as i64) as f64),
            )
            .goal(Goal::AtMost(0.0), ROUNDS),
        );
    }
    let change = &runs[2];
    rows.push(
        Row::new(
            "upgrade_mode_gap_ms",
            format!(
                "{SWAPS} swaps native ↔ skb, {} kpps: {:.0} frames per swap meet no program \
                 (median of {ROUNDS} rounds)",
                RATE / 1000,
                median(change.iter().map(gap_frames))
            ),
            "ms",
        )
        .figures(median(change.iter().map(gap_ms)), "the whole load --force", swap_ms(change))
        .goal(Goal::None, ROUNDS),
    );
    common::record("upgrade", &rows)
}
