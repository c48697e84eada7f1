//! The `pattern`s of the Proxmox schema: Perl regexes as PVE writes them, translated to the
//! `regex` crate's syntax, anchored as PVE anchors them (`m/^$pattern$/`), compiled on first use
//! and cached.
//!
//! Translation covers what the official schema uses: Perl's stringified `qr//` groups
//! (`(?^:...)`, `(?^i:...)`) become `(?:...)`/`(?i:...)`, `\0` becomes `\x00`, and the
//! `{,n}` quantifier (Perl 5.34+: "at most n") becomes `{0,n}`. Perl's `$` also matches before a
//! final newline, so the anchored form accepts one trailing `\n` as PVE does.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::{Regex, RegexBuilder};

/// Compiled-size limit: `(?i:[\w\s...]{0,256})` (Unicode classes repeated 256 times) needs
/// more than the `regex` crate's default 10 MiB.
const REGEX_SIZE_LIMIT: usize = 128 << 20;

/// Compiled patterns by their Perl source; a pattern that does not compile is cached as its error.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    compiled: Mutex<HashMap<String, Result<Regex, String>>>,
}

impl Patterns {
    /// Whether the whole of `value` matches the Perl `pattern` (PVE's `$value =~ m/^$pattern$/`).
    /// `Err` when the pattern cannot be translated to a Rust regex (a gap of this validator, not
    /// of the request).
    pub(crate) fn full_match(&self, pattern: &str, value: &str) -> Result<bool, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = compiled.entry(pattern.to_owned()).or_insert_with(|| compile(pattern));
        match entry {
            Ok(re) => Ok(re.is_match(value)),
            Err(e) => Err(format!("pattern '{pattern}' cannot be checked: {e}")),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&anchored(pattern)).size_limit(REGEX_SIZE_LIMIT).build().map_err(|e| e.to_string())
}

/// `^(?:pattern)$` with Perl's `$` (end, or before a final newline).
pub(crate) fn anchored(perl: &str) -> String {
    format!(r"\A(?:{})\n?\z", translate(perl))
}

/// Perl regex syntax used by the schema, rewritten for the `regex` crate.
pub(crate) fn translate(perl: &str) -> String {
    let chars: Vec<char> = perl.chars().collect();
    let mut out = String::with_capacity(perl.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some('0') => out.push_str(r"\x00"),
                    Some(&n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal member, not the end of the class.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'^') => {
                // `(?^flags:` resets to default flags, then sets `flags`.
                let mut j = i + 3;
                let mut flags = String::new();
                while let Some(&f) = chars.get(j) {
                    if f == ':' || f == ')' {
                        break;
                    }
                    flags.push(f);
                    j += 1;
                }
                out.push_str("(?");
                out.push_str(&flags);
                i = j;
                continue;
            }
            '{' if !in_class && chars.get(i + 1) == Some(&',') => out.push_str("{0"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_groups_become_rust_groups() {
        assert_eq!(translate("(?^:a(?^i:b))"), "(?:a(?i:b))");
        assert_eq!(translate(r"(?:\w+)(?:\0\w+)*"), r"(?:\w+)(?:\x00\w+)*");
        assert_eq!(translate(r"[A-Z\s]{,16}"), r"[A-Z\s]{0,16}");
        assert_eq!(translate(r"[{,]"), r"[{,]");
    }

    #[test]
    fn anchored_like_pve() {
        let p = Patterns::default();
        assert_eq!(p.full_match("[-_.\\w\\d]+", "vmbr0"), Ok(true));
        assert_eq!(p.full_match("[-_.\\w\\d]+", "bad bridge"), Ok(false));
        assert_eq!(p.full_match("a|b", "ab"), Ok(false));
        assert_eq!(p.full_match("(?^i:abc)", "ABC"), Ok(true));
        // Perl's `$` before a final newline.
        assert_eq!(p.full_match("abc", "abc\n"), Ok(true));
        assert_eq!(p.full_match("abc", "abc\n\n"), Ok(false));
        assert!(p.full_match("(", "x").is_err());
    }
}
