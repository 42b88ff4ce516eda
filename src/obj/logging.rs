//! Where libbpf's messages go: to stderr with `-v`; otherwise into a short buffer
//! from which a failed load shows the verifier's last lines and a failed attach
//! the kernel's own reason.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use libbpf_rs::PrintLevel;

use crate::error::Exit;
use crate::output;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static WARNINGS: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
/// Enough for the end of a verifier log without keeping all of it.
const KEEP_LINES: usize = 400;
const KERNEL_MSG: &str = "Kernel error message: ";

pub fn init(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    libbpf_rs::set_print(Some((PrintLevel::Debug, on_message)));
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

fn on_message(level: PrintLevel, msg: String) {
    if verbose() {
        output::stderr(&msg);
    }
    if !matches!(level, PrintLevel::Warn) {
        return;
    }
    // A poisoned buffer only loses diagnostics; never fail the operation for it.
    if let Ok(mut buf) = WARNINGS.lock() {
        for line in msg.lines() {
            if buf.len() == KEEP_LINES {
                buf.pop_front();
            }
            buf.push_back(line.to_string());
        }
    }
}

/// Run `load` with libbpf's warnings collected afresh. If the kernel refuses,
/// the end of the verifier log goes to stderr first (with -v all of it went
/// there already) and the error, named `what`, exits as a failed load.
pub fn load<T>(what: &str, load: impl FnOnce() -> libbpf_rs::Result<T>) -> anyhow::Result<T> {
    clear();
    load().map_err(|err| {
        let tail = verifier_tail(20);
        if !verbose() {
            for line in &tail {
                output::stderr(&format!("  {line}\n"));
            }
        }
        let msg = match (tail.is_empty(), verbose()) {
            (true, false) => format!("loading {what} failed (-v shows libbpf's log)"),
            (true, true) => format!("loading {what} failed (libbpf's log is above)"),
            (false, false) => {
                format!("the kernel refused {what}; the end of its log is above (-v shows all)")
            }
            (false, true) => format!("the kernel refused {what}; its log is above"),
        };
        anyhow::Error::new(err).context(Exit::load(msg))
    })
}

/// Forget earlier warnings, so what follows belongs to the next operation.
pub fn clear() {
    if let Ok(mut buf) = WARNINGS.lock() {
        buf.clear();
    }
}

/// The kernel's reason for the last failed netlink request, if libbpf logged one.
pub fn kernel_message() -> Option<String> {
    let buf = WARNINGS.lock().ok()?;
    buf.iter().rev().find_map(|l| l.split_once(KERNEL_MSG).map(|(_, m)| m.trim().to_string()))
}

/// The last `n` lines of the verifier log of the last failed program load, or of
/// libbpf's warnings when there was no verifier log.
pub fn verifier_tail(n: usize) -> Vec<String> {
    let Ok(buf) = WARNINGS.lock() else {
        return Vec::new();
    };
    let lines: Vec<&String> = buf.iter().collect();
    let begin = lines.iter().rposition(|l| l.contains("-- BEGIN PROG LOAD LOG --"));
    let body = match begin {
        Some(b) => {
            let end = lines[b..]
                .iter()
                .position(|l| l.contains("-- END PROG LOAD LOG --"))
                .map_or(lines.len(), |e| b + e);
            &lines[b + 1..end]
        }
        None => &lines[..],
    };
    body[body.len().saturating_sub(n)..].iter().map(|s| s.to_string()).collect()
}
