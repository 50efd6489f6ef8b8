//! Tokens of Brian2's expression language.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Int(i64),
    Float(f64),
    Name(String),
    /// Operators and punctuation, longest match first.
    Op(&'static str),
    End,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    /// 0-based byte offset.
    pub pos: usize,
}

const OPS: [&str; 27] = [
    "**", "//", "<=", ">=", "==", "!=", ":=", "+=", "-=", "*=", "/=", "+", "-", "*", "/", "%", "<",
    ">", "=", "(", ")", ",", "&", "|", "~", "!", "^",
];

pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, msg: &str| ParseError {
        text: text.to_string(),
        column: pos + 1,
        message: msg.to_string(),
    };
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            break; // a comment runs to the end of the line
        }
        let start = i;
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit()))
        {
            let mut is_float = false;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'.' {
                is_float = true;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    is_float = true;
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    return Err(err(i, "malformed exponent in number"));
                }
            }
            let s = &text[start..i];
            let tok = if is_float {
                Tok::Float(s.parse().map_err(|_| err(start, "malformed number"))?)
            } else {
                match s.parse::<i64>() {
                    Ok(v) => Tok::Int(v),
                    // Python ints are unbounded; beyond i64 Brian2 would need a float anyway.
                    Err(_) => Tok::Float(s.parse().map_err(|_| err(start, "malformed number"))?),
                }
            };
            out.push(Token { tok, pos: start });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Name(text[start..i].to_string()),
                pos: start,
            });
            continue;
        }
        match OPS.iter().find(|op| text[i..].starts_with(**op)) {
            Some(op) => {
                out.push(Token {
                    tok: Tok::Op(op),
                    pos: start,
                });
                i += op.len();
            }
            None => return Err(err(i, &format!("unexpected character '{c}'"))),
        }
    }
    out.push(Token {
        tok: Tok::End,
        pos: text.len(),
    });
    Ok(out)
}
