//! What apply would do: a pure function from the wanted attachments and one
//! snapshot of every interface to a list of steps, so `--diff` shows
//! exactly what a run does and tests need no kernel.

use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

use crate::cmd::apply::config::Entry;
use crate::xdp::attach::{Attachment, Mode};

/// xdpctl's program on an interface, as its record tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    pub prog_id: u32,
    pub mode: Mode,
    /// None: a load killed before its record; nothing known of it.
    pub prog_name: Option<String>,
    pub object: Option<String>,
    pub pin_dir: Option<PathBuf>,
}

/// One interface as the snapshot saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub index: u32,
    pub attached: Vec<Attachment>,
    /// The attached program xdpctl loaded, if one is.
    pub ours: Option<Ours>,
    /// Kernel name of an attached program xdpctl did not load.
    pub foreign: Option<(u32, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Nothing attached: load the entry's program.
    Load,
    /// xdpctl's program differs from the entry: swap in the entry's.
    Replace { prog_id: u32, why: String },
    /// xdpctl's program is the entry's: leave it.
    Keep { prog_id: u32 },
    /// xdpctl's program on an interface no entry matches (with --prune).
    Unload { prog_id: u32, prog_name: String },
    /// Another tool's program where an entry wants xdpctl's: left alone.
    Conflict { prog_id: u32, prog_name: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub dev: String,
    pub ifindex: u32,
    /// The index of the entry applied (none for unload).
    #[serde(skip)]
    pub entry: Option<usize>,
    #[serde(flatten)]
    pub action: Action,
    /// The program wanted (none for unload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

impl Step {
    /// Whether the step changes the interface.
    pub fn changes(&self) -> bool {
        matches!(self.action, Action::Load | Action::Replace { .. } | Action::Unload { .. })
    }
}

/// The plan: steps in interface order, and exact names in the file that
/// no interface has (yet).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub absent: Vec<String>,
}

/// What makes the machine match `entries`: per interface the first entry
/// matching its name; with `prune`, xdpctl's programs no entry wants go.
pub fn plan(entries: &[Entry], seen: &[Seen], prune: bool) -> Result<Plan> {
    let mut out = Plan::default();
    for s in seen {
        let step = |entry, action, program| Step {
            dev: s.name.clone(),
            ifindex: s.index,
            entry,
            action,
            program,
        };
        let Some((i, e)) = entries.iter().enumerate().find(|(_, e)| e.matches(&s.name)) else {
            if let (true, Some(o)) = (prune, &s.ours) {
                let prog_name = o.prog_name.clone().unwrap_or_else(|| "?".into());
                out.steps.push(step(None, Action::Unload { prog_id: o.prog_id, prog_name }, None));
            }
            continue;
        };
        let program = Some(e.prog_name.clone());
        let action = match (&s.ours, &s.foreign) {
            (_, Some((prog_id, name))) => {
                Action::Conflict { prog_id: *prog_id, prog_name: name.clone() }
            }
            (Some(o), None) => match differs(e, &s.name, o)? {
                Some(why) => Action::Replace { prog_id: o.prog_id, why },
                None => Action::Keep { prog_id: o.prog_id },
            },
            (None, None) => Action::Load,
        };
        out.steps.push(step(Some(i), action, program));
    }
    for e in entries.iter().filter(|e| e.is_exact()) {
        if !seen.iter().any(|s| s.name == e.dev) && !out.absent.contains(&e.dev) {
            out.absent.push(e.dev.clone());
        }
    }
    Ok(out)
}

/// How xdpctl's program `o` on interface `name` differs from entry `e`.
fn differs(e: &Entry, name: &str, o: &Ours) -> Result<Option<String>> {
    let Some(have) = &o.prog_name else {
        return Ok(Some("a load was killed before it finished here".into()));
    };
    if *have != e.prog_name {
        return Ok(Some(format!("it runs {have}, not {}", e.prog_name)));
    }
    if o.object.as_deref() != Some(e.object.as_str()) {
        let from = o.object.as_deref().unwrap_or("an unrecorded object");
        return Ok(Some(format!("its program comes from {from}, not {}", e.object)));
    }
    if let Some(mode) = e.mode.filter(|m| *m != o.mode) {
        return Ok(Some(format!("it runs in {} mode, not {mode}", o.mode)));
    }
    let dir = e.pin_dir_of(name)?;
    if o.pin_dir.as_ref() != Some(&dir) {
        return Ok(Some(format!("its maps are pinned elsewhere, not in {}", dir.display())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::apply::config::Config;
    use std::path::Path;

    fn entries(text: &str) -> Vec<Entry> {
        Config::parse(Path::new("/x.toml"), text).unwrap().entries
    }

    fn seen(name: &str, index: u32, ours: Option<(&str, Mode)>) -> Seen {
        let ours = ours.map(|(prog, mode)| Ours {
            prog_id: 100 + index,
            mode,
            prog_name: Some(prog.into()),
            object: Some("xdp_prog_kern".into()),
            pin_dir: Some(crate::xdp::bpffs::default_pin_dir(name).unwrap()),
        });
        let attached =
            ours.iter().map(|o| Attachment { prog_id: o.prog_id, mode: o.mode }).collect();
        Seen { name: name.into(), index, attached, ours, foreign: None }
    }

    fn actions(p: &Plan) -> Vec<(&str, &Action)> {
        p.steps.iter().map(|s| (s.dev.as_str(), &s.action)).collect()
    }

    const FILE: &str = "[[attach]]\ndev = \"eth0\"\nprogram = \"xdp_drop\"\nmode = \"native\"\n\
        [[attach]]\ndev = \"lab*\"\nprogram = \"xdp_pass\"\nmode = \"auto\"\n\
        [[attach]]\ndev = \"gone0\"\nprogram = \"xdp_pass\"\n";

    #[test]
    fn loads_replaces_keeps_and_leaves_the_unlisted() {
        let e = entries(FILE);
        let state = [
            seen("eth0", 2, Some(("xdp_pass", Mode::Native))),
            seen("lab1", 3, None),
            seen("lab2", 4, Some(("xdp_pass", Mode::Skb))),
            seen("other", 5, Some(("xdp_pass", Mode::Native))),
        ];
        let p = plan(&e, &state, false).unwrap();
        assert_eq!(
            actions(&p),
            [
                (
                    "eth0",
                    &Action::Replace { prog_id: 102, why: "it runs xdp_pass, not xdp_drop".into() }
                ),
                ("lab1", &Action::Load),
                ("lab2", &Action::Keep { prog_id: 104 }),
            ]
        );
        assert_eq!(p.absent, ["gone0"]);
        assert_eq!(p.steps[1].entry, Some(1));
        assert!(!p.steps[2].changes());
    }

    #[test]
    fn prune_unloads_only_xdpctl_programs_no_entry_wants() {
        let e = entries(FILE);
        let mut foreign = seen("other2", 6, None);
        foreign.foreign = Some((9, "xdp_dispatcher".into()));
        foreign.attached = vec![Attachment { prog_id: 9, mode: Mode::Native }];
        let state = [seen("other", 5, Some(("xdp_pass", Mode::Native))), foreign];
        let p = plan(&e, &state, true).unwrap();
        assert_eq!(
            actions(&p),
            [("other", &Action::Unload { prog_id: 105, prog_name: "xdp_pass".into() })]
        );
        assert!(plan(&e, &state, false).unwrap().steps.is_empty());
    }

    #[test]
    fn another_tools_program_is_a_conflict_and_mode_or_pins_make_a_difference() {
        let e = entries(FILE);
        let mut taken = seen("eth0", 2, None);
        taken.foreign = Some((9, "theirs".into()));
        let p = plan(&e, &[taken], false).unwrap();
        assert_eq!(
            actions(&p),
            [("eth0", &Action::Conflict { prog_id: 9, prog_name: "theirs".into() })]
        );

        let skb = seen("eth0", 2, Some(("xdp_drop", Mode::Skb)));
        let p = plan(&e, std::slice::from_ref(&skb), false).unwrap();
        assert!(matches!(&p.steps[0].action, Action::Replace { why, .. } if why.contains("skb")));
        // Without a mode (auto, the default) the program's mode is its own.
        let auto = entries("[[attach]]\ndev = \"eth0\"\nprogram = \"xdp_drop\"\n");
        let p = plan(&auto, &[skb], false).unwrap();
        assert_eq!(actions(&p), [("eth0", &Action::Keep { prog_id: 102 })]);

        let mut moved = seen("eth0", 2, Some(("xdp_drop", Mode::Native)));
        moved.ours.as_mut().unwrap().pin_dir = Some("/sys/fs/bpf/elsewhere".into());
        let p = plan(&e, &[moved], false).unwrap();
        assert!(
            matches!(&p.steps[0].action, Action::Replace { why, .. } if why.contains("pinned"))
        );

        let same = seen("eth0", 2, Some(("xdp_drop", Mode::Native)));
        assert_eq!(
            actions(&plan(&e, &[same], false).unwrap()),
            [("eth0", &Action::Keep { prog_id: 102 })]
        );
    }
}
