//! The parser's moves over the token list: look at the next token, take it if it is the
//! keyword or symbol a rule wants, or fail with an error naming what was expected and what
//! was found instead, at the token's position.

use super::super::QueryError;
use super::super::lexer::{Token, TokenKind};
use super::Parser;

impl Parser {
    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    pub(super) fn position(&self) -> usize {
        self.peek().map_or(self.end, |t| t.position)
    }

    pub(super) fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    pub(super) fn peek_word(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    pub(super) fn peek_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Symbol(s), .. }) if *s == symbol)
    }

    pub(super) fn eat_word(&mut self, keyword: &str) -> bool {
        let found = self.peek_word(keyword);
        if found {
            self.next += 1;
        }
        found
    }

    pub(super) fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.peek_symbol(symbol);
        if found {
            self.next += 1;
        }
        found
    }

    pub(super) fn describe_next(&self) -> String {
        match self.peek().map(|t| &t.kind) {
            None => "the end of the query".to_owned(),
            Some(TokenKind::Word(w)) => format!("'{w}'"),
            Some(TokenKind::Text(t)) => format!("the string '{t}'"),
            Some(TokenKind::Number(n)) => format!("the number {n}"),
            Some(TokenKind::Symbol(s)) => format!("'{s}'"),
        }
    }

    pub(super) fn expected(&self, what: &str) -> QueryError {
        QueryError::at(
            self.position(),
            format_args!("expected {what}, found {}", self.describe_next()),
        )
    }

    pub(super) fn expect_word(&mut self, keyword: &str) -> Result<(), QueryError> {
        if self.eat_word(keyword) {
            Ok(())
        } else {
            Err(self.expected(&keyword.to_ascii_uppercase()))
        }
    }

    pub(super) fn expect_symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{symbol}'")))
        }
    }

    pub(super) fn identifier(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().map(|t| &t.kind) {
            Some(TokenKind::Word(w)) => {
                let w = w.clone();
                self.next += 1;
                Ok(w)
            }
            _ => Err(self.expected(what)),
        }
    }
}
