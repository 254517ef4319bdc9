//! Pratt parser producing the same tree shapes as upstream's (jmespath-community) parser, so
//! that the interpreter can reproduce upstream's evaluation rules node by node.

use super::error::JmesPathError;
use super::lexer::{Token, TokenKind, tokenize};
use serde_json::Value;

/// A parsed JMESPath expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `foo`: a field of the current object.
    Field(String),
    /// A `'raw string'` or a `` `json` `` literal.
    Literal(Value),
    /// `@`, or the implicit current node of projections.
    Current,
    /// `$`: the whole document being searched.
    Root,
    /// `[n]` applied to the current node.
    Index(i64),
    /// `[start:stop:step]` applied to the current node.
    Slice([Option<i64>; 3]),
    /// `lhs.rhs`.
    Subexpression(Box<Node>, Box<Node>),
    /// `lhs[index]` or `lhs[slice]`.
    IndexExpression(Box<Node>, Box<Node>),
    /// `lhs[*]rhs` (also used for slices and flattening): `rhs` applied to each element.
    Projection(Box<Node>, Box<Node>),
    /// `lhs.*rhs`: `rhs` applied to each value of an object.
    ValueProjection(Box<Node>, Box<Node>),
    /// `lhs[?condition]rhs`.
    FilterProjection {
        source: Box<Node>,
        projection: Box<Node>,
        condition: Box<Node>,
    },
    /// `lhs[]`: one level of nested arrays flattened.
    Flatten(Box<Node>),
    /// `[a, b]`.
    MultiSelectList(Vec<Node>),
    /// `{a: x, b: y}`.
    MultiSelectHash(Vec<(String, Node)>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Pipe(Box<Node>, Box<Node>),
    Comparison(Comparator, Box<Node>, Box<Node>),
    Arithmetic(ArithmeticOperator, Box<Node>, Box<Node>),
    /// Unary `+x` (`false`) or `-x` (`true`).
    Sign {
        negate: bool,
        operand: Box<Node>,
    },
    Function {
        name: String,
        args: Vec<Node>,
    },
    /// `&expression`, only meaningful as a function argument.
    Expref(Box<Node>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithmeticOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    /// `//`: floored division.
    IntegerDivide,
}

/// Parses a JMESPath expression.
/// Deepest nesting of sub-expressions accepted. Parsing and evaluation recurse per level, so
/// without a bound a policy could overflow the stack of the thread evaluating it.
const MAX_NESTING: usize = 128;

pub(crate) fn parse(expression: &str) -> Result<Node, JmesPathError> {
    let mut parser = Parser {
        tokens: tokenize(expression)?,
        index: 0,
        depth: 0,
    };
    let node = parser.expression(0)?;
    if parser.current() != &TokenKind::Eof {
        return Err(parser.error(format!(
            "Unexpected token at the end of the expression: {}",
            parser.current().name()
        )));
    }
    Ok(node)
}

const CURRENT: Node = Node::Current;

struct Parser {
    tokens: Vec<Token>,
    index: usize,
    /// How many `expression` calls are in progress.
    depth: usize,
}

impl Parser {
    fn token(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.index + ahead).min(last)]
    }

    fn current(&self) -> &TokenKind {
        &self.token(0).kind
    }

    fn advance(&mut self) -> Token {
        let token = self.token(0).clone();
        if self.index < self.tokens.len() - 1 {
            self.index += 1;
        }
        token
    }

    fn error(&self, message: impl Into<String>) -> JmesPathError {
        JmesPathError::syntax(message, self.token(0).offset)
    }

    fn expect(&mut self, kind: &TokenKind) -> Result<(), JmesPathError> {
        if std::mem::discriminant(self.current()) == std::mem::discriminant(kind) {
            self.advance();
            Ok(())
        } else {
            Err(self.error(format!(
                "Expected {}, received: {}",
                kind.name(),
                self.current().name()
            )))
        }
    }

    fn expression(&mut self, binding_power: u8) -> Result<Node, JmesPathError> {
        if self.depth == MAX_NESTING {
            return Err(self.error(format!(
                "expression nested more than {MAX_NESTING} levels deep"
            )));
        }
        self.depth += 1;
        let node = self.nested_expression(binding_power);
        self.depth -= 1;
        node
    }

    fn nested_expression(&mut self, binding_power: u8) -> Result<Node, JmesPathError> {
        let token = self.advance();
        let mut left = self.nud(token)?;
        while binding_power < self.current().binding_power() {
            let token = self.advance();
            left = self.led(token, left)?;
        }
        Ok(left)
    }

    fn nud(&mut self, token: Token) -> Result<Node, JmesPathError> {
        match token.kind {
            TokenKind::JsonLiteral(raw) => serde_json::from_str(&raw)
                .map(Node::Literal)
                .map_err(|error| JmesPathError::syntax(error.to_string(), token.offset)),
            TokenKind::StringLiteral(value) => Ok(Node::Literal(Value::String(value))),
            TokenKind::UnquotedIdentifier(name) => Ok(Node::Field(name)),
            TokenKind::QuotedIdentifier(name) => {
                if self.current() == &TokenKind::Lparen {
                    return Err(JmesPathError::syntax(
                        "Can't have quoted identifier as function name.",
                        token.offset,
                    ));
                }
                Ok(Node::Field(name))
            }
            TokenKind::Plus | TokenKind::Minus => {
                let negate = token.kind == TokenKind::Minus;
                let operand = self.expression(token.kind.binding_power())?;
                Ok(Node::Sign {
                    negate,
                    operand: Box::new(operand),
                })
            }
            TokenKind::Star => {
                let right = if self.current() == &TokenKind::Rbracket {
                    CURRENT
                } else {
                    self.projection_rhs(TokenKind::Star.binding_power())?
                };
                Ok(Node::ValueProjection(Box::new(CURRENT), Box::new(right)))
            }
            TokenKind::Filter => self.filter(CURRENT),
            TokenKind::Lbrace => self.multi_select_hash(),
            TokenKind::Flatten => {
                let right = self.projection_rhs(TokenKind::Flatten.binding_power())?;
                Ok(Node::Projection(
                    Box::new(Node::Flatten(Box::new(CURRENT))),
                    Box::new(right),
                ))
            }
            TokenKind::Lbracket => match self.current() {
                TokenKind::Number(_) | TokenKind::Colon => {
                    let right = self.index_expression()?;
                    self.project_if_slice(CURRENT, right)
                }
                TokenKind::Star if self.token(1).kind == TokenKind::Rbracket => {
                    self.advance();
                    self.advance();
                    let right = self.projection_rhs(TokenKind::Star.binding_power())?;
                    Ok(Node::Projection(Box::new(CURRENT), Box::new(right)))
                }
                _ => self.multi_select_list(),
            },
            TokenKind::Current => Ok(Node::Current),
            TokenKind::Root => Ok(Node::Root),
            TokenKind::Expref => {
                let expression = self.expression(TokenKind::Expref.binding_power())?;
                Ok(Node::Expref(Box::new(expression)))
            }
            TokenKind::Not => {
                let expression = self.expression(TokenKind::Not.binding_power())?;
                Ok(Node::Not(Box::new(expression)))
            }
            TokenKind::Lparen => {
                let expression = self.expression(0)?;
                self.expect(&TokenKind::Rparen)?;
                Ok(expression)
            }
            TokenKind::Eof => Err(JmesPathError::syntax("Incomplete expression", token.offset)),
            other => Err(JmesPathError::syntax(
                format!("Invalid token: {}", other.name()),
                token.offset,
            )),
        }
    }

    fn led(&mut self, token: Token, left: Node) -> Result<Node, JmesPathError> {
        let boxed = Box::new(left);
        let power = token.kind.binding_power();
        match token.kind {
            TokenKind::Dot => {
                if self.current() != &TokenKind::Star {
                    let right = self.dot_rhs(power)?;
                    return Ok(Node::Subexpression(boxed, Box::new(right)));
                }
                self.advance();
                let right = self.projection_rhs(power)?;
                Ok(Node::ValueProjection(boxed, Box::new(right)))
            }
            TokenKind::Pipe => Ok(Node::Pipe(boxed, Box::new(self.expression(power)?))),
            TokenKind::Or => Ok(Node::Or(boxed, Box::new(self.expression(power)?))),
            TokenKind::And => Ok(Node::And(boxed, Box::new(self.expression(power)?))),
            TokenKind::Lparen => {
                let Node::Field(name) = *boxed else {
                    return Err(JmesPathError::syntax(
                        "Invalid node as function name.",
                        token.offset,
                    ));
                };
                let mut args = Vec::new();
                while self.current() != &TokenKind::Rparen {
                    let argument = self.expression(0)?;
                    if self.current() == &TokenKind::Comma {
                        self.advance();
                    }
                    args.push(argument);
                }
                self.expect(&TokenKind::Rparen)?;
                Ok(Node::Function { name, args })
            }
            TokenKind::Filter => self.filter(*boxed),
            TokenKind::Flatten => {
                let right = self.projection_rhs(power)?;
                Ok(Node::Projection(
                    Box::new(Node::Flatten(boxed)),
                    Box::new(right),
                ))
            }
            TokenKind::Plus
            | TokenKind::Minus
            | TokenKind::Star
            | TokenKind::Multiply
            | TokenKind::Divide
            | TokenKind::Modulo
            | TokenKind::Div => {
                let operator = match token.kind {
                    TokenKind::Plus => ArithmeticOperator::Add,
                    TokenKind::Minus => ArithmeticOperator::Subtract,
                    TokenKind::Divide => ArithmeticOperator::Divide,
                    TokenKind::Modulo => ArithmeticOperator::Modulo,
                    TokenKind::Div => ArithmeticOperator::IntegerDivide,
                    _ => ArithmeticOperator::Multiply,
                };
                let right = self.expression(power)?;
                Ok(Node::Arithmetic(operator, boxed, Box::new(right)))
            }
            TokenKind::Eq
            | TokenKind::Ne
            | TokenKind::Gt
            | TokenKind::Gte
            | TokenKind::Lt
            | TokenKind::Lte => {
                let comparator = match token.kind {
                    TokenKind::Eq => Comparator::Equal,
                    TokenKind::Ne => Comparator::NotEqual,
                    TokenKind::Gt => Comparator::Greater,
                    TokenKind::Gte => Comparator::GreaterOrEqual,
                    TokenKind::Lt => Comparator::Less,
                    _ => Comparator::LessOrEqual,
                };
                let right = self.expression(power)?;
                Ok(Node::Comparison(comparator, boxed, Box::new(right)))
            }
            TokenKind::Lbracket => {
                if matches!(self.current(), TokenKind::Number(_) | TokenKind::Colon) {
                    let right = self.index_expression()?;
                    return self.project_if_slice(*boxed, right);
                }
                self.expect(&TokenKind::Star)?;
                self.expect(&TokenKind::Rbracket)?;
                let right = self.projection_rhs(TokenKind::Star.binding_power())?;
                Ok(Node::Projection(boxed, Box::new(right)))
            }
            other => Err(JmesPathError::syntax(
                format!("Unexpected token: {}", other.name()),
                token.offset,
            )),
        }
    }

    fn index_expression(&mut self) -> Result<Node, JmesPathError> {
        if self.current() == &TokenKind::Colon || self.token(1).kind == TokenKind::Colon {
            return self.slice_expression();
        }
        let TokenKind::Number(index) = *self.current() else {
            return Err(self.error(format!(
                "Expected TOKNumber, received: {}",
                self.current().name()
            )));
        };
        self.advance();
        self.expect(&TokenKind::Rbracket)?;
        Ok(Node::Index(index))
    }

    fn slice_expression(&mut self) -> Result<Node, JmesPathError> {
        let mut parts = [None; 3];
        let mut part = 0;
        while self.current() != &TokenKind::Rbracket {
            match *self.current() {
                TokenKind::Colon => {
                    part += 1;
                    if part == 3 {
                        return Err(self.error("Too many colons in slice expression"));
                    }
                    self.advance();
                }
                TokenKind::Number(value) => {
                    parts[part] = Some(value);
                    self.advance();
                }
                _ => {
                    return Err(self.error(format!(
                        "Expected tColon or tNumber, received: {}",
                        self.current().name()
                    )));
                }
            }
        }
        self.expect(&TokenKind::Rbracket)?;
        Ok(Node::Slice(parts))
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, JmesPathError> {
        let is_slice = matches!(right, Node::Slice(_));
        let index_expression = Node::IndexExpression(Box::new(left), Box::new(right));
        if !is_slice {
            return Ok(index_expression);
        }
        let projection = self.projection_rhs(TokenKind::Star.binding_power())?;
        Ok(Node::Projection(
            Box::new(index_expression),
            Box::new(projection),
        ))
    }

    fn filter(&mut self, source: Node) -> Result<Node, JmesPathError> {
        let condition = self.expression(0)?;
        self.expect(&TokenKind::Rbracket)?;
        let projection = if self.current() == &TokenKind::Flatten {
            CURRENT
        } else {
            self.projection_rhs(TokenKind::Filter.binding_power())?
        };
        Ok(Node::FilterProjection {
            source: Box::new(source),
            projection: Box::new(projection),
            condition: Box::new(condition),
        })
    }

    fn dot_rhs(&mut self, binding_power: u8) -> Result<Node, JmesPathError> {
        match self.current() {
            TokenKind::QuotedIdentifier(_) | TokenKind::UnquotedIdentifier(_) | TokenKind::Star => {
                self.expression(binding_power)
            }
            TokenKind::Lbracket => {
                self.advance();
                self.multi_select_list()
            }
            TokenKind::Lbrace => {
                self.advance();
                self.multi_select_hash()
            }
            _ => Err(self.error("Expected identifier, lbracket, or lbrace")),
        }
    }

    fn projection_rhs(&mut self, binding_power: u8) -> Result<Node, JmesPathError> {
        match self.current() {
            kind if kind.binding_power() < 10 => Ok(CURRENT),
            TokenKind::Lbracket | TokenKind::Filter => self.expression(binding_power),
            TokenKind::Dot => {
                self.advance();
                self.dot_rhs(binding_power)
            }
            _ => Err(self.error("Error")),
        }
    }

    fn multi_select_list(&mut self) -> Result<Node, JmesPathError> {
        let mut elements = Vec::new();
        loop {
            elements.push(self.expression(0)?);
            if self.current() == &TokenKind::Rbracket {
                break;
            }
            self.expect(&TokenKind::Comma)?;
        }
        self.expect(&TokenKind::Rbracket)?;
        Ok(Node::MultiSelectList(elements))
    }

    fn multi_select_hash(&mut self) -> Result<Node, JmesPathError> {
        let mut entries = Vec::new();
        loop {
            let key = match self.advance().kind {
                TokenKind::UnquotedIdentifier(key) | TokenKind::QuotedIdentifier(key) => key,
                _ => {
                    return Err(self.error("Expected tQuotedIdentifier or tUnquotedIdentifier"));
                }
            };
            self.expect(&TokenKind::Colon)?;
            entries.push((key, self.expression(0)?));
            match self.current() {
                TokenKind::Comma => {
                    self.advance();
                }
                TokenKind::Rbrace => {
                    self.advance();
                    break;
                }
                _ => {}
            }
        }
        Ok(Node::MultiSelectHash(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> Box<Node> {
        Box::new(Node::Field(name.to_owned()))
    }

    #[test]
    fn parses_paths_indexes_and_pipes() {
        assert_eq!(
            parse("a.b[0] | c"),
            Ok(Node::Pipe(
                Box::new(Node::Subexpression(
                    field("a"),
                    Box::new(Node::IndexExpression(field("b"), Box::new(Node::Index(0)))),
                )),
                field("c"),
            ))
        );
    }

    #[test]
    fn parses_filters_and_flattening_as_upstream() {
        assert_eq!(
            parse("a[?b == `1`].c"),
            Ok(Node::FilterProjection {
                source: field("a"),
                projection: field("c"),
                condition: Box::new(Node::Comparison(
                    Comparator::Equal,
                    field("b"),
                    Box::new(Node::Literal(json!(1))),
                )),
            })
        );
        assert_eq!(
            parse("a[].b"),
            Ok(Node::Projection(
                Box::new(Node::Flatten(field("a"))),
                field("b")
            ))
        );
    }

    #[test]
    fn parses_functions_with_exprefs() {
        assert_eq!(
            parse("sort_by(@, &name)"),
            Ok(Node::Function {
                name: "sort_by".into(),
                args: vec![Node::Current, Node::Expref(field("name"))],
            })
        );
    }

    #[test]
    fn parses_arithmetic_with_precedence() {
        assert_eq!(
            parse("a + b * `2`"),
            Ok(Node::Arithmetic(
                ArithmeticOperator::Add,
                field("a"),
                Box::new(Node::Arithmetic(
                    ArithmeticOperator::Multiply,
                    field("b"),
                    Box::new(Node::Literal(json!(2))),
                )),
            ))
        );
    }

    #[test]
    fn rejects_deep_nesting_instead_of_overflowing_the_stack() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let error = parse(&deep).expect_err("too deep");
        assert!(
            error.to_string().contains("nested more than 128 levels"),
            "{error}"
        );
        let parenthesised = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&parenthesised).is_err());
        let fine = format!("{}1{}", "[".repeat(50), "]".repeat(50));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn reports_syntax_errors() {
        for invalid in [
            "a.", "a[", "foo(", "a ==", "{a}", "\"a\"()", "`{bad`", "a b",
        ] {
            assert!(
                matches!(parse(invalid), Err(JmesPathError::Syntax { .. })),
                "{invalid}"
            );
        }
    }
}
