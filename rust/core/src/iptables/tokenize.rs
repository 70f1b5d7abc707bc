//! Splitting one iptables-restore line into words, and quoting words the way iptables-save does.
//!
//! iptables-restore's rules: words are separated by spaces or tabs; a double quote opens a quoted
//! run in which a backslash escapes the next character; the closing quote ends the word. Outside
//! quotes a backslash is an ordinary character, and single quotes are not special at all.

use std::borrow::Cow;

/// One word of a line with the 1-based column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The word after quote removal: borrowed from the line unless quotes had to be removed.
    pub text: Cow<'a, str>,
    /// 1-based character column of the word's first character in the line.
    pub column: usize,
    /// Whether any part of the word was quoted (so `"!"` is a word, not an inversion).
    pub quoted: bool,
}

impl Token<'_> {
    /// The word.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Why a line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenizeError {
    /// 1-based column of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Splits a line into words following iptables-restore's quoting rules.
#[cfg(test)]
pub(crate) fn tokenize(line: &str) -> Result<Vec<Token<'_>>, TokenizeError> {
    let mut tokens = Vec::new();
    tokenize_into(line, &mut tokens)?;
    Ok(tokens)
}

/// Word separators outside quotes.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Bytes that end an unquoted run: the separators and the quote.
const ENDS_RUN: [bool; 256] = {
    let mut table = [false; 256];
    table[b' ' as usize] = true;
    table[b'\t' as usize] = true;
    table[b'\r' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'"' as usize] = true;
    table
};

/// Eight bytes of `bytes` from `i` as a little-endian word, when there are eight.
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes.get(i..i + 8)?);
    Some(u64::from_le_bytes(word))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` below `n` (`n` ≤ 128). Bytes above a flagged byte may be
/// flagged wrongly, so only the lowest flag is exact.
fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// The end of the unquoted run starting at byte `i`: the first separator or quote, or the end.
///
/// Unquoted runs are most of a dump's bytes, so they are scanned a word at a time: a byte below
/// 0x21 (where the separators are) or a quote stops the word scan, and the byte there is then
/// checked exactly, since other control characters also sit below 0x21.
fn run_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(word) = word_at(bytes, i) {
        let flags = bytes_below(word, 0x21) | bytes_below(word ^ (ONES * u64::from(b'"')), 1);
        if flags == 0 {
            i += 8;
            continue;
        }
        // The lowest flag is exact; its byte index is its bit index / 8.
        i += (flags.trailing_zeros() / 8) as usize;
        if ENDS_RUN[usize::from(bytes[i])] {
            return i;
        }
        i += 1;
    }
    while i < bytes.len() && !ENDS_RUN[usize::from(bytes[i])] {
        i += 1;
    }
    i
}

/// The first `byte` at or after `i`, scanning a word at a time (`byte` < 0x80).
fn find_byte(bytes: &[u8], mut i: usize, byte: u8) -> Option<usize> {
    let pattern = ONES * u64::from(byte);
    while let Some(word) = word_at(bytes, i) {
        let flags = bytes_below(word ^ pattern, 1);
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes.get(i..)?.iter().position(|b| *b == byte).map(|p| i + p)
}

/// The lines of a text exactly as `text.split('\n')` gives them (a final empty line after a
/// trailing newline included), found a word at a time.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match find_byte(text.as_bytes(), from, b'\n') {
            Some(end) => {
                start = Some(end + 1);
                Some(&text[from..end])
            }
            None => {
                start = None;
                Some(&text[from..])
            }
        }
    })
}

/// Character columns of byte offsets, for offsets visited in increasing order: counting only the
/// characters since the last offset keeps a long non-ASCII line linear, and ASCII lines (nearly
/// every dump) skip the counting altogether.
struct Columns<'a> {
    line: &'a str,
    ascii: bool,
    byte: usize,
    column: usize,
}

impl<'a> Columns<'a> {
    fn new(line: &'a str) -> Self {
        Columns { line, ascii: line.is_ascii(), byte: 0, column: 1 }
    }

    /// 1-based column of the character starting at byte `at` (`at` never decreases).
    fn at(&mut self, at: usize) -> usize {
        if self.ascii {
            return at + 1;
        }
        self.column += self.line[self.byte..at].chars().count();
        self.byte = at;
        self.column
    }
}

/// Splits a line into words, appending them to `tokens` (cleared first), so that one buffer
/// serves every line of a dump. Words without quotes borrow from the line.
///
/// The special characters (`"`, `\`, spaces) are ASCII, so scanning bytes never splits a
/// UTF-8 character: every slice taken starts and ends next to one of them or at the line's ends.
pub(crate) fn tokenize_into<'a>(line: &'a str, tokens: &mut Vec<Token<'a>>) -> Result<(), TokenizeError> {
    tokens.clear();
    let bytes = line.as_bytes();
    let mut columns = Columns::new(line);
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(());
        }
        let start = i;
        i = run_end(bytes, i);
        let column = columns.at(start);
        if i == bytes.len() || bytes[i] != b'"' {
            tokens.push(Token { text: Cow::Borrowed(&line[start..i]), column, quoted: false });
            continue;
        }
        if i == start {
            // A word that is one quoted run without escapes (how iptables-save writes comments)
            // is the text between the quotes.
            if let Some(close) = plain_quoted_end(bytes, i + 1) {
                tokens.push(Token { text: Cow::Borrowed(&line[i + 1..close]), column, quoted: true });
                i = close + 1;
                continue;
            }
        }
        // A quote: the word so far, then the quoted run; the closing quote ends the word, as in
        // iptables-restore.
        let mut text = String::from(&line[start..i]);
        let quote_column = columns.at(i);
        i = read_quoted(line, i + 1, &mut text)
            .ok_or_else(|| TokenizeError { column: quote_column, message: "unterminated quoted string".into() })?;
        tokens.push(Token { text: Cow::Owned(text), column, quoted: true });
    }
}

/// The closing quote of a quoted run starting at byte `i`, when the run has no backslash.
fn plain_quoted_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let (quotes, backslashes) = (ONES * u64::from(b'"'), ONES * u64::from(b'\\'));
    while let Some(word) = word_at(bytes, i) {
        let flags = bytes_below(word ^ quotes, 1) | bytes_below(word ^ backslashes, 1);
        if flags != 0 {
            i += (flags.trailing_zeros() / 8) as usize;
            return (bytes[i] == b'"').then_some(i);
        }
        i += 8;
    }
    let end = i + bytes.get(i..)?.iter().position(|b| matches!(b, b'"' | b'\\'))?;
    (bytes[end] == b'"').then_some(end)
}

/// Appends the quoted run starting at byte `i` (just after the opening quote) to `out`, with
/// backslash escapes removed; returns the byte after the closing quote, or `None` when the line
/// ends first.
fn read_quoted(line: &str, mut i: usize, out: &mut String) -> Option<usize> {
    let bytes = line.as_bytes();
    loop {
        let run = bytes[i..].iter().position(|b| matches!(b, b'"' | b'\\'))?;
        out.push_str(&line[i..i + run]);
        i += run;
        if bytes[i] == b'"' {
            return Some(i + 1);
        }
        // A backslash escapes the next character, whatever it is.
        let escaped = line[i + 1..].chars().next()?;
        out.push(escaped);
        i += 1 + escaped.len_utf8();
    }
}

/// Characters iptables-save leaves unquoted (`xtables_save_string`).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Quotes a value as `xtables_save_string` does: bare when it only has `[A-Za-z0-9_-]` and is not
/// empty, otherwise in double quotes with `"`, `\` and `'` escaped by a backslash.
pub(crate) fn save_string(value: &str) -> String {
    if !value.is_empty() && value.chars().all(is_plain) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        tokenize(line).unwrap().into_iter().map(|t| t.text.into_owned()).collect()
    }

    #[test]
    fn splits_on_whitespace_and_keeps_columns() {
        let t = tokenize("-A  FOO\t-j ACCEPT").unwrap();
        assert_eq!(t.iter().map(|t| t.column).collect::<Vec<_>>(), vec![1, 5, 9, 12]);
        assert_eq!(words("-A  FOO\t-j ACCEPT"), vec!["-A", "FOO", "-j", "ACCEPT"]);
    }

    #[test]
    fn double_quotes_group_and_escape() {
        assert_eq!(words(r#"--comment "a b" x"#), vec!["--comment", "a b", "x"]);
        assert_eq!(words(r#"--comment "say \"hi\" \\ \'x\'""#), vec!["--comment", r#"say "hi" \ 'x'"#]);
        assert_eq!(words(r#"--comment """#), vec!["--comment", ""]);
        assert_eq!(words(r"a\\b 'c d'"), vec![r"a\\b", "'c", "d'"]);
        assert!(tokenize(r#"--comment "open"#).is_err());
    }

    #[test]
    fn word_scan_stops_at_separators_and_quotes_only() {
        // Every position of a separator or quote, with control characters and high bytes around.
        for stop in [" ", "\t", "\r", "\n", "\""] {
            for at in 0..20 {
                let text = format!(
                    "{}{stop}\u{1}\u{7f}é{}",
                    "a\u{1f}b\u{0}".repeat(at).chars().take(at).collect::<String>(),
                    "x".repeat(9)
                );
                let bytes = text.as_bytes();
                let expected = bytes.iter().position(|b| ENDS_RUN[usize::from(*b)]).unwrap();
                assert_eq!(run_end(bytes, 0), expected, "{text:?}");
            }
        }
        assert_eq!(run_end(b"abcdefghijklmnop", 0), 16);
        assert_eq!(run_end(b"abc", 0), 3);
        assert_eq!(run_end(b"abcdefghij k", 3), 10);
    }

    #[test]
    fn lines_split_like_the_standard_library() {
        let long = format!("{}\n{}é\n\n{}", "a".repeat(17), "b".repeat(8), "c".repeat(9));
        for text in ["", "\n", "a", "a\n", "\n\na", "abcdefgh\nabcdefgh\n", "x\r\ny", long.as_str()] {
            assert_eq!(lines(text).collect::<Vec<_>>(), text.split('\n').collect::<Vec<_>>(), "{text:?}");
        }
    }

    #[test]
    fn plain_quoted_runs_end_at_the_first_quote_unless_escaped() {
        for pad in 0..20 {
            let inner = "x".repeat(pad);
            let text = format!("{inner}\" tail");
            assert_eq!(plain_quoted_end(text.as_bytes(), 0), Some(pad), "{text:?}");
            let escaped = format!("{inner}\\\" tail\"");
            assert_eq!(plain_quoted_end(escaped.as_bytes(), 0), None, "{escaped:?}");
            assert_eq!(plain_quoted_end(inner.as_bytes(), 0), None);
        }
    }

    #[test]
    fn quoted_bang_is_a_word() {
        let t = tokenize(r#"! "!""#).unwrap();
        assert!(!t[0].quoted);
        assert!(t[1].quoted);
    }

    #[test]
    fn save_string_quotes_like_iptables() {
        assert_eq!(save_string("KUBE-SVC_1"), "KUBE-SVC_1");
        assert_eq!(save_string("ns1/svc1:p80"), "\"ns1/svc1:p80\"");
        assert_eq!(save_string(""), "\"\"");
        assert_eq!(save_string("it's \"x\" \\"), r#""it\'s \"x\" \\""#);
    }

    #[test]
    fn save_string_round_trips_through_tokenize() {
        for v in ["", "a b", "x\"y", "back\\slash", "'q'", "plain", "tab\there"] {
            let line = format!("--comment {}", save_string(v));
            assert_eq!(words(&line)[1], v);
        }
    }
}
