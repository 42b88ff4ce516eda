//! `xdpctl manpages DIR` (hidden): man pages for xdpctl and each subcommand,
//! from the clap tree. `make build` runs it into the target dir and `make
//! install` installs the pages; a build script could not, as the tree lives in
//! the crate that the build script builds.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;

use crate::escape;
use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write the pages into (must exist)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `root`: xdpctl's whole command line, which main owns.
pub fn run(args: &Args, root: Command, out: Output) -> Result<()> {
    let mut cmd = root.disable_help_subcommand(true);
    cmd.build();
    let written = write_pages(&cmd, &args.dir)?;
    out.info(format!("wrote {written} man pages into {}", escape::path(&args.dir)));
    Ok(())
}

/// The page of `cmd` and of each visible subcommand below it; how many.
fn write_pages(cmd: &Command, dir: &Path) -> Result<usize> {
    let mut written = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).with_context(|| format!("rendering {}", man.get_filename()))?;
    // Never through a symlink planted at the page's name; world-readable
    // whatever the umask, as man pages are.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("creating {}", escape::path(&path)))?;
    // `mode` only applies to a new file, less the umask: set it outright.
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} readable", escape::path(&path)))?;
    file.write_all(&page).with_context(|| format!("writing {}", escape::path(&path)))?;
    Ok(written + 1)
}
