//! One module per subcommand; each owns its arguments and its output.

pub mod list;
pub mod load;
pub mod stats;
pub mod status;
pub mod unload;

use libbpf_rs::ProgramHandle;

/// A program's kernel name by id, for messages ("?" if it vanished meanwhile).
pub(crate) fn prog_name(id: u32) -> String {
    ProgramHandle::from_prog_id(id)
        .map(|h| h.name().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".to_string())
}
