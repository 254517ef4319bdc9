//! Tokenizer of the JMESPath dialect Kyverno uses (jmespath-community): standard JMESPath plus
//! arithmetic operators and `$` for the root document.

use super::error::JmesPathError;

/// A token kind; names follow upstream's (`TOKRbracket` ...) in error messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Star,
    Dot,
    Filter,
    Flatten,
    Lparen,
    Rparen,
    Lbracket,
    Rbracket,
    Lbrace,
    Rbrace,
    Or,
    Pipe,
    Number(i64),
    UnquotedIdentifier(String),
    QuotedIdentifier(String),
    Comma,
    Colon,
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Div,
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
    Ne,
    /// The raw text between backticks, parsed as JSON by the parser.
    JsonLiteral(String),
    StringLiteral(String),
    Current,
    Root,
    Expref,
    And,
    Not,
    Unknown,
    Eof,
}

impl TokenKind {
    /// Upstream's name of the token kind, for error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TokenKind::Star => "TOKStar",
            TokenKind::Dot => "TOKDot",
            TokenKind::Filter => "TOKFilter",
            TokenKind::Flatten => "TOKFlatten",
            TokenKind::Lparen => "TOKLparen",
            TokenKind::Rparen => "TOKRparen",
            TokenKind::Lbracket => "TOKLbracket",
            TokenKind::Rbracket => "TOKRbracket",
            TokenKind::Lbrace => "TOKLbrace",
            TokenKind::Rbrace => "TOKRbrace",
            TokenKind::Or => "TOKOr",
            TokenKind::Pipe => "TOKPipe",
            TokenKind::Number(_) => "TOKNumber",
            TokenKind::UnquotedIdentifier(_) => "TOKUnquotedIdentifier",
            TokenKind::QuotedIdentifier(_) => "TOKQuotedIdentifier",
            TokenKind::Comma => "TOKComma",
            TokenKind::Colon => "TOKColon",
            TokenKind::Plus => "TOKPlus",
            TokenKind::Minus => "TOKMinus",
            TokenKind::Multiply => "TOKMultiply",
            TokenKind::Divide => "TOKDivide",
            TokenKind::Modulo => "TOKModulo",
            TokenKind::Div => "TOKDiv",
            TokenKind::Lt => "TOKLT",
            TokenKind::Lte => "TOKLTE",
            TokenKind::Gt => "TOKGT",
            TokenKind::Gte => "TOKGTE",
            TokenKind::Eq => "TOKEQ",
            TokenKind::Ne => "TOKNE",
            TokenKind::JsonLiteral(_) => "TOKJSONLiteral",
            TokenKind::StringLiteral(_) => "TOKStringLiteral",
            TokenKind::Current => "TOKCurrent",
            TokenKind::Root => "TOKRoot",
            TokenKind::Expref => "TOKExpref",
            TokenKind::And => "TOKAnd",
            TokenKind::Not => "TOKNot",
            TokenKind::Unknown => "TOKUnknown",
            TokenKind::Eof => "TOKEOF",
        }
    }

    /// Left binding power in the Pratt parser, as upstream's table.
    pub(crate) fn binding_power(&self) -> u8 {
        match self {
            TokenKind::Pipe => 1,
            TokenKind::Or => 2,
            TokenKind::And => 3,
            TokenKind::Eq
            | TokenKind::Lt
            | TokenKind::Lte
            | TokenKind::Gt
            | TokenKind::Gte
            | TokenKind::Ne => 5,
            TokenKind::Minus | TokenKind::Plus => 6,
            TokenKind::Div | TokenKind::Divide | TokenKind::Modulo | TokenKind::Multiply => 7,
            TokenKind::Flatten => 9,
            TokenKind::Star => 20,
            TokenKind::Filter => 21,
            TokenKind::Dot => 40,
            TokenKind::Not => 45,
            TokenKind::Lbrace => 50,
            TokenKind::Lbracket => 55,
            TokenKind::Lparen => 60,
            _ => 0,
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) offset: usize,
}

/// Splits `expression` into tokens, ending with [`TokenKind::Eof`].
pub(crate) fn tokenize(expression: &str) -> Result<Vec<Token>, JmesPathError> {
    let mut lexer = Lexer {
        expression,
        position: 0,
    };
    let mut tokens = Vec::new();
    while let Some(c) = lexer.peek() {
        let offset = lexer.position;
        lexer.position += c.len_utf8();
        let kind = match c {
            'a'..='z' | 'A'..='Z' | '_' => lexer.unquoted_identifier(offset),
            '.' => TokenKind::Dot,
            '*' => TokenKind::Star,
            ',' => TokenKind::Comma,
            ':' => TokenKind::Colon,
            '{' => TokenKind::Lbrace,
            '}' => TokenKind::Rbrace,
            ']' => TokenKind::Rbracket,
            '(' => TokenKind::Lparen,
            ')' => TokenKind::Rparen,
            '@' => TokenKind::Current,
            '$' => TokenKind::Root,
            '+' => TokenKind::Plus,
            '%' => TokenKind::Modulo,
            '\u{2212}' => TokenKind::Minus,
            '\u{d7}' => TokenKind::Multiply,
            '\u{f7}' => TokenKind::Divide,
            '-' if lexer.peek().is_some_and(|next| next.is_ascii_digit()) => {
                lexer.number(offset)?
            }
            '-' => TokenKind::Minus,
            '0'..='9' => lexer.number(offset)?,
            '/' => lexer.either('/', TokenKind::Div, TokenKind::Divide),
            '[' => lexer.left_bracket(),
            '"' => lexer.quoted_identifier()?,
            '\'' => lexer.raw_string()?,
            '`' => lexer.json_literal()?,
            '|' => lexer.either('|', TokenKind::Or, TokenKind::Pipe),
            '<' => lexer.either('=', TokenKind::Lte, TokenKind::Lt),
            '>' => lexer.either('=', TokenKind::Gte, TokenKind::Gt),
            '!' => lexer.either('=', TokenKind::Ne, TokenKind::Not),
            '=' => lexer.either('=', TokenKind::Eq, TokenKind::Unknown),
            '&' => lexer.either('&', TokenKind::And, TokenKind::Expref),
            ' ' | '\t' | '\n' | '\r' => continue,
            other => {
                return Err(JmesPathError::syntax(
                    format!("Unknown char: {}", other.escape_default()),
                    offset,
                ));
            }
        };
        tokens.push(Token { kind, offset });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        offset: expression.len(),
    });
    Ok(tokens)
}

struct Lexer<'a> {
    expression: &'a str,
    position: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.expression[self.position..].chars().next()
    }

    fn either(&mut self, second: char, matched: TokenKind, single: TokenKind) -> TokenKind {
        if self.peek() == Some(second) {
            self.position += second.len_utf8();
            matched
        } else {
            single
        }
    }

    fn left_bracket(&mut self) -> TokenKind {
        match self.peek() {
            Some('?') => {
                self.position += 1;
                TokenKind::Filter
            }
            Some(']') => {
                self.position += 1;
                TokenKind::Flatten
            }
            _ => TokenKind::Lbracket,
        }
    }

    fn unquoted_identifier(&mut self, start: usize) -> TokenKind {
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.position += 1;
        }
        TokenKind::UnquotedIdentifier(self.expression[start..self.position].to_owned())
    }

    fn number(&mut self, start: usize) -> Result<TokenKind, JmesPathError> {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.position += 1;
        }
        let text = &self.expression[start..self.position];
        text.parse().map(TokenKind::Number).map_err(|_| {
            JmesPathError::syntax(format!("invalid number {text}: value out of range"), start)
        })
    }

    /// Consumes up to the closing `end` (backslash escapes the next char), returning the raw
    /// text in between.
    fn until(&mut self, end: char) -> Result<&str, JmesPathError> {
        let start = self.position;
        let mut escaped = false;
        for (index, c) in self.expression[start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == end {
                self.position = start + index + c.len_utf8();
                return Ok(&self.expression[start..start + index]);
            }
        }
        Err(JmesPathError::syntax(
            format!("Unclosed delimiter: {end}"),
            self.expression.len(),
        ))
    }

    fn quoted_identifier(&mut self) -> Result<TokenKind, JmesPathError> {
        let start = self.position;
        let raw = self.until('"')?;
        serde_json::from_str::<String>(&format!("\"{raw}\""))
            .map(TokenKind::QuotedIdentifier)
            .map_err(|error| JmesPathError::syntax(error.to_string(), start))
    }

    fn json_literal(&mut self) -> Result<TokenKind, JmesPathError> {
        let raw = self.until('`')?;
        Ok(TokenKind::JsonLiteral(raw.replace("\\`", "`")))
    }

    /// A `'raw string'`: `\'` and `\\` are escapes, any other backslash is literal.
    fn raw_string(&mut self) -> Result<TokenKind, JmesPathError> {
        let mut value = String::new();
        let mut chars = self.expression[self.position..].char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '\'' => {
                    self.position += index + 1;
                    return Ok(TokenKind::StringLiteral(value));
                }
                '\\' => match chars.clone().next() {
                    Some((_, escaped @ ('\'' | '\\'))) => {
                        chars.next();
                        value.push(escaped);
                    }
                    _ => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        Err(JmesPathError::syntax(
            "Unclosed delimiter: '",
            self.expression.len(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(expression: &str) -> Vec<TokenKind> {
        tokenize(expression)
            .map(|tokens| tokens.into_iter().map(|token| token.kind).collect())
            .unwrap_or_default()
    }

    #[test]
    fn tokenizes_operators_and_literals() {
        assert_eq!(
            kinds("a[?b == `1`] || 'x\\'y' && -2"),
            vec![
                TokenKind::UnquotedIdentifier("a".into()),
                TokenKind::Filter,
                TokenKind::UnquotedIdentifier("b".into()),
                TokenKind::Eq,
                TokenKind::JsonLiteral("1".into()),
                TokenKind::Rbracket,
                TokenKind::Or,
                TokenKind::StringLiteral("x'y".into()),
                TokenKind::And,
                TokenKind::Number(-2),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn raw_strings_keep_unknown_escapes() {
        assert_eq!(
            kinds(r"'\s*a\\b'"),
            vec![TokenKind::StringLiteral(r"\s*a\b".into()), TokenKind::Eof]
        );
    }

    #[test]
    fn quoted_identifiers_are_json_decoded() {
        assert_eq!(
            kinds(r#""a\"b.c""#),
            vec![TokenKind::QuotedIdentifier("a\"b.c".into()), TokenKind::Eof]
        );
    }

    #[test]
    fn rejects_unknown_characters_and_unclosed_delimiters() {
        assert!(matches!(
            tokenize("a # b"),
            Err(JmesPathError::Syntax { .. })
        ));
        assert!(matches!(
            tokenize("'abc"),
            Err(JmesPathError::Syntax { .. })
        ));
        assert!(matches!(
            tokenize("`abc"),
            Err(JmesPathError::Syntax { .. })
        ));
    }
}
