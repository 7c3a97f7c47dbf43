//! The IoT Hub query language for twin queries (`POST /devices/query`;
//! iot-hub-devguide-query-language.md), as a pure function of twin JSON documents: no hub, no
//! HTTP. [`parse`] turns the text into a [`Query`]; [`Query::run`] filters, counts and pages
//! documents shaped like `GET /twins/{id}` answers.
//!
//! The subset served:
//!
//! * `SELECT * FROM devices`, `SELECT * FROM devices.modules`, each with `TOP n` and `WHERE`;
//! * `SELECT COUNT() [AS alias] FROM devices[.modules] [WHERE …]` → `[{"alias": n}]`;
//! * conditions: `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `IN [..]`, `NIN [..]`, `AND`, `OR`,
//!   `NOT`, parentheses and `IS_DEFINED(path)`, over dotted paths (`tags.location.region`,
//!   `properties.reported.fw`) and constants (single- or double-quoted strings, decimal and
//!   `0x` numbers, `true`, `false`, `null`). Keywords are case-insensitive, property names not.
//!
//! Comparisons follow the SQL-like rules the documentation describes: only primitives compare,
//! and a comparison with a missing property or between different types is *undefined* —
//! neither true nor false, so `tags.x != 'a'` does not match twins without `tags.x`. A
//! document is returned only when the whole condition is `true`.
//! Anything else (projections, `GROUP BY`, arithmetic, other functions) is a [`QueryError`]
//! naming what is not supported, which the REST layer answers with 400.

use std::cmp::Ordering;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Number, Value, json};

/// Longest query text accepted. IoT Hub rejects queries of about 8 KB; a bound also keeps
/// parsing cheap.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Page size without `x-ms-max-item-count` (the SDK documentation's "pages of 100").
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger requested pages are lowered to this, IoT Hub's documented maximum page size.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Deepest nesting of parentheses and `NOT`: recursion in the parser and evaluator is bounded
/// by it, so hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 32;
/// Marks our continuation tokens, so a token from elsewhere is refused, not misread.
const CONTINUATION_PREFIX: &str = "iotemu-query:";

/// Why a query cannot be run; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
}

impl QueryError {
    fn new(message: impl Into<String>) -> QueryError {
        QueryError {
            message: message.into(),
        }
    }

    fn at(position: usize, message: impl fmt::Display) -> QueryError {
        QueryError::new(format!("Syntax error at position {position}: {message}"))
    }
}

/// The document collection a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Device twins (`FROM devices`).
    Devices,
    /// Module twins (`FROM devices.modules`).
    Modules,
}

/// What a query returns for the documents it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// `SELECT *`: the documents themselves.
    All,
    /// `SELECT COUNT() AS alias`: one row `{alias: n}`.
    Count { alias: String },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub projection: Projection,
    pub collection: Collection,
    /// `SELECT TOP n`: at most this many documents over all pages.
    pub top: Option<usize>,
    filter: Option<Expr>,
}

/// One page of results and what the response headers carry.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Value>,
    /// `x-ms-continuation` for the next page; `None` on the last one.
    pub continuation: Option<String>,
    /// `x-ms-item-type`: `twin` for documents, `raw` for aggregates (the values the service
    /// SDKs know).
    pub item_type: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Constant(Value),
    Property(Vec<String>),
    IsDefined(Vec<String>),
    Compare(Box<Expr>, Comparison, Box<Expr>),
    Membership {
        value: Box<Expr>,
        list: Vec<Value>,
        negated: bool,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Parses query text.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::new(format!(
            "The query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    let tokens = tokenize(text)?;
    Parser {
        tokens,
        next: 0,
        end: text.len(),
        depth: 0,
    }
    .query()
}

impl Query {
    /// Whether `document` satisfies the `WHERE` clause (always, without one).
    pub fn matches(&self, document: &Value) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| f.evaluate(document) == Some(Value::Bool(true)))
    }

    /// Runs the query over `documents` (twin JSON of the query's collection, in any order) and
    /// returns one page. Documents are returned in `deviceId` (then `moduleId`) order and the
    /// continuation token names the last one returned, so pages stay consistent when twins are
    /// added or removed between calls.
    pub fn run(
        &self,
        documents: Vec<Value>,
        max_item_count: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage, QueryError> {
        if let Projection::Count { alias } = &self.projection {
            let count = documents.iter().filter(|d| self.matches(d)).count();
            let mut row = Map::new();
            row.insert(alias.clone(), json!(count));
            return Ok(QueryPage {
                items: vec![Value::Object(row)],
                continuation: None,
                item_type: "raw",
            });
        }
        let size = match max_item_count {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) => n.min(MAX_PAGE_SIZE),
        };
        let resume = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Some(Resume::decode(token)?),
            None => None,
        };
        let already = resume.as_ref().map_or(0, |r| r.returned);
        let remaining = self.top.map_or(usize::MAX, |t| t.saturating_sub(already));
        let mut selected: Vec<(String, Value)> = documents
            .into_iter()
            .map(|d| (sort_key(&d), d))
            .filter(|(key, _)| resume.as_ref().is_none_or(|r| *key > r.after))
            .filter(|(_, d)| self.matches(d))
            .collect();
        selected.sort_by(|a, b| a.0.cmp(&b.0));
        let available = selected.len().min(remaining);
        let more = available > size;
        selected.truncate(available.min(size));
        let continuation = if more {
            selected.last().map(|(key, _)| {
                Resume {
                    after: key.clone(),
                    returned: already + selected.len(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok(QueryPage {
            items: selected.into_iter().map(|(_, d)| d).collect(),
            continuation,
            item_type: "twin",
        })
    }
}

/// Where the next page starts: after the document with this key, `returned` having been
/// sent already (for `TOP`).
struct Resume {
    after: String,
    returned: usize,
}

impl Resume {
    fn encode(&self) -> String {
        let payload = json!({ "after": self.after, "returned": self.returned });
        URL_SAFE_NO_PAD.encode(format!("{CONTINUATION_PREFIX}{payload}"))
    }

    fn decode(token: &str) -> Result<Resume, QueryError> {
        let invalid = || QueryError::new(format!("Invalid continuation token '{token}'"));
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let payload = text.strip_prefix(CONTINUATION_PREFIX).ok_or_else(invalid)?;
        let payload: Value = serde_json::from_str(payload).map_err(|_| invalid())?;
        let after = payload["after"].as_str().ok_or_else(invalid)?.to_owned();
        let returned = payload["returned"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(invalid)?;
        Ok(Resume { after, returned })
    }
}

/// Device ids cannot contain `/`, so `device/module` orders module twins by device first.
fn sort_key(document: &Value) -> String {
    let device = document["deviceId"].as_str().unwrap_or_default();
    match document["moduleId"].as_str() {
        Some(module) => format!("{device}/{module}"),
        None => device.to_owned(),
    }
}

impl Expr {
    /// The expression's value for `document`; `None` is *undefined* (a missing property, or a
    /// comparison that has no answer).
    fn evaluate(&self, document: &Value) -> Option<Value> {
        match self {
            Expr::Constant(value) => Some(value.clone()),
            Expr::Property(path) => lookup(document, path).cloned(),
            Expr::IsDefined(path) => Some(Value::Bool(lookup(document, path).is_some())),
            Expr::Compare(left, op, right) => {
                let left = left.evaluate(document)?;
                let right = right.evaluate(document)?;
                compare(&left, *op, &right).map(Value::Bool)
            }
            Expr::Membership {
                value,
                list,
                negated,
            } => {
                let value = value.evaluate(document)?;
                if !is_primitive(&value) {
                    return None;
                }
                let found = list
                    .iter()
                    .any(|item| compare(&value, Comparison::Equal, item) == Some(true));
                Some(Value::Bool(found != *negated))
            }
            Expr::Not(inner) => truth(inner.evaluate(document)).map(|b| Value::Bool(!b)),
            // Three-valued logic: one false decides AND, one true decides OR; otherwise an
            // undefined operand leaves the result undefined.
            Expr::And(terms) => {
                let mut result = Some(true);
                for term in terms {
                    match truth(term.evaluate(document)) {
                        Some(false) => return Some(Value::Bool(false)),
                        Some(true) => {}
                        None => result = None,
                    }
                }
                result.map(Value::Bool)
            }
            Expr::Or(terms) => {
                let mut result = Some(false);
                for term in terms {
                    match truth(term.evaluate(document)) {
                        Some(true) => return Some(Value::Bool(true)),
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result.map(Value::Bool)
            }
        }
    }
}

/// A Boolean operand's truth value; anything that is not a Boolean is undefined.
fn truth(value: Option<Value>) -> Option<bool> {
    match value {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    }
}

fn lookup<'d>(document: &'d Value, path: &[String]) -> Option<&'d Value> {
    path.iter()
        .try_fold(document, |value, key| value.as_object()?.get(key))
}

fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// Primitives of the same type compare (numbers by value, strings by code point, `false` <
/// `true`, `null` = `null`); anything else has no answer.
fn compare(left: &Value, op: Comparison, right: &Value) -> Option<bool> {
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => return None,
    };
    Some(match op {
        Comparison::Equal => order == Ordering::Equal,
        Comparison::NotEqual => order != Ordering::Equal,
        Comparison::Less => order == Ordering::Less,
        Comparison::Greater => order == Ordering::Greater,
        Comparison::LessOrEqual => order != Ordering::Greater,
        Comparison::GreaterOrEqual => order != Ordering::Less,
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    /// An identifier or keyword, as written.
    Word(String),
    Text(String),
    Number(Number),
    Symbol(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: TokenKind,
    /// Byte offset in the query text, for error messages.
    position: usize,
}

const SYMBOLS: [&str; 18] = [
    "<=", ">=", "<>", "!=", "=", "<", ">", "*", ".", ",", "(", ")", "[", "]", "-", "+", "/", "%",
];

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
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

// ---------------------------------------------------------------------------------------------
// Grammar

/// Words that cannot start a property path.
const RESERVED: [&str; 14] = [
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "nin",
    "as",
    "top",
    "group",
    "by",
    "order",
    "is_defined",
];

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// Length of the text, the position reported for "unexpected end".
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |t| t.position)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn peek_word(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn peek_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Symbol(s), .. }) if *s == symbol)
    }

    fn eat_word(&mut self, keyword: &str) -> bool {
        let found = self.peek_word(keyword);
        if found {
            self.next += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.peek_symbol(symbol);
        if found {
            self.next += 1;
        }
        found
    }

    fn describe_next(&self) -> String {
        match self.peek().map(|t| &t.kind) {
            None => "the end of the query".to_owned(),
            Some(TokenKind::Word(w)) => format!("'{w}'"),
            Some(TokenKind::Text(t)) => format!("the string '{t}'"),
            Some(TokenKind::Number(n)) => format!("the number {n}"),
            Some(TokenKind::Symbol(s)) => format!("'{s}'"),
        }
    }

    fn expected(&self, what: &str) -> QueryError {
        QueryError::at(
            self.position(),
            format_args!("expected {what}, found {}", self.describe_next()),
        )
    }

    fn expect_word(&mut self, keyword: &str) -> Result<(), QueryError> {
        if self.eat_word(keyword) {
            Ok(())
        } else {
            Err(self.expected(&keyword.to_ascii_uppercase()))
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{symbol}'")))
        }
    }

    fn identifier(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().map(|t| &t.kind) {
            Some(TokenKind::Word(w)) => {
                let w = w.clone();
                self.next += 1;
                Ok(w)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn query(mut self) -> Result<Query, QueryError> {
        self.expect_word("select")?;
        let top = if self.eat_word("top") {
            match self.advance().map(|t| t.kind) {
                Some(TokenKind::Number(n)) if n.as_u64().is_some() => {
                    n.as_u64().and_then(|n| usize::try_from(n).ok())
                }
                _ => {
                    self.next -= 1;
                    return Err(self.expected("a whole number after TOP"));
                }
            }
        } else {
            None
        };
        let projection = self.projection()?;
        self.expect_word("from")?;
        let collection = self.collection()?;
        let filter = if self.eat_word("where") {
            Some(self.or_expression(collection)?)
        } else {
            None
        };
        if self.peek_word("group") || self.peek_word("order") {
            return Err(QueryError::at(
                self.position(),
                "GROUP BY and ORDER BY are not supported by iotemu",
            ));
        }
        if self.peek().is_some() {
            return Err(self.expected("WHERE or the end of the query"));
        }
        Ok(Query {
            projection,
            collection,
            top,
            filter,
        })
    }

    fn projection(&mut self) -> Result<Projection, QueryError> {
        if self.eat_symbol("*") {
            return Ok(Projection::All);
        }
        if self.peek_word("count") {
            self.next += 1;
            self.expect_symbol("(")?;
            self.expect_symbol(")")?;
            let alias = if self.eat_word("as") {
                self.identifier("an alias after AS")?
            } else {
                // Unnamed expressions are called `$1` by the SQL dialect IoT Hub builds on.
                "$1".to_owned()
            };
            if self.peek_symbol(",") {
                return Err(QueryError::at(
                    self.position(),
                    "iotemu supports only SELECT * and SELECT COUNT()",
                ));
            }
            return Ok(Projection::Count { alias });
        }
        Err(QueryError::at(
            self.position(),
            format_args!(
                "iotemu supports only SELECT * and SELECT COUNT(), found {}",
                self.describe_next()
            ),
        ))
    }

    fn collection(&mut self) -> Result<Collection, QueryError> {
        self.expect_word("devices")?;
        if !self.eat_symbol(".") {
            return Ok(Collection::Devices);
        }
        let position = self.position();
        let name = self.identifier("'modules' after 'devices.'")?;
        if name.eq_ignore_ascii_case("modules") {
            Ok(Collection::Modules)
        } else {
            Err(QueryError::at(
                position,
                format_args!(
                    "FROM devices.{name} is not supported by iotemu; use devices or devices.modules"
                ),
            ))
        }
    }

    fn nested(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(QueryError::at(
                self.position(),
                format_args!("the condition nests deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    fn or_expression(&mut self, collection: Collection) -> Result<Expr, QueryError> {
        self.nested()?;
        let mut terms = vec![self.and_expression(collection)?];
        while self.eat_word("or") {
            terms.push(self.and_expression(collection)?);
        }
        self.depth -= 1;
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and_expression(&mut self, collection: Collection) -> Result<Expr, QueryError> {
        let mut terms = vec![self.not_expression(collection)?];
        while self.eat_word("and") {
            terms.push(self.not_expression(collection)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn not_expression(&mut self, collection: Collection) -> Result<Expr, QueryError> {
        if self.eat_word("not") {
            self.nested()?;
            let inner = self.not_expression(collection)?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison(collection)
    }

    fn comparison(&mut self, collection: Collection) -> Result<Expr, QueryError> {
        let left = self.operand(collection)?;
        let op = match self.peek().map(|t| &t.kind) {
            Some(TokenKind::Symbol("=")) => Comparison::Equal,
            Some(TokenKind::Symbol("!=" | "<>")) => Comparison::NotEqual,
            Some(TokenKind::Symbol("<")) => Comparison::Less,
            Some(TokenKind::Symbol(">")) => Comparison::Greater,
            Some(TokenKind::Symbol("<=")) => Comparison::LessOrEqual,
            Some(TokenKind::Symbol(">=")) => Comparison::GreaterOrEqual,
            Some(TokenKind::Symbol("+" | "-" | "*" | "/" | "%")) => {
                return Err(QueryError::at(
                    self.position(),
                    "arithmetic operators are not supported by iotemu",
                ));
            }
            Some(TokenKind::Word(w))
                if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("nin") =>
            {
                let negated = w.eq_ignore_ascii_case("nin");
                self.next += 1;
                let list = self.array_constant()?;
                return Ok(Expr::Membership {
                    value: Box::new(left),
                    list,
                    negated,
                });
            }
            _ => return Ok(left),
        };
        self.next += 1;
        let right = self.operand(collection)?;
        Ok(Expr::Compare(Box::new(left), op, Box::new(right)))
    }

    fn operand(&mut self, collection: Collection) -> Result<Expr, QueryError> {
        let position = self.position();
        let Some(token) = self.advance() else {
            return Err(QueryError::at(
                position,
                "expected a property, a constant or '(' but the query ended",
            ));
        };
        match token.kind {
            TokenKind::Symbol("(") => {
                let inner = self.or_expression(collection)?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            TokenKind::Symbol("-") => match self.advance().map(|t| t.kind) {
                Some(TokenKind::Number(n)) => negate(&n)
                    .map(Expr::Constant)
                    .ok_or_else(|| QueryError::at(position, format_args!("-{n} is out of range"))),
                _ => Err(QueryError::at(position, "'-' must be followed by a number")),
            },
            TokenKind::Symbol("[") => Err(QueryError::at(
                position,
                "an array is allowed only after IN or NIN",
            )),
            TokenKind::Text(text) => Ok(Expr::Constant(Value::String(text))),
            TokenKind::Number(n) => Ok(Expr::Constant(Value::Number(n))),
            TokenKind::Word(word) => self.word_operand(word, position, collection),
            TokenKind::Symbol(_) => {
                self.next -= 1;
                Err(self.expected("a property, a constant or '('"))
            }
        }
    }

    fn word_operand(
        &mut self,
        word: String,
        position: usize,
        collection: Collection,
    ) -> Result<Expr, QueryError> {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "true" => return Ok(Expr::Constant(Value::Bool(true))),
            "false" => return Ok(Expr::Constant(Value::Bool(false))),
            "null" => return Ok(Expr::Constant(Value::Null)),
            "is_defined" => {
                self.expect_symbol("(")?;
                let path = self.path(collection)?;
                self.expect_symbol(")")?;
                return Ok(Expr::IsDefined(path));
            }
            _ => {}
        }
        if self.peek_symbol("(") {
            return Err(QueryError::at(
                position,
                format_args!("the function {word} is not supported by iotemu (only IS_DEFINED)"),
            ));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(QueryError::at(
                position,
                format_args!("expected a property, a constant or '(', found '{word}'"),
            ));
        }
        self.next -= 1;
        self.path(collection).map(Expr::Property)
    }

    /// `name(.name)*`, relative to the document: a leading `devices.` (or `devices.modules.`
    /// when querying modules) names the document itself and is dropped.
    fn path(&mut self, collection: Collection) -> Result<Vec<String>, QueryError> {
        let first = self.identifier("a property name")?;
        if RESERVED.contains(&first.to_ascii_lowercase().as_str()) {
            self.next -= 1;
            return Err(self.expected("a property name"));
        }
        let mut path = vec![first];
        while self.eat_symbol(".") {
            path.push(self.identifier("a property name after '.'")?);
        }
        let prefix: &[&str] = match collection {
            Collection::Devices => &["devices"],
            Collection::Modules => &["devices", "modules"],
        };
        if path.len() > prefix.len()
            && path
                .iter()
                .zip(prefix)
                .all(|(p, q)| p.eq_ignore_ascii_case(q))
        {
            path.drain(..prefix.len());
        }
        Ok(path)
    }

    /// `[constant, …]` after IN / NIN.
    fn array_constant(&mut self) -> Result<Vec<Value>, QueryError> {
        self.expect_symbol("[")?;
        let mut items = Vec::new();
        if self.eat_symbol("]") {
            return Ok(items);
        }
        loop {
            let position = self.position();
            let item = match self.advance().map(|t| t.kind) {
                Some(TokenKind::Text(t)) => Value::String(t),
                Some(TokenKind::Number(n)) => Value::Number(n),
                Some(TokenKind::Symbol("-")) => match self.advance().map(|t| t.kind) {
                    Some(TokenKind::Number(n)) => negate(&n).ok_or_else(|| {
                        QueryError::at(position, format_args!("-{n} is out of range"))
                    })?,
                    _ => return Err(QueryError::at(position, "'-' must be followed by a number")),
                },
                Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
                Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
                Some(TokenKind::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
                _ => {
                    self.next -= 1;
                    return Err(self.expected("a constant in the array"));
                }
            };
            items.push(item);
            if self.eat_symbol("]") {
                return Ok(items);
            }
            self.expect_symbol(",")?;
        }
    }
}

fn negate(n: &Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return i.checked_neg().map(Value::from);
    }
    if let Some(u) = n.as_u64() {
        // Only u64 values above i64::MAX get here; -(2^63) is the one that still fits.
        return (u == 1 << 63).then_some(Value::from(i64::MIN));
    }
    n.as_f64()
        .and_then(|f| Number::from_f64(-f))
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin(device_id: &str, tags: Value, reported: Value) -> Value {
        json!({
            "deviceId": device_id,
            "etag": "AAAAAAAAAAE=",
            "status": "enabled",
            "connectionState": "Disconnected",
            "tags": tags,
            "properties": {
                "desired": { "$version": 1 },
                "reported": reported,
            },
        })
    }

    fn fleet() -> Vec<Value> {
        vec![
            twin(
                "dev-b",
                json!({"location": {"region": "US", "plant": "Redmond43"}}),
                json!({"fw": "1.2", "temp": 21.5, "online": true}),
            ),
            twin(
                "dev-a",
                json!({"location": {"region": "EU"}}),
                json!({"fw": "1.0", "temp": 30, "battery": null}),
            ),
            twin("dev-c", json!({}), json!({"temp": "hot"})),
        ]
    }

    /// Device ids the query selects from [`fleet`], in result order.
    fn ids(text: &str) -> Vec<String> {
        let query = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        query
            .run(fleet(), None, None)
            .unwrap()
            .items
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn select_star_returns_every_twin_in_device_id_order() {
        assert_eq!(ids("SELECT * FROM devices"), ["dev-a", "dev-b", "dev-c"]);
        let page = parse("select * from DEVICES")
            .unwrap()
            .run(fleet(), None, None)
            .unwrap();
        assert_eq!(page.item_type, "twin");
        assert_eq!(page.continuation, None);
        assert_eq!(
            page.items[0],
            fleet()[1],
            "documents are returned unchanged"
        );
    }

    #[test]
    fn where_compares_tags_properties_and_top_level_fields() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region = 'US'"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE deviceId = \"dev-c\""),
            ["dev-c"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp >= 25"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp < 30.0"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp <= 30"),
            ["dev-a", "dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.fw > '1.0'"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE status = 'enabled'").len(),
            3
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.online = true"),
            ["dev-b"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.battery = null"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.desired.$version = 1").len(),
            3
        );
    }

    #[test]
    fn not_equal_needs_the_property_and_a_comparable_type() {
        // dev-c has no region: undefined, so it is not returned by `!=` either.
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region != 'US'"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.location.region <> 'US'"),
            ["dev-a"]
        );
        // A string never equals or differs from a number.
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.temp != 21.5"),
            ["dev-a"]
        );
        // Objects do not compare.
        assert!(ids("SELECT * FROM devices WHERE tags.location = tags.location").is_empty());
    }

    #[test]
    fn boolean_logic_is_three_valued() {
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE tags.location.region = 'US' OR properties.reported.temp = 'hot'"
            ),
            ["dev-b", "dev-c"]
        );
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE tags.location.region = 'EU' AND properties.reported.fw = '1.0'"
            ),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE NOT (tags.location.region = 'US')"),
            ["dev-a"],
            "NOT of undefined stays undefined"
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE tags.nothing = 1 OR deviceId = 'dev-c'"),
            ["dev-c"],
            "true OR undefined is true"
        );
        assert!(
            ids("SELECT * FROM devices WHERE tags.nothing = 1 AND deviceId = 'dev-c'").is_empty()
        );
        assert_eq!(
            ids(
                "SELECT * FROM devices WHERE (deviceId = 'dev-a' OR deviceId = 'dev-b') AND NOT properties.reported.fw = '1.2'"
            ),
            ["dev-a"]
        );
        assert!(
            ids("SELECT * FROM devices WHERE deviceId").is_empty(),
            "a non-Boolean condition selects nothing"
        );
        assert_eq!(ids("SELECT * FROM devices WHERE true").len(), 3);
    }

    #[test]
    fn is_defined_counts_null_as_defined() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE IS_DEFINED(properties.reported.battery)"),
            ["dev-a"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE NOT is_defined(tags.location)"),
            ["dev-c"]
        );
    }

    #[test]
    fn in_and_nin_match_against_constant_arrays() {
        assert_eq!(
            ids("SELECT * FROM devices WHERE deviceId IN ['dev-a', 'dev-c', 'x']"),
            ["dev-a", "dev-c"]
        );
        assert_eq!(
            ids("SELECT * FROM devices WHERE properties.reported.fw NIN ['1.0']"),
            ["dev-b"]
        );
        assert!(ids("SELECT * FROM devices WHERE deviceId IN []").is_empty());
    }

    #[test]
    fn count_returns_one_aliased_row() {
        let query = parse("SELECT COUNT() AS total FROM devices WHERE tags.location.region = 'US'")
            .unwrap();
        let page = query.run(fleet(), Some(1), None).unwrap();
        assert_eq!(page.items, [json!({"total": 1})]);
        assert_eq!(page.item_type, "raw");
        assert_eq!(page.continuation, None);
        let unnamed = parse("select count() from devices").unwrap();
        assert_eq!(
            unnamed.run(fleet(), None, None).unwrap().items,
            [json!({"$1": 3})]
        );
    }

    #[test]
    fn modules_are_a_separate_collection_ordered_by_device_then_module() {
        let query =
            parse("SELECT * FROM devices.modules WHERE devices.modules.moduleId != 'm2'").unwrap();
        assert_eq!(query.collection, Collection::Modules);
        let modules = vec![
            json!({"deviceId": "d1", "moduleId": "m2"}),
            json!({"deviceId": "d1", "moduleId": "m1"}),
            json!({"deviceId": "d0", "moduleId": "m3"}),
        ];
        let page = query.run(modules, None, None).unwrap();
        assert_eq!(
            page.items,
            [
                json!({"deviceId": "d0", "moduleId": "m3"}),
                json!({"deviceId": "d1", "moduleId": "m1"})
            ]
        );
    }

    #[test]
    fn pages_follow_the_continuation_token_to_the_end() {
        let query = parse("SELECT * FROM devices").unwrap();
        let first = query.run(fleet(), Some(2), None).unwrap();
        assert_eq!(first.items.len(), 2);
        let token = first.continuation.expect("more pages");
        let second = query.run(fleet(), Some(2), Some(&token)).unwrap();
        assert_eq!(second.items.len(), 1);
        assert_eq!(second.items[0]["deviceId"], "dev-c");
        assert_eq!(second.continuation, None);
        // A twin added before the resume point does not shift the next page.
        let mut more = fleet();
        more.push(twin("dev-0", json!({}), json!({})));
        let again = query.run(more, Some(2), Some(&token)).unwrap();
        assert_eq!(again.items[0]["deviceId"], "dev-c");
    }

    #[test]
    fn top_limits_the_total_over_pages() {
        let query = parse("SELECT TOP 2 * FROM devices").unwrap();
        let first = query.run(fleet(), Some(1), None).unwrap();
        assert_eq!(first.items.len(), 1);
        let second = query
            .run(fleet(), Some(1), first.continuation.as_deref())
            .unwrap();
        assert_eq!(second.items[0]["deviceId"], "dev-b");
        assert_eq!(second.continuation, None, "TOP 2 is reached");
        assert_eq!(ids("SELECT TOP 0 * FROM devices").len(), 0);
    }

    #[test]
    fn foreign_continuation_tokens_are_refused() {
        let query = parse("SELECT * FROM devices").unwrap();
        for token in [
            "not base64!",
            "aW90ZW11LWFmdGVyOng",
            &URL_SAFE_NO_PAD.encode("iotemu-query:{}"),
        ] {
            let error = query.run(fleet(), None, Some(token)).unwrap_err();
            assert!(error.message.contains("continuation"), "{error}");
        }
    }

    #[test]
    fn literals_cover_escapes_negatives_hex_and_exponents() {
        let document = json!({
            "deviceId": "d",
            "tags": {"quote": "it's", "nl": "a\nb", "neg": -5, "hex": 31, "big": 1500, "u": "é"},
        });
        for condition in [
            r"tags.quote = 'it\'s'",
            r#"tags.quote = "it's""#,
            r"tags.nl = 'a\nb'",
            "tags.neg = -5",
            "tags.neg < -4.5",
            "tags.hex = 0x1F",
            "tags.big = 1.5e3",
            "tags.big = 15E+2",
            r"tags.u = '\u00e9'",
        ] {
            let query = parse(&format!("SELECT * FROM devices WHERE {condition}")).unwrap();
            assert!(query.matches(&document), "{condition}");
        }
    }

    #[test]
    fn unsupported_or_malformed_queries_name_the_problem() {
        for (text, expected) in [
            ("", "expected SELECT"),
            (
                "SELECT deviceId FROM devices",
                "only SELECT * and SELECT COUNT()",
            ),
            (
                "SELECT * FROM devices.jobs",
                "devices.jobs is not supported",
            ),
            ("SELECT * FROM twins", "expected DEVICES"),
            ("SELECT * FROM devices WHERE", "query ended"),
            (
                "SELECT * FROM devices WHERE deviceId = 'x",
                "unterminated string",
            ),
            ("SELECT * FROM devices WHERE deviceId == 'x'", "found '='"),
            (
                "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'a')",
                "STARTSWITH is not supported",
            ),
            ("SELECT * FROM devices WHERE tags.a + 1 = 2", "arithmetic"),
            (
                "SELECT * FROM devices WHERE (deviceId = 'a'",
                "expected ')'",
            ),
            ("SELECT * FROM devices GROUP BY status", "GROUP BY"),
            (
                "SELECT * FROM devices WHERE deviceId = 'a' LIMIT 3",
                "end of the query",
            ),
            (
                "SELECT * FROM devices WHERE tags.x = 12abc",
                "after the number",
            ),
            ("SELECT * FROM devices WHERE tags.x = 'a\\q'", "escape"),
            (
                "SELECT * FROM devices WHERE tags.x IN ('a')",
                "expected '['",
            ),
            ("SELECT * FROM devices WHERE and = 1", "found 'and'"),
            (
                "SELECT * FROM devices WHERE tags.x = #",
                "unexpected character '#'",
            ),
            ("SELECT TOP x * FROM devices", "whole number after TOP"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(
                error.message.contains(expected),
                "{text}: '{error}' should mention '{expected}'"
            );
        }
    }

    #[test]
    fn deep_nesting_and_huge_queries_are_refused_not_overflowed() {
        let deep = format!(
            "SELECT * FROM devices WHERE {}true{}",
            "(".repeat(4000),
            ")".repeat(4000)
        );
        assert!(deep.len() < MAX_QUERY_BYTES);
        assert!(parse(&deep).unwrap_err().message.contains("nests deeper"));
        let huge = format!(
            "SELECT * FROM devices WHERE deviceId = '{}'",
            "x".repeat(9000)
        );
        assert!(parse(&huge).unwrap_err().message.contains("limit is 8192"));
        let nested = format!(
            "SELECT * FROM devices WHERE {}true{}",
            "(".repeat(40),
            ")".repeat(40)
        );
        assert!(parse(&nested).unwrap_err().message.contains("nests deeper"));
        let nots = format!("SELECT * FROM devices WHERE {}true", "NOT ".repeat(40));
        assert!(parse(&nots).unwrap_err().message.contains("nests deeper"));
        let fine = format!(
            "SELECT * FROM devices WHERE {}true{}",
            "(".repeat(20),
            ")".repeat(20)
        );
        assert!(parse(&fine).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parsing_query_shaped_text_never_panics(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "SELECT", "*", "FROM", "devices", ".", "modules", "WHERE", "AND", "OR",
                    "NOT", "(", ")", "=", "!=", "<", ">=", "IN", "NIN", "[", "]", ",", "'a'",
                    "\"b", "12", "-", "0x", "1e", "IS_DEFINED", "tags", "COUNT()", "AS", "TOP",
                    "true", "null", "\\", "'\\u12", "x",
                ]),
                0..40,
            )
        ) {
            let text = parts.join(" ");
            if let Ok(query) = parse(&text) {
                let _ = query.run(fleet(), Some(1), None);
            }
        }
    }
}
