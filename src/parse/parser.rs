//! Recursive descent over Python's precedence levels, as Brian2's abstract code uses them.

use super::ParseError;
use super::ast::{AssignOp, BinOp, CmpOp, Expr, Literal, Statement, UnOp};
use super::lexer::{Tok, Token, tokenize};

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, ParseError> {
        Ok(Self {
            text,
            toks: tokenize(text)?,
            pos: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            column: self.toks[self.pos].pos + 1,
            message: msg.into(),
        }
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == w)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{op}'")))
        }
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        match self.peek() {
            Tok::End => Ok(()),
            t => Err(self.err(format!("unexpected {}", describe(t)))),
        }
    }

    // or_test := and_test ('or' and_test)*
    fn or_test(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.and_test()?;
        while self.is_word("or") || self.is_op("|") {
            self.pos += 1;
            let rhs = self.and_test()?;
            lhs = Expr::Binary(BinOp::Or, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and_test(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.not_test()?;
        while self.is_word("and") || self.is_op("&") {
            self.pos += 1;
            let rhs = self.not_test()?;
            lhs = Expr::Binary(BinOp::And, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn not_test(&mut self) -> Result<Expr, ParseError> {
        if self.is_word("not") || self.is_op("~") || self.is_op("!") {
            self.pos += 1;
            let e = self.not_test()?;
            return Ok(Expr::Unary(UnOp::Not, Box::new(e)));
        }
        self.comparison()
    }

    // Python chains comparisons: a < b < c means (a < b) and (b < c).
    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let first = self.arith()?;
        let mut parts: Vec<Expr> = Vec::new();
        let mut lhs = first.clone();
        loop {
            let op = match self.peek() {
                Tok::Op("<") => CmpOp::Lt,
                Tok::Op("<=") => CmpOp::Le,
                Tok::Op(">") => CmpOp::Gt,
                Tok::Op(">=") => CmpOp::Ge,
                Tok::Op("==") => CmpOp::Eq,
                Tok::Op("!=") => CmpOp::Ne,
                _ => break,
            };
            self.pos += 1;
            let rhs = self.arith()?;
            parts.push(Expr::Compare(op, Box::new(lhs), Box::new(rhs.clone())));
            lhs = rhs;
        }
        Ok(match parts.len() {
            0 => first,
            _ => parts
                .into_iter()
                .reduce(|a, b| Expr::Binary(BinOp::And, Box::new(a), Box::new(b)))
                .unwrap(),
        })
    }

    fn arith(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.term()?;
        loop {
            let op = if self.is_op("+") {
                BinOp::Add
            } else if self.is_op("-") {
                BinOp::Sub
            } else {
                break;
            };
            self.pos += 1;
            let rhs = self.term()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.factor()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("//") => BinOp::FloorDiv,
                Tok::Op("%") => BinOp::Mod,
                _ => break,
            };
            self.pos += 1;
            let rhs = self.factor()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    // factor := ('-'|'+') factor | power ; so -x**2 is -(x**2)
    fn factor(&mut self) -> Result<Expr, ParseError> {
        if self.eat_op("-") {
            let e = self.factor()?;
            return Ok(Expr::Unary(UnOp::Neg, Box::new(e)));
        }
        if self.eat_op("+") {
            let e = self.factor()?;
            return Ok(Expr::Unary(UnOp::Pos, Box::new(e)));
        }
        self.power()
    }

    // power := atom ['**' factor]  (right associative, exponent may carry a sign)
    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.atom()?;
        if self.eat_op("**") {
            let exp = self.factor()?;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let tok = self.peek().clone();
        match tok {
            Tok::Int(v) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::Int(v)))
            }
            Tok::Float(v) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::Float(v)))
            }
            Tok::Op("(") => {
                self.pos += 1;
                let e = self.or_test()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Name(name) => {
                if matches!(name.as_str(), "and" | "or" | "not") {
                    return Err(self.err(format!("'{name}' needs an operand before it")));
                }
                self.pos += 1;
                if self.eat_op("(") {
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.or_test()?);
                            if self.eat_op(")") {
                                break;
                            }
                            if !self.eat_op(",") {
                                return Err(self.err(format!(
                                    "expected ',' or ')' in the arguments of {name}()"
                                )));
                            }
                        }
                    }
                    return Ok(Expr::Call(name, args));
                }
                Ok(match name.as_str() {
                    "True" | "true" => Expr::Lit(Literal::Bool(true)),
                    "False" | "false" => Expr::Lit(Literal::Bool(false)),
                    _ => Expr::Name(name),
                })
            }
            t => Err(self.err(format!("expected an expression, found {}", describe(&t)))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(v) => format!("number {v}"),
        Tok::Float(v) => format!("number {v}"),
        Tok::Name(n) => format!("name '{n}'"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "end of text".into(),
    }
}

/// Parse one expression, e.g. `v > 10*mV` after unit stripping: `v > 0.01`.
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(text)?;
    let e = p.or_test()?;
    p.expect_end()?;
    Ok(e)
}

fn parse_statement(line: &str) -> Result<Statement, ParseError> {
    let mut p = Parser::new(line)?;
    let target = match p.peek() {
        Tok::Name(n) => n.clone(),
        t => {
            return Err(p.err(format!(
                "a statement starts with a name, found {}",
                describe(t)
            )));
        }
    };
    p.pos += 1;
    let op = match p.peek() {
        Tok::Op("=") => AssignOp::Set,
        Tok::Op(":=") => AssignOp::Declare,
        Tok::Op("+=") => AssignOp::Add,
        Tok::Op("-=") => AssignOp::Sub,
        Tok::Op("*=") => AssignOp::Mul,
        Tok::Op("/=") => AssignOp::Div,
        t => {
            return Err(p.err(format!(
                "expected an assignment (=, :=, +=, -=, *=, /=), found {}",
                describe(t)
            )));
        }
    };
    p.pos += 1;
    let expr = p.or_test()?;
    p.expect_end()?;
    Ok(Statement {
        target,
        op,
        expr,
        text: line.trim().to_string(),
    })
}

/// Parse a block of statements, one per line (`;` also separates); blank lines and
/// `#` comments are skipped.
pub fn parse_statements(text: &str) -> Result<Vec<Statement>, ParseError> {
    text.lines()
        .flat_map(|l| l.split(';'))
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(parse_statement)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_expr(s).unwrap()
    }

    #[test]
    fn numbers_in_every_form() {
        assert_eq!(p("1e-3"), Expr::Lit(Literal::Float(1e-3)));
        assert_eq!(p(".5"), Expr::Lit(Literal::Float(0.5)));
        assert_eq!(p("1."), Expr::Lit(Literal::Float(1.0)));
        assert_eq!(p("2.5E+10"), Expr::Lit(Literal::Float(2.5e10)));
        assert_eq!(p("42"), Expr::Lit(Literal::Int(42)));
        assert_eq!(p("inf"), Expr::Name("inf".into()));
        assert_eq!(p("True"), Expr::Lit(Literal::Bool(true)));
    }

    #[test]
    fn precedence_follows_python() {
        // -x**2 == -(x**2); 2**-1 allowed; ** is right associative
        assert_eq!(
            p("-x**2"),
            Expr::Unary(
                UnOp::Neg,
                Box::new(Expr::Binary(
                    BinOp::Pow,
                    Box::new(Expr::Name("x".into())),
                    Box::new(Expr::Lit(Literal::Int(2)))
                ))
            )
        );
        assert_eq!(p("a**b**c"), p("a**(b**c)"));
        assert_eq!(p("a + b * c"), p("a + (b * c)"));
        assert_eq!(p("a - b - c"), p("(a - b) - c"));
        assert_eq!(p("not a and b or c"), p("((not a) and b) or c"));
        assert_eq!(p("a < b < c"), p("(a < b) and (b < c)"));
        assert_eq!(p("a // b % c"), p("(a // b) % c"));
        assert!(matches!(p("2**-1"), Expr::Binary(BinOp::Pow, _, _)));
    }

    #[test]
    fn statements() {
        let s = parse_statements("_v := v + dt*(-v/tau)  # comment\n\nv = _v\nw += 1.0").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].op, AssignOp::Declare);
        assert_eq!(s[2].op, AssignOp::Add);
        assert_eq!(s[2].target, "w");
    }

    #[test]
    fn errors_name_text_and_column() {
        let e = parse_expr("v + * 3").unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.to_string().contains("`v + * 3`"));
        let e = parse_statements("v + 1").unwrap_err();
        assert!(e.message.contains("assignment"), "{e}");
        let e = parse_expr("exp(x").unwrap_err();
        assert!(e.message.contains("')'"), "{e}");
        assert!(parse_expr("1e+").is_err());
        assert!(parse_expr("v $ 2").is_err());
    }
}
