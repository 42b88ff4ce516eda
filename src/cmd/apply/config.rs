//! apply's file: the wanted attachments as `[[attach]]` tables, read with
//! serde (unknown keys refused) and checked whole before anything is done.
//! Every error is one line, `FILE:LINE:COL: what`, pointing at the value.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Error, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::cmd::load::Program;
use crate::net::mac::Mac;
use crate::obj::object::{self, Opened, Source};
use crate::xdp::attach::{Mode, ModeRequest};
use crate::xdp::bpffs;
use crate::xdp::private;

/// Where `apply` looks without -f.
pub const DEFAULT_FILE: &str = "/etc/xdpctl/xdpctl.toml";
/// A config of a few thousand interfaces fits many times over.
const MAX_FILE: u64 = 1 << 20;
/// What `{dev}` in pin_dir becomes: the interface's name.
const DEV: &str = "{dev}";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    attach: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    dev: Spanned<String>,
    program: Option<Spanned<String>>,
    obj: Option<Spanned<String>>,
    mode: Option<Spanned<ModeName>>,
    reuse_maps: Option<bool>,
    pin_dir: Option<Spanned<String>>,
    redirect: Option<RawRedirect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedirect {
    redirect_dev: Spanned<String>,
    src_mac: Option<Spanned<String>>,
    dest_mac: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeName {
    Native,
    Skb,
    Auto,
}

/// One wanted attachment, checked.
#[derive(Debug, Clone)]
pub struct Entry {
    /// An interface name, or a pattern with `*` and `?`.
    pub dev: String,
    pub program: Program,
    /// The name the program is loaded under (what the record keeps).
    pub prog_name: String,
    /// The object, as the record names it.
    pub object: String,
    /// None: auto, the kernel picks.
    pub mode: Option<Mode>,
    pub reuse_maps: bool,
    /// Given pin directory, `{dev}` not yet replaced.
    pub pin_dir: Option<String>,
    pub redirect: Option<Redirect>,
}

/// What `xdpctl redirect` would set on the entry's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub redirect_dev: String,
    pub src_mac: Option<Mac>,
    pub dest_mac: Option<Mac>,
}

impl Entry {
    /// Whether `name` is one of this entry's interfaces.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.dev.as_bytes(), name.as_bytes())
    }

    /// Whether `dev` names one interface rather than a pattern.
    pub fn is_exact(&self) -> bool {
        !self.dev.contains(['*', '?'])
    }

    /// Where the program's maps are pinned on interface `name`.
    pub fn pin_dir_of(&self, name: &str) -> Result<PathBuf> {
        match &self.pin_dir {
            Some(dir) => Ok(PathBuf::from(dir.replace(DEV, &bpffs::dir_name(name)))),
            None => bpffs::default_pin_dir(name),
        }
    }
}

/// The file's wanted attachments, in its order (the first entry matching an
/// interface is the one applied to it).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl Config {
    /// Read and check `path`; it must be root's (see `private::read_trusted`).
    pub fn read(path: &Path) -> Result<Config> {
        let text = private::read_trusted(path, MAX_FILE)?;
        let text = String::from_utf8(text).map_err(|e| {
            anyhow!("{}: not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to())
        })?;
        Config::parse(path, &text)
    }

    /// Check `text`, the contents of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let at = |span: Option<Range<usize>>, what: &str| -> Error {
            let (line, col) = span.map_or((1, 1), |s| line_col(text, s.start));
            anyhow!("{}:{line}:{col}: {what}", path.display())
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim_end()))?;
        let mut entries = Vec::new();
        for raw in raw.attach {
            entries.push(entry(raw).map_err(|(span, what)| at(Some(span), &what))?);
        }
        Ok(Config { path: path.to_path_buf(), entries })
    }
}

type Problem = (Range<usize>, String);

fn entry(raw: RawEntry) -> std::result::Result<Entry, Problem> {
    let dev_span = raw.dev.span();
    let dev = raw.dev.into_inner();
    check_pattern(&dev).map_err(|what| (dev_span.clone(), what))?;
    let (program, prog_name) = match (&raw.obj, &raw.program) {
        (_, None) => {
            return Err((dev_span, "no program: give `program` (and `obj` for your own)".into()))
        }
        (None, Some(name)) => {
            let program = Program::find(None, Some(name.get_ref()))
                .map_err(|e| (name.span(), format!("{e:#}")))?;
            let prog_name = program.name.clone().unwrap_or_default();
            (program, prog_name)
        }
        (Some(obj), Some(name)) => {
            let path = Path::new(obj.get_ref());
            if !path.is_absolute() {
                return Err((obj.span(), format!("obj {path:?}: give an absolute path")));
            }
            let program = Program::find(Some(path), Some(name.get_ref()))
                .map_err(|e| (obj.span(), format!("{e:#}")))?;
            let prog_name = check_object(&program.source, name.get_ref())
                .map_err(|e| (name.span(), format!("{e:#}")))?;
            (program, prog_name)
        }
    };
    let mode = raw.mode.map(|m| match m.into_inner() {
        ModeName::Native => Some(Mode::Native),
        ModeName::Skb => Some(Mode::Skb),
        ModeName::Auto => None,
    });
    let pin_dir = match raw.pin_dir {
        Some(dir) => {
            let span = dir.span();
            let text = dir.into_inner();
            let pattern = dev.contains(['*', '?']);
            if pattern && !text.contains(DEV) {
                let what = format!(
                    "pin_dir {text:?} would be shared by every interface {dev:?} matches; put \
                     {DEV} in it (/sys/fs/bpf/xdpctl/{DEV})"
                );
                return Err((span, what));
            }
            // The directory with a name in place of {dev}, checked as load checks it.
            bpffs::check_pin_dir(&PathBuf::from(text.replace(DEV, "x")))
                .map_err(|e| (span.clone(), format!("pin_dir: {e:#}")))?;
            Some(text)
        }
        None => None,
    };
    let redirect = match raw.redirect {
        Some(r) => {
            let name_span = r.redirect_dev.span();
            let redirect_dev = r.redirect_dev.into_inner();
            if redirect_dev.is_empty() || redirect_dev.contains(['*', '?', '/']) {
                return Err((
                    name_span,
                    format!("redirect_dev {redirect_dev:?}: name one interface"),
                ));
            }
            let mac = |m: Option<Spanned<String>>| -> std::result::Result<Option<Mac>, Problem> {
                m.map(|m| m.get_ref().parse::<Mac>().map_err(|e| (m.span(), format!("{e:#}"))))
                    .transpose()
            };
            Some(Redirect { redirect_dev, src_mac: mac(r.src_mac)?, dest_mac: mac(r.dest_mac)? })
        }
        None => None,
    };
    Ok(Entry {
        dev,
        object: program.source.describe(),
        program,
        prog_name,
        mode: mode.unwrap_or(ModeRequest::DEFAULT.fixed()),
        reuse_maps: raw.reuse_maps.unwrap_or(true),
        pin_dir,
        redirect,
    })
}

/// Open the object file and find `name` in it, as a load would: the name
/// it is loaded under. Nothing is loaded.
fn check_object(source: &Source, name: &str) -> Result<String> {
    let mut storage = MaybeUninit::uninit();
    let mut opened = Opened::open(source, &mut storage, Path::new(bpffs::ROOT))?;
    object::select(opened.object_mut(), name, &source.describe())
}

/// An interface name or pattern: what a name may hold, `*` and `?` aside.
fn check_pattern(dev: &str) -> std::result::Result<(), String> {
    let bad = dev.is_empty()
        || dev.len() > 15
        || dev.contains(['/', ':'])
        || dev.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!(
            "dev {dev:?}: an interface name (1-15 characters, no '/', ':' or spaces) or a \
             pattern with * and ?"
        ));
    }
    Ok(())
}

/// Whether `name` matches `pattern`: `*` any run of bytes, `?` one byte.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative, backtracking to the last `*` only: linear in practice.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/x.toml"), text)
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn patterns_match_names() {
        for (p, n, want) in [
            ("lab*", "lab0", true),
            ("lab*", "lab", true),
            ("lab*", "xlab", false),
            ("veth?", "veth1", true),
            ("veth?", "veth12", false),
            ("*0", "eth0", true),
            ("a*b*c", "aXbYbc", true),
            ("a*b*c", "aXbYbd", false),
            ("eth0", "eth0", true),
            ("eth0", "eth01", false),
        ] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }

    #[test]
    fn a_good_file_gives_entries_with_defaults() {
        let c = parse(
            "[[attach]]\ndev = \"eth0\"\nprogram = \"xdp_drop_func\"\n\n[[attach]]\n\
             dev = \"veth*\"\nprogram = \"xdp_redirect_map\"\nmode = \"auto\"\nreuse_maps = false\n\
             [attach.redirect]\nredirect_dev = \"eth1\"\n\
             dest_mac = \"02:00:00:00:00:01\"\n",
        )
        .unwrap();
        let [a, b] = c.entries.as_slice() else { panic!("two entries") };
        assert_eq!((a.prog_name.as_str(), a.mode, a.reuse_maps), ("xdp_drop", None, true));
        assert!(a.is_exact() && !b.is_exact());
        assert_eq!(b.mode, None);
        assert!(!b.reuse_maps);
        // (A given pin_dir is checked on bpffs, which a unit test may lack.)
        let mut b = b.clone();
        b.pin_dir = Some("/sys/fs/bpf/xdpctl/{dev}".into());
        assert_eq!(b.pin_dir_of("veth3").unwrap(), Path::new("/sys/fs/bpf/xdpctl/veth3"));
        // bpffs refuses '.' in a name: a VLAN device's directory has ':'.
        assert_eq!(b.pin_dir_of("eth0.100").unwrap(), Path::new("/sys/fs/bpf/xdpctl/eth0:100"));
        assert_eq!(a.pin_dir_of("eth0").unwrap(), bpffs::default_pin_dir("eth0").unwrap());
        let r = b.redirect.as_ref().unwrap();
        assert_eq!(r.redirect_dev, "eth1");
        assert_eq!(r.src_mac, None);
        assert!(parse("").unwrap().entries.is_empty());
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = err("[[attach]]\ndev = \"eth0\"\nprogram = \"xdp_pass\"\ncolour = 1\n");
        assert!(e.starts_with("/etc/x.toml:4:1: "), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = err("[[attach]]\ndev = \"eth0\"\n  program = \"xdp_nope\"\n");
        assert!(e.starts_with("/etc/x.toml:3:13: "), "{e}");
        assert!(e.contains("xdp_nope") && e.contains("xdp_pass"), "{e}");
        let e = err("[[attach]]\ndev = \"eth0\"\nprogram = \"xdp_pass\"\nmode = \"hw\"\n");
        assert!(e.starts_with("/etc/x.toml:4:8: "), "{e}");
        let e = err("[[attach]]\ndev = \"eth0\nprogram = 1\n");
        assert!(e.starts_with("/etc/x.toml:2:"), "{e}");
        let e = err(
            "[[attach]]\ndev = \"veth*\"\nprogram = \"xdp_pass\"\npin_dir = \"/sys/fs/bpf/x\"\n",
        );
        assert!(e.starts_with("/etc/x.toml:4:11: ") && e.contains("{dev}"), "{e}");
        let e = err("[[attach]]\ndev = \"a/b\"\nprogram = \"xdp_pass\"\n");
        assert!(e.starts_with("/etc/x.toml:2:7: "), "{e}");
        let e = err("[[attach]]\ndev = \"eth0\"\n");
        assert!(e.contains("no program"), "{e}");
        let e = err("[[attach]]\ndev = \"e\"\nprogram = \"p\"\nobj = \"rel.o\"\n");
        assert!(e.starts_with("/etc/x.toml:4:7: ") && e.contains("absolute"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
