//! Untrusted names rendered for a terminal. Interface names may hold any byte
//! but '/', ':', whitespace and NUL, task names (comm) any byte at all, and
//! any user can make both: printed as they are, an escape sequence in one
//! clears the screen or forges output. Every name xdpctl prints in text goes
//! through [`bytes`] or [`text`]; JSON needs none of this (serde escapes).

use std::borrow::Cow;
use std::fmt::Write;
use std::path::Path;

/// Characters that must not reach a terminal as they are: C0 controls, DEL,
/// C1 controls, and the bidirectional formatting characters, which reorder
/// what follows them on the line.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = match u32::from(c) {
        n @ 0..=0x7f => write!(out, "\\x{n:02x}"),
        n => write!(out, "\\u{{{n:x}}}"),
    };
}

/// `raw` for a terminal, unambiguously: printable UTF-8 as it is, a
/// backslash as `\\`, unsafe characters as `\x1b` or `\u{85}`, and bytes that
/// are not UTF-8 as `\xff`.
pub fn bytes(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if is_unsafe(c) => push_escaped(&mut out, c),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A name already held as a `String`, as [`bytes`] renders it.
pub fn text(name: &str) -> Cow<'_, str> {
    if name.chars().any(|c| c == '\\' || is_unsafe(c)) {
        Cow::Owned(bytes(name.as_bytes()))
    } else {
        Cow::Borrowed(name)
    }
}

/// A path as [`bytes`] renders it (pin directories carry interface names).
pub fn path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    bytes(path.as_os_str().as_bytes())
}

/// Last line of defence for whole messages on their way out: unsafe
/// characters but line breaks escaped, backslashes left alone (names in the
/// message were rendered by [`bytes`] already, and are not escaped twice).
pub fn controls(message: &str) -> Cow<'_, str> {
    if !message.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if c != '\n' && is_unsafe(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON lines with the characters serde leaves as they are (DEL, C1 and
/// bidirectional controls; it escapes C0 itself) escaped the JSON way. They
/// can only occur inside strings, where `\u0085` means the same; the line
/// breaks between documents stay.
pub fn json(encoded: &str) -> Cow<'_, str> {
    let unsafe_here = |c: char| c != '\n' && is_unsafe(c);
    if !encoded.chars().any(unsafe_here) {
        return Cow::Borrowed(encoded);
    }
    let mut out = String::with_capacity(encoded.len() + 8);
    for c in encoded.chars() {
        if unsafe_here(c) {
            // All of them are in the BMP: one \u escape each.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_stay_as_they_are() {
        for name in ["veth0", "eth0.100", "wlp2s0", "xn1a2bx3", "é-ñ", "日本"] {
            assert_eq!(bytes(name.as_bytes()), name);
            assert!(matches!(text(name), Cow::Borrowed(_)), "{name}");
        }
    }

    #[test]
    fn every_control_character_becomes_visible() {
        assert_eq!(bytes(b"x\x1b[2J"), "x\\x1b[2J");
        assert_eq!(bytes(b"a\nb\tc\rd\0"), "a\\x0ab\\x09c\\x0dd\\x00");
        assert_eq!(bytes(b"\x7f"), "\\x7f");
        // C1 controls: CSI (U+009B) acts like ESC [ on many terminals.
        assert_eq!(bytes("a\u{9b}2J\u{85}".as_bytes()), "a\\u{9b}2J\\u{85}");
        assert_eq!(bytes("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        for b in (0u8..0x20).chain([0x7f]) {
            let shown = bytes(&[b'n', b, b'n']);
            assert_eq!(shown, format!("n\\x{b:02x}n"));
        }
        for c in '\u{80}'..='\u{9f}' {
            let shown = bytes(c.to_string().as_bytes());
            assert_eq!(shown, format!("\\u{{{:x}}}", u32::from(c)));
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_bytes() {
        assert_eq!(bytes(b"a\xffb\xc3"), "a\\xffb\\xc3");
        // A valid character after a broken one survives.
        assert_eq!(bytes(b"\xe2\x82\xc3\xa9"), "\\xe2\\x82é");
    }

    #[test]
    fn a_backslash_is_escaped_so_the_rendering_is_unambiguous() {
        // The name `x\x1b` (six printable bytes) differs from `x` + ESC.
        assert_eq!(bytes(b"x\\x1b"), "x\\\\x1b");
        assert_ne!(bytes(b"x\\x1b"), bytes(b"x\x1b"));
        assert_eq!(text("a\\b"), "a\\\\b");
    }

    #[test]
    fn output_has_no_control_character_left() {
        let all: Vec<u8> = (0..=255).collect();
        let shown = bytes(&all);
        assert!(shown.chars().all(|c| !is_unsafe(c)), "{shown}");
        assert!(shown.is_ascii(), "every non-UTF-8 byte escaped: {shown}");
    }

    #[test]
    fn messages_keep_their_lines_and_backslashes() {
        assert_eq!(controls("a\nb\\x1b"), "a\nb\\x1b");
        assert_eq!(controls("dev x\x1b[2J: gone\n"), "dev x\\x1b[2J: gone\n");
        assert_eq!(controls("\t\u{9b}"), "\\x09\\u{9b}");
    }

    #[test]
    fn json_stays_json_and_carries_the_same_string() {
        let name = "x\u{1b}[2J\u{7f}\u{85}\u{202e}\\";
        let mut encoded = serde_json::to_string(&serde_json::json!({ "ifname": name })).unwrap();
        encoded.push('\n');
        let safe = json(&encoded);
        assert!(safe.ends_with("}\n"), "{safe}");
        assert!(!safe.trim_end().chars().any(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["ifname"], name);
    }

    #[test]
    fn paths_are_rendered_like_names() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/sys/fs/bpf/x\x1b[2J\xff"));
        assert_eq!(path(p), "/sys/fs/bpf/x\\x1b[2J\\xff");
    }
}
