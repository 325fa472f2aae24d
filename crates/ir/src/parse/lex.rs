//! The tokenizer of the text form: words, numbers and punctuation, each with
//! the line and column where it starts. Whitespace only separates tokens.

use super::ParseError;
use std::fmt;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    /// A name: a variable, primitive, parameter key, dtype or keyword.
    Word(String),
    /// An unsigned number as written: `3`, `2.5`, `1e-7`, `0x7fc00001`.
    Number(String),
    /// One of `{ } ( ) [ ] , ; . : = -`.
    Punct(char),
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Number(n) => write!(f, "`{n}`"),
            Tok::Punct(c) => write!(f, "`{c}`"),
            Tok::End => f.write_str("the end of the text"),
        }
    }
}

/// A token and where it starts (1-based line and column, counted in characters).
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub column: usize,
}

const PUNCT: &str = "{}()[],;.:=-";

/// Splits the text into tokens, ending with [`Tok::End`].
pub(super) fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line, mut column) = (0, 1, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            column = 1;
            i += 1;
            continue;
        }
        let (tok, end) = if c.is_whitespace() {
            (None, i + 1)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            (Some(Tok::Word(chars[i..end].iter().collect())), end)
        } else if c.is_ascii_digit() {
            let end = number_end(&chars, i);
            (Some(Tok::Number(chars[i..end].iter().collect())), end)
        } else if PUNCT.contains(c) {
            (Some(Tok::Punct(c)), i + 1)
        } else if c == '…' {
            return Err(ParseError::new(
                line,
                column,
                "a constant's elements were elided (`{…}`): print the program with `{:#}` for a form that parses",
            ));
        } else {
            return Err(ParseError::new(line, column, format!("unexpected character `{c}`")));
        };
        if let Some(tok) = tok {
            tokens.push(Token { tok, line, column });
        }
        column += end - i;
        i = end;
    }
    tokens.push(Token { tok: Tok::End, line, column });
    Ok(tokens)
}

/// The end of a number starting at `i`: digits, then an optional fraction and
/// exponent (`2.5e-3`), or a hexadecimal `0x...` (NaN payloads).
fn number_end(chars: &[char], i: usize) -> usize {
    let digits = |mut j: usize, hex: bool| {
        while j < chars.len() && (chars[j].is_ascii_digit() || (hex && chars[j].is_ascii_hexdigit())) {
            j += 1;
        }
        j
    };
    let at = |j: usize| chars.get(j).copied().unwrap_or(' ');
    if at(i) == '0' && (at(i + 1) == 'x' || at(i + 1) == 'X') && at(i + 2).is_ascii_hexdigit() {
        return digits(i + 2, true);
    }
    let mut j = digits(i, false);
    if at(j) == '.' && at(j + 1).is_ascii_digit() {
        j = digits(j + 1, false);
    }
    if at(j) == 'e' || at(j) == 'E' {
        let k = if at(j + 1) == '+' || at(j + 1) == '-' { j + 2 } else { j + 1 };
        if at(k).is_ascii_digit() {
            j = digits(k, false);
        }
    }
    j
}
