//! The query language's first stage: text → [`Token`]s (words, string and number literals,
//! symbols), each with its byte offset for error messages. Keywords are not told apart from
//! property names here; the parser does that, case-insensitively.

use serde_json::Number;

use super::QueryError;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// An identifier or keyword, as written.
    Word(String),
    Text(String),
    Number(Number),
    Symbol(&'static str),
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    /// Byte offset in the query text, for error messages.
    pub(super) position: usize,
}

/// Operators and punctuation, longest first so `<=` is not read as `<` then `=`.
const SYMBOLS: [&str; 18] = [
    "<=", ">=", "<>", "!=", "=", "<", ">", "*", ".", ",", "(", ")", "[", "]", "-", "+", "/", "%",
];

/// The tokens of `text`, whitespace dropped; fails at the first character no token starts
/// with, or a malformed string or number literal.
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(position, c)) = chars.peek() {
        let kind = if c.is_whitespace() {
            chars.next();
            continue;
        } else if c == '\'' || c == '"' {
            chars.next();
            TokenKind::Text(string_literal(&mut chars, c, position)?)
        } else if c.is_ascii_digit() {
            TokenKind::Number(number_literal(text, &mut chars, position)?)
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_alphanumeric() || c == '_' || c == '$' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            TokenKind::Word(word)
        } else if text[position..].starts_with("[[")
            && matches!(
                tokens.last(),
                Some(Token {
                    kind: TokenKind::Symbol("."),
                    ..
                })
            )
        {
            // `configurations.[[my-config]]`: a name with characters a word cannot hold.
            let inner = &text[position + 2..];
            let end = inner.find("]]").ok_or_else(|| {
                QueryError::at(position, "a name opened with [[ is not closed with ]]")
            })?;
            let name = &inner[..end];
            if name.is_empty() {
                return Err(QueryError::at(position, "an empty name between [[ and ]]"));
            }
            for _ in 0..name.chars().count() + 4 {
                chars.next();
            }
            TokenKind::Word(name.to_owned())
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[position..].starts_with(**s)) {
            for _ in 0..symbol.len() {
                chars.next();
            }
            TokenKind::Symbol(symbol)
        } else {
            return Err(QueryError::at(
                position,
                format_args!("unexpected character '{c}'"),
            ));
        };
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

type Chars<'t> = std::iter::Peekable<std::str::CharIndices<'t>>;

/// A string after its opening quote, up to the matching one; escapes `\'`, `\"`, `\\`, `\/`,
/// `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX`.
fn string_literal(chars: &mut Chars<'_>, quote: char, start: usize) -> Result<String, QueryError> {
    let mut out = String::new();
    loop {
        let Some((position, c)) = chars.next() else {
            return Err(QueryError::at(start, "unterminated string"));
        };
        match c {
            c if c == quote => return Ok(out),
            '\\' => {
                let escaped = match chars.next() {
                    Some((_, c @ ('\'' | '"' | '\\' | '/'))) => c,
                    Some((_, 'b')) => '\u{8}',
                    Some((_, 'f')) => '\u{c}',
                    Some((_, 'n')) => '\n',
                    Some((_, 'r')) => '\r',
                    Some((_, 't')) => '\t',
                    Some((_, 'u')) => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let digit = chars.next().and_then(|(_, c)| c.to_digit(16)).ok_or_else(
                                || QueryError::at(position, "\\u needs four hexadecimal digits"),
                            )?;
                            code = code * 16 + digit;
                        }
                        char::from_u32(code).ok_or_else(|| {
                            QueryError::at(
                                position,
                                format_args!("\\u{code:04x} is not a character"),
                            )
                        })?
                    }
                    _ => return Err(QueryError::at(position, "unknown escape sequence")),
                };
                out.push(escaped);
            }
            c => out.push(c),
        }
    }
}

/// A decimal (`12`, `1.5`, `2e3`) or hexadecimal (`0x1F`) number.
fn number_literal(text: &str, chars: &mut Chars<'_>, start: usize) -> Result<Number, QueryError> {
    let rest = &text[start..];
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let digits: String = hex
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        for _ in 0..2 + digits.len() {
            chars.next();
        }
        return u64::from_str_radix(&digits, 16)
            .map(Number::from)
            .map_err(|_| QueryError::at(start, format_args!("'0x{digits}' is not a number")));
    }
    let mut end = 0;
    let mut is_integer = true;
    let bytes = rest.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    end += digits(end);
    if bytes.get(end) == Some(&b'.') && digits(end + 1) > 0 {
        is_integer = false;
        end += 1 + digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        if digits(end + 1 + sign) > 0 {
            is_integer = false;
            end += 1 + sign + digits(end + 1 + sign);
        }
    }
    let literal = &rest[..end];
    for _ in 0..literal.len() {
        chars.next();
    }
    if let Some(c) = rest[end..].chars().next()
        && (c.is_alphanumeric() || c == '_')
    {
        return Err(QueryError::at(
            start + end,
            format_args!("unexpected '{c}' after the number {literal}"),
        ));
    }
    let number = if is_integer {
        literal.parse::<i64>().ok().map(Number::from)
    } else {
        None
    };
    number
        .or_else(|| literal.parse::<f64>().ok().and_then(Number::from_f64))
        .ok_or_else(|| QueryError::at(start, format_args!("'{literal}' is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn text(value: &str) -> TokenKind {
        TokenKind::Text(value.to_owned())
    }

    #[test]
    fn words_symbols_and_positions() {
        let tokens = tokenize("SELECT * FROM devices WHERE $x.y<=1").unwrap();
        let positions: Vec<usize> = tokens.iter().map(|t| t.position).collect();
        assert_eq!(positions, [0, 7, 9, 14, 22, 28, 30, 31, 32, 34]);
        assert_eq!(tokens[5].kind, TokenKind::Word("$x".into()));
        assert_eq!(
            tokens[8].kind,
            TokenKind::Symbol("<="),
            "longest symbol first"
        );
        assert_eq!(
            kinds("a<>b!=c"),
            [
                TokenKind::Word("a".into()),
                TokenKind::Symbol("<>"),
                TokenKind::Word("b".into()),
                TokenKind::Symbol("!="),
                TokenKind::Word("c".into()),
            ]
        );
        assert!(kinds(" \t\n ").is_empty());
    }

    #[test]
    fn string_literals_take_either_quote_and_every_escape() {
        assert_eq!(
            kinds(r#"'it\'s' "say \"hi\"""#),
            [text("it's"), text("say \"hi\"")]
        );
        assert_eq!(kinds(r"'a\nb\tc\\d\/e'"), [text("a\nb\tc\\d/e")]);
        assert_eq!(kinds(r"'\b\f\r'"), [text("\u{8}\u{c}\r")]);
        assert_eq!(kinds(r"'\u00e9'"), [text("é")]);
        assert_eq!(kinds(r#"'"' "'""#), [text("\""), text("'")]);
    }

    #[test]
    fn number_literals_are_integers_floats_or_hex() {
        let number = |text: &str| match kinds(text).as_slice() {
            [TokenKind::Number(n)] => n.clone(),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(number("12").as_i64(), Some(12));
        assert_eq!(number("0x1F").as_u64(), Some(31));
        assert_eq!(number("0XfF").as_u64(), Some(255));
        assert_eq!(number("1.5").as_f64(), Some(1.5));
        assert_eq!(number("2e3").as_f64(), Some(2000.0));
        assert_eq!(number("15E+2").as_f64(), Some(1500.0));
        assert_eq!(
            number("18446744073709551615").as_u64(),
            None,
            "beyond i64 is a float"
        );
        // A trailing `.` is the path separator, not part of the number.
        assert_eq!(
            kinds("1.x"),
            [
                TokenKind::Number(Number::from(1)),
                TokenKind::Symbol("."),
                TokenKind::Word("x".into()),
            ]
        );
    }

    #[test]
    fn malformed_input_is_an_error_with_its_position() {
        for (text, expected) in [
            ("a # b", "position 2: unexpected character '#'"),
            ("'open", "position 0: unterminated string"),
            (r"'\q'", "unknown escape"),
            (r"'\u12'", "four hexadecimal digits"),
            (r"'\ud800'", "is not a character"),
            ("12abc", "after the number 12"),
            ("0xZZ", "'0xZZ' is not a number"),
            ("0x", "is not a number"),
        ] {
            let error = tokenize(text).expect_err(text);
            assert!(error.message.contains(expected), "{text}: {error}");
        }
    }
}
