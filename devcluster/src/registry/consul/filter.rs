//! Consul's `?filter=` expressions (go-bexpr's language), evaluated on the JSON each read
//! answers with, so a selector names the fields a client sees (`Service.Port`, `Service.Tags`,
//! `Service.Meta.version`, `Checks.Status`). Ignoring a filter would hand a client more than it
//! asked for, so one that does not parse, or names a field the answer does not have, is a 400.
//!
//! Grammar: `or` / `and` / `not` / parentheses over matches:
//! `S == V`, `S != V`, `S is empty`, `S is not empty`, `V in S`, `V not in S`, `S contains V`,
//! `S not contains V`, `S matches V`, `S not matches V`. A value is `"quoted"`, `` `raw` `` or a
//! bare word. A selector through a list (`Checks.Status`) matches when any element does.

use regex::Regex;
use serde_json::Value;

#[derive(Debug)]
pub(super) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match { selector: Vec<String>, op: Op },
}

#[derive(Debug)]
pub(super) enum Op {
    Equal(String),
    NotEqual(String),
    Empty(bool),
    /// Membership (`in`, `contains`): a list holds it, a map has the key, a string contains it.
    Has(String, bool),
    Matches(Regex, bool),
}

/// Fields whose values are maps: any key may be asked for (a missing one is empty).
const MAPS: [&str; 5] = [
    "Meta",
    "NodeMeta",
    "ServiceMeta",
    "TaggedAddresses",
    "ServiceTaggedAddresses",
];

impl Expr {
    pub(super) fn parse(text: &str) -> Result<Expr, String> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, at: 0 };
        let e = p.or()?;
        match p.peek() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
        }
    }

    /// Whether `v` (one element of an answer) matches; an error names a selector the answer
    /// does not have.
    pub(super) fn eval(&self, v: &Value) -> Result<bool, String> {
        Ok(match self {
            Expr::Or(a, b) => a.eval(v)? || b.eval(v)?,
            Expr::And(a, b) => a.eval(v)? && b.eval(v)?,
            Expr::Not(a) => !a.eval(v)?,
            Expr::Match { selector, op } => {
                let mut found = Vec::new();
                select(v, selector, false, &mut found)
                    .map_err(|()| format!("Selector {:?} is not valid", selector.join(".")))?;
                match op {
                    // Through a list: any element; nothing there: only "not equal" holds.
                    Op::Equal(want) => found.iter().any(|x| equals(x, want)),
                    Op::NotEqual(want) => !found.iter().any(|x| equals(x, want)),
                    Op::Empty(empty) => found.iter().all(|x| is_empty(x)) == *empty,
                    Op::Has(want, has) => found.iter().any(|x| holds(x, want)) == *has,
                    Op::Matches(re, m) => {
                        found
                            .iter()
                            .any(|x| scalar(x).is_some_and(|s| re.is_match(&s)))
                            == *m
                    }
                }
            }
        })
    }
}

/// Collects the values at `path` under `v`; a list on the way is looked through, element by
/// element. A field missing from an object that is not a map is an invalid selector.
fn select<'v>(
    v: &'v Value,
    path: &[String],
    in_map: bool,
    out: &mut Vec<&'v Value>,
) -> Result<(), ()> {
    let Some((first, rest)) = path.split_first() else {
        out.push(v);
        return Ok(());
    };
    match v {
        Value::Array(items) => {
            for item in items {
                select(item, path, in_map, out)?;
            }
            Ok(())
        }
        Value::Object(m) => match m.get(first) {
            Some(next) => select(next, rest, MAPS.contains(&first.as_str()), out),
            None if in_map => Ok(()),
            None => Err(()),
        },
        Value::Null => Ok(()),
        _ => Err(()),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// As go-bexpr coerces the value to the field's type: numbers as numbers, booleans as
/// booleans, the rest as text.
fn equals(v: &Value, want: &str) -> bool {
    match v {
        Value::Number(n) => match (n.as_f64(), want.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => matches!(
            (b, want),
            (true, "true" | "True" | "TRUE" | "t" | "T" | "1")
                | (false, "false" | "False" | "FALSE" | "f" | "F" | "0")
        ),
        Value::String(s) => s == want,
        _ => false,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn holds(v: &Value, want: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|x| equals(x, want)),
        Value::Object(m) => m.contains_key(want),
        Value::String(s) => s.contains(want),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Eq,
    Ne,
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '=' | '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err(format!("expected {c}= in the filter"));
                }
                out.push(if c == '=' { Token::Eq } else { Token::Ne });
            }
            '"' | '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("a value opened with {c} is never closed")),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(other) => s.push(other),
                            None => return Err("a value ends in a lone \\".into()),
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push(Token::Quoted(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '=' | '!' | '"' | '`') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let e = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err("a ( is never closed".into());
            }
            return Ok(e);
        }
        self.matching()
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => Ok(w),
            other => Err(format!("expected a value, got {other:?}")),
        }
    }

    fn selector(word: &str) -> Result<Vec<String>, String> {
        let parts: Vec<String> = word.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("{word:?} is not a selector"));
        }
        Ok(parts)
    }

    fn matching(&mut self) -> Result<Expr, String> {
        let first = self
            .next()
            .ok_or("the filter ends where a match was expected")?;
        // `V in S` / `V not in S`: the value first.
        let negated_in = self.keyword("not")
            && matches!(self.tokens.get(self.at + 1), Some(Token::Word(w)) if w.eq_ignore_ascii_case("in"));
        if self.keyword("in") || negated_in {
            self.at += if negated_in { 2 } else { 1 };
            let (Token::Word(v) | Token::Quoted(v)) = first else {
                return Err("expected a value before in".into());
            };
            let Some(Token::Word(s)) = self.next() else {
                return Err("expected a selector after in".into());
            };
            return Ok(Expr::Match {
                selector: Self::selector(&s)?,
                op: Op::Has(v, !negated_in),
            });
        }
        let Token::Word(s) = first else {
            return Err(format!("expected a selector, got {first:?}"));
        };
        let selector = Self::selector(&s)?;
        let op = match self.next() {
            Some(Token::Eq) => Op::Equal(self.value()?),
            Some(Token::Ne) => Op::NotEqual(self.value()?),
            Some(Token::Word(w)) => {
                let mut w = w.to_ascii_lowercase();
                let mut negated = false;
                if w == "not" {
                    negated = true;
                    w = match self.next() {
                        Some(Token::Word(x)) => x.to_ascii_lowercase(),
                        other => {
                            return Err(format!("expected an operator after not, got {other:?}"));
                        }
                    };
                }
                match w.as_str() {
                    "is" if !negated => {
                        let not = self.keyword("not");
                        if not {
                            self.at += 1;
                        }
                        if !self.keyword("empty") {
                            return Err("expected empty after is".into());
                        }
                        self.at += 1;
                        Op::Empty(!not)
                    }
                    "contains" => Op::Has(self.value()?, !negated),
                    "matches" => {
                        let pattern = self.value()?;
                        let re = Regex::new(&pattern)
                            .map_err(|e| format!("bad regular expression {pattern:?}: {e}"))?;
                        Op::Matches(re, !negated)
                    }
                    other => return Err(format!("unknown operator {other:?}")),
                }
            }
            other => return Err(format!("expected an operator after {s}, got {other:?}")),
        };
        Ok(Expr::Match { selector, op })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "Node": {"Node": "lgo-dash", "Meta": {}},
            "Service": {"ID": "api-1", "Service": "api", "Port": 8080, "Tags": ["v1", "blue"],
                        "Meta": {"version": "1.2"}, "EnableTagOverride": false},
            "Checks": [{"CheckID": "a", "Status": "passing"}, {"CheckID": "b", "Status": "warning"}],
        })
    }

    fn yes(f: &str) -> bool {
        Expr::parse(f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .eval(&entry())
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    #[test]
    fn matches_as_consul_clients_write_them() {
        assert!(yes("Service.Port == 8080"));
        assert!(!yes("Service.Port == 8081"));
        assert!(yes(r#"Service.Service == "api""#));
        assert!(yes("Service.ID != `api-2`"));
        assert!(yes(r#""v1" in Service.Tags"#));
        assert!(yes("green not in Service.Tags"));
        assert!(yes("Service.Tags contains blue"));
        assert!(yes("Service.Meta.version == 1.2"));
        assert!(yes("Service.Meta.team is empty"));
        assert!(yes("Service.Meta is not empty"));
        assert!(yes("version in Service.Meta"));
        assert!(yes(r#"Service.ID matches "^api-[0-9]+$""#));
        assert!(yes("Service.ID not matches ^web"));
        assert!(yes("Checks.Status == warning"), "any check");
        assert!(!yes("Checks.Status == critical"));
        assert!(yes("Service.EnableTagOverride == false"));
        assert!(yes(
            "(Service.Port == 1 or Service.Port == 8080) and not Checks.Status == critical"
        ));
        assert!(yes("Node.Meta.rack is empty"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "Service.Port ==",
            "Service.Port = 1",
            "(Service.Port == 1",
            "Service.Port like 1",
            "\"unterminated == 1",
            "Service.ID matches \"(\"",
            "",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = Expr::parse("Service.Nope == 1").unwrap();
        assert!(e.eval(&entry()).unwrap_err().contains("Service.Nope"));
    }
}
