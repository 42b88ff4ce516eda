//! `xdpctl list`: the programs xdpctl ships and what each does.

use anyhow::Result;

use crate::obj::catalog::{PROGRAMS, TRUNCATED_RULE};
use crate::output::Output;

/// The width the text is wrapped to: a terminal's default.
const COLUMNS: usize = 80;

pub fn run(out: Output) -> Result<()> {
    if out.json {
        return out.json(&PROGRAMS);
    }
    let name_width = PROGRAMS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let lesson_width = PROGRAMS.iter().map(|p| p.lesson.len()).max().unwrap_or(0);
    // The description wraps under itself, beside the name and lesson.
    let indent = name_width + 2 + lesson_width + 2;
    let mut text = String::new();
    for p in PROGRAMS {
        let tutorial = match p.aliases {
            [] => String::new(),
            names => format!(" (tutorial: {})", names.join(", ")),
        };
        let lines = wrap(&format!("{}{tutorial}", p.summary), COLUMNS.saturating_sub(indent));
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                text.push_str(&format!("{:<name_width$}  {:<lesson_width$}  ", p.name, p.lesson));
            } else {
                text.push_str(&" ".repeat(indent));
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push('\n');
    for line in wrap(TRUNCATED_RULE, COLUMNS) {
        text.push_str(&line);
        text.push('\n');
    }
    out.print(&text)
}

/// `text` in lines of at most `width` characters, broken between words (a
/// word longer than that gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_between_words_within_the_width() {
        assert_eq!(wrap("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(wrap("a verylongword b", 4), ["a", "verylongword", "b"]);
        assert_eq!(wrap("", 10), [""]);
    }
}
