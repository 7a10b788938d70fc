//! Text that may hold what a registry sent (platform names, config
//! fields, tar entry names, error bodies), made fit to print: a hostile
//! registry must not be able to move the cursor, retitle the terminal or
//! fill the screen through a message of ours.

/// The longest run without whitespace that is printed whole; longer ones
/// are cut, saying how much was left out.
pub const MAX_WORD: usize = 512;

/// `s` with every control character (C0, DEL, C1 — ESC included) shown as
/// an escape (`\x1b`, `\n`) and every run of more than [`MAX_WORD`]
/// characters without whitespace cut short.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = 0usize;
    let mut skipped = 0usize;
    let flush = |out: &mut String, skipped: &mut usize| {
        if *skipped > 0 {
            out.push_str(&format!("…({} more)", *skipped));
            *skipped = 0;
        }
    };
    for c in s.chars() {
        if c == ' ' || c == '\t' {
            flush(&mut out, &mut skipped);
            word = 0;
            out.push(c);
            continue;
        }
        word += 1;
        if word > MAX_WORD {
            skipped += 1;
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    flush(&mut out, &mut skipped);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_long_words_cut() {
        assert_eq!(
            terminal_safe("linux/\x1b[2J\x1b]0;pwned\x07amd64\nhint: x"),
            "linux/\\x1b[2J\\x1b]0;pwned\\x07amd64\\nhint: x"
        );
        assert_eq!(terminal_safe("\u{9b}31m"), "\\x9b31m");
        let long = "a".repeat(10_000);
        let shown = terminal_safe(&format!("name {long} end"));
        assert!(shown.starts_with("name aaa"));
        assert!(shown.ends_with("…(9488 more) end"), "{}", &shown[500..]);
        assert_eq!(
            terminal_safe("plain, ordinary: text"),
            "plain, ordinary: text"
        );
    }
}
