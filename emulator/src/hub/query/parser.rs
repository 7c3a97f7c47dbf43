//! The query language's second stage: tokens → [`Query`]. A recursive-descent parser, one
//! method per rule, precedence `OR` < `AND` < `NOT` < comparison; nesting is bounded so that
//! neither it nor the evaluator can be driven into a stack overflow. Unsupported parts of the
//! language (projections, functions, arithmetic, `GROUP BY`) are errors that name them.
//!
//! ```text
//! query      = SELECT [TOP n] projection FROM collection [WHERE or]
//! projection = '*' | COUNT '(' ')' [AS word] | path {',' path}
//! collection = devices ['.' (modules | jobs)]
//! or         = and {OR and}
//! and        = not {AND not}
//! not        = NOT not | comparison
//! comparison = operand [op operand | (IN | NIN) '[' constants ']']
//! operand    = '(' or ')' | constant | '-' number | IS_DEFINED '(' path ')' | path
//! ```

use serde_json::{Number, Value};

use super::lexer::{Token, TokenKind};

mod cursor;
use super::{Collection, Projection, Query, QueryError};

/// Deepest nesting of parentheses and `NOT`: recursion in the parser and evaluator is bounded
/// by it, so hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

/// A `WHERE` condition, or a part of one; [`super::eval`] gives it a value per document.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Constant(Value),
    /// A path relative to the document (`tags.location.region`).
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

/// The query the tokens of a text `end` bytes long spell.
pub(super) fn parse_tokens(tokens: Vec<Token>, end: usize) -> Result<Query, QueryError> {
    Parser {
        tokens,
        next: 0,
        end,
        depth: 0,
    }
    .query()
}

/// `path` relative to a document of `collection`: a leading `devices.` (`devices.modules.`,
/// `devices.jobs.`) names the document itself and is dropped.
fn strip_prefix(mut path: Vec<String>, collection: Collection) -> Vec<String> {
    let prefix: &[&str] = match collection {
        Collection::Devices => &["devices"],
        Collection::Modules => &["devices", "modules"],
        Collection::Jobs => &["devices", "jobs"],
    };
    if path.len() > prefix.len()
        && path
            .iter()
            .zip(prefix)
            .all(|(p, q)| p.eq_ignore_ascii_case(q))
    {
        path.drain(..prefix.len());
    }
    path
}

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

/// A recursive-descent parser over the token list: one method per grammar rule here, the
/// moves over the tokens (peek, eat, expect) in [`cursor`].
struct Parser {
    tokens: Vec<Token>,
    /// Index of the next token to read.
    next: usize,
    /// Length of the text, the position reported for "unexpected end".
    end: usize,
    /// Current nesting of parentheses and `NOT`, bounded by [`MAX_NESTING`].
    depth: usize,
}

impl Parser {
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
        // Projected paths are read before FROM names the collection whose prefix they drop.
        let projection = match projection {
            Projection::Fields(fields) => Projection::Fields(
                fields
                    .into_iter()
                    .map(|path| strip_prefix(path, collection))
                    .collect(),
            ),
            other => other,
        };
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
        // `SELECT deviceId, properties.reported.x`: the listed properties of each document.
        if matches!(self.peek().map(|t| &t.kind), Some(TokenKind::Word(w)) if !RESERVED.contains(&w.to_ascii_lowercase().as_str()))
        {
            let mut fields = vec![self.raw_path()?];
            while self.eat_symbol(",") {
                fields.push(self.raw_path()?);
            }
            return Ok(Projection::Fields(fields));
        }
        Err(QueryError::at(
            self.position(),
            format_args!(
                "iotemu supports only SELECT *, SELECT COUNT() and SELECT of properties, found {}",
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
        let name = self.identifier("'modules' or 'jobs' after 'devices.'")?;
        if name.eq_ignore_ascii_case("modules") {
            Ok(Collection::Modules)
        } else if name.eq_ignore_ascii_case("jobs") {
            Ok(Collection::Jobs)
        } else {
            Err(QueryError::at(
                position,
                format_args!(
                    "FROM devices.{name} is not supported by iotemu; use devices, devices.modules or devices.jobs"
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

    /// `name(.name)*`, relative to the document: a leading `devices.` (or `devices.modules.`,
    /// `devices.jobs.` for those collections) names the document itself and is dropped.
    fn path(&mut self, collection: Collection) -> Result<Vec<String>, QueryError> {
        self.raw_path().map(|path| strip_prefix(path, collection))
    }

    /// `name(.name)*` as written.
    fn raw_path(&mut self) -> Result<Vec<String>, QueryError> {
        let first = self.identifier("a property name")?;
        if RESERVED.contains(&first.to_ascii_lowercase().as_str()) {
            self.next -= 1;
            return Err(self.expected("a property name"));
        }
        let mut path = vec![first];
        while self.eat_symbol(".") {
            path.push(self.identifier("a property name after '.'")?);
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

/// `-n`, when it is representable.
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
    use super::super::{MAX_QUERY_BYTES, parse};
    use super::*;

    /// The condition tree of `SELECT * FROM devices WHERE <condition>`.
    fn condition(text: &str) -> Expr {
        let query = parse(&format!("SELECT * FROM devices WHERE {text}"))
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        query.filter.expect("a WHERE clause")
    }

    fn property(path: &str) -> Box<Expr> {
        Box::new(Expr::Property(path.split('.').map(str::to_owned).collect()))
    }

    fn constant(value: Value) -> Box<Expr> {
        Box::new(Expr::Constant(value))
    }

    #[test]
    fn precedence_is_or_then_and_then_not_then_comparison() {
        let a = || Expr::Compare(property("a"), Comparison::Equal, constant(1.into()));
        let b = || Expr::Compare(property("b"), Comparison::Less, constant(2.into()));
        let c = || Expr::IsDefined(vec!["c".into()]);
        assert_eq!(
            condition("a = 1 OR b < 2 and NOT IS_DEFINED(c)"),
            Expr::Or(vec![a(), Expr::And(vec![b(), Expr::Not(Box::new(c()))])])
        );
        assert_eq!(
            condition("(a = 1 OR b < 2) AND is_defined(c)"),
            Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
        );
    }

    #[test]
    fn operators_constants_and_membership_build_their_nodes() {
        for (text, op) in [
            ("x != 1", Comparison::NotEqual),
            ("x <> 1", Comparison::NotEqual),
            ("x > 1", Comparison::Greater),
            ("x <= 1", Comparison::LessOrEqual),
            ("x >= 1", Comparison::GreaterOrEqual),
        ] {
            assert_eq!(
                condition(text),
                Expr::Compare(property("x"), op, constant(1.into())),
                "{text}"
            );
        }
        assert_eq!(
            condition("x NIN ['a', -2, true, null]"),
            Expr::Membership {
                value: property("x"),
                list: vec!["a".into(), (-2).into(), true.into(), Value::Null],
                negated: true,
            }
        );
        assert_eq!(condition("FALSE"), Expr::Constant(false.into()));
        assert_eq!(
            condition("-0x8000000000000000 = x"),
            Expr::Compare(constant(i64::MIN.into()), Comparison::Equal, property("x"),)
        );
    }

    #[test]
    fn collection_prefixes_are_dropped_from_paths() {
        assert_eq!(
            *property("tags.x"),
            match condition("devices.tags.x") {
                e @ Expr::Property(_) => e,
                other => panic!("{other:?}"),
            }
        );
        let modules =
            parse("SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm'").unwrap();
        assert_eq!(
            modules.filter,
            Some(Expr::Compare(
                property("moduleId"),
                Comparison::Equal,
                constant("m".into())
            ))
        );
        // A bare `devices` is a property of that name, not the document.
        assert_eq!(*property("devices"), condition("devices"));
    }

    #[test]
    fn negation_is_exact_at_the_edges() {
        assert_eq!(negate(&Number::from(5)), Some((-5).into()));
        assert_eq!(negate(&Number::from(1u64 << 63)), Some(i64::MIN.into()));
        assert_eq!(negate(&Number::from(u64::MAX)), None);
        assert_eq!(
            negate(&Number::from_f64(1.5).unwrap()),
            Number::from_f64(-1.5).map(Value::Number)
        );
    }

    #[test]
    fn unsupported_or_malformed_queries_name_the_problem() {
        for (text, expected) in [
            ("", "expected SELECT"),
            (
                "SELECT 1 FROM devices",
                "only SELECT *, SELECT COUNT() and SELECT of properties",
            ),
            (
                "SELECT * FROM devices.configurations",
                "devices.configurations is not supported",
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
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            "SELECT * FROM devices WHERE {}true{}",
            "(".repeat(4000),
            ")".repeat(4000)
        );
        assert!(deep.len() < MAX_QUERY_BYTES);
        assert!(parse(&deep).unwrap_err().message.contains("nests deeper"));
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
    }
}
