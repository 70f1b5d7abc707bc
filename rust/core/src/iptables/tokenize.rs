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
        while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'"' {
            i += 1;
        }
        let column = columns.at(start);
        if i == bytes.len() || bytes[i] != b'"' {
            tokens.push(Token { text: Cow::Borrowed(&line[start..i]), column, quoted: false });
            continue;
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
