//! Walking the kernel's BPF programs and links with libbpf-rs's query
//! iterators, without mistaking a refusal for "none".
//!
//! The iterators end silently on any error: without CAP_SYS_ADMIN the kernel
//! answers EPERM to the first id asked, and a bare walk would read that as an
//! empty list (no link holds the program, no other program uses the map).

use std::io;

use anyhow::{Context, Result};
use libbpf_rs::query::{LinkInfo, LinkInfoIter, ProgInfoIter, ProgInfoQueryOptions, ProgramInfo};
use nix::errno::Errno;

/// Every live BPF link. `what` names the walk in the error.
pub fn links(what: &str) -> Result<Vec<LinkInfo>> {
    walk(LinkInfoIter::default(), what)
}

/// Every live BPF program.
pub fn programs(what: &str) -> Result<Vec<ProgramInfo>> {
    walk(ProgInfoIter::default(), what)
}

/// Every live BPF program, with the ids of the maps it uses.
pub fn programs_with_maps(what: &str) -> Result<Vec<ProgramInfo>> {
    let opts = ProgInfoQueryOptions::default().include_map_ids(true);
    walk(ProgInfoIter::with_query_opts(opts), what)
}

/// Everything `iter` yields, failing unless it ended because the kernel had
/// no further id (ENOENT, what BPF_*_GET_NEXT_ID says at the end). Objects
/// freed between listing and opening are skipped by the iterator itself.
fn walk<I: Iterator>(mut iter: I, what: &str) -> Result<Vec<I::Item>> {
    let mut out = Vec::new();
    loop {
        // The iterator reports its end only through errno.
        Errno::clear();
        match iter.next() {
            Some(item) => out.push(item),
            None => {
                return match Errno::last() {
                    Errno::ENOENT => Ok(out),
                    // A walk cut short without an errno (an info the iterator
                    // could not parse) is no answer either.
                    Errno::UnknownErrno => {
                        Err(io::Error::other("the walk ended early")).context(what.to_string())
                    }
                    errno => Err(io::Error::from(errno)).context(what.to_string()),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without CAP_SYS_ADMIN the walk fails instead of finding nothing; with
    /// it, it ends cleanly (the test runs either way).
    #[test]
    fn a_refused_walk_is_an_error_not_an_empty_list() {
        let admin = crate::caps::has(crate::caps::Cap::SysAdmin).unwrap();
        let links = links("listing BPF links");
        let progs = programs_with_maps("listing BPF programs");
        if admin {
            links.unwrap();
            progs.unwrap();
        } else {
            let err = format!("{:#}", links.unwrap_err());
            assert!(err.starts_with("listing BPF links: "), "{err}");
            assert!(progs.is_err());
        }
    }
}
