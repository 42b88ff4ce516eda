//! BPF objects and what is in them: the skeletons, objects built elsewhere, the
//! catalog of shipped programs, typed map access, libbpf's log, tracefs.

pub mod catalog;
pub mod listing;
pub mod logging;
pub mod maps;
pub mod object;
pub mod proginfo;
pub mod skel;
pub mod statsmap;
pub mod tracefs;
pub mod verdicts;
