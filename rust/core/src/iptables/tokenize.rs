//! Splitting one iptables-restore line into words, and quoting words the way iptables-save does.
//!
//! iptables-restore's rules: words are separated by spaces or tabs; a double quote opens a quoted
//! run in which a backslash escapes the next character; the closing quote ends the word. Outside
//! quotes a backslash is an ordinary character, and single quotes are not special at all.

/// One word of a line with the 1-based column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The word after quote removal.
    pub text: String,
    /// 1-based character column of the word's first character in the line.
    pub column: usize,
    /// Whether any part of the word was quoted (so `"!"` is a word, not an inversion).
    pub quoted: bool,
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
pub(crate) fn tokenize(line: &str) -> Result<Vec<Token>, TokenizeError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    let mut in_word = false;
    let mut quoted = false;
    let mut quote_open = false;
    let mut quote_column = 0usize;
    let mut escaped = false;
    for (index, ch) in line.chars().enumerate() {
        let column = index + 1;
        if quote_open {
            if escaped {
                current.push(ch);
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                // The closing quote ends the word, as in iptables-restore.
                quote_open = false;
                tokens.push(Token { text: std::mem::take(&mut current), column: start, quoted: true });
                in_word = false;
                quoted = false;
            } else {
                current.push(ch);
            }
            continue;
        }
        match ch {
            '"' => {
                if !in_word {
                    start = column;
                    in_word = true;
                }
                quote_open = true;
                quoted = true;
                quote_column = column;
            }
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    tokens.push(Token { text: std::mem::take(&mut current), column: start, quoted });
                    in_word = false;
                    quoted = false;
                }
            }
            _ => {
                if !in_word {
                    start = column;
                    in_word = true;
                }
                current.push(ch);
            }
        }
    }
    if quote_open {
        return Err(TokenizeError { column: quote_column, message: "unterminated quoted string".into() });
    }
    if in_word {
        tokens.push(Token { text: current, column: start, quoted });
    }
    Ok(tokens)
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
        tokenize(line).unwrap().into_iter().map(|t| t.text).collect()
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
