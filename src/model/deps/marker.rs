//! PEP 508 environment markers (`sys_platform == "win32"`,
//! `python_version < "3.11" and platform_machine == "x86_64"`): when a pin
//! of a lock file applies. A cross-platform lock (uv.lock, poetry.lock, a
//! requirements file with `; marker` lines) pins packages that only one
//! platform installs; `verify --deps` evaluates each pin's marker against
//! the target interpreter and leaves out the pins that do not apply there,
//! instead of calling them missing.
//!
//! The grammar is PEP 508's: `or` of `and` of comparisons or parenthesised
//! markers; a comparison is `value op value`, a value a marker variable or
//! a quoted string, `op` one of `== != < <= > >= ~= === in not in`. Versions
//! compare under PEP 440 when the literal is a version (or a specifier
//! with a wildcard), strings otherwise.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The longest marker text read.
pub const MAX_MARKER_BYTES: usize = 4096;

/// The variables a marker may name (and the legacy dotted spellings,
/// mapped onto them).
const VARIABLES: &[&str] = &[
    "implementation_name",
    "implementation_version",
    "os_name",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_full_version",
    "python_version",
    "sys_platform",
    "extra",
];

fn variable(name: &str) -> Option<&'static str> {
    let canonical = match name {
        "os.name" => "os_name",
        "sys.platform" => "sys_platform",
        "platform.version" => "platform_version",
        "platform.machine" => "platform_machine",
        "platform.python_implementation" | "python_implementation" => {
            "platform_python_implementation"
        }
        other => other,
    };
    VARIABLES.iter().copied().find(|v| *v == canonical)
}

/// A parsed marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Or(Vec<Marker>),
    And(Vec<Marker>),
    Compare { lhs: Value, op: Op, rhs: Value },
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Variable(&'static str),
    Literal(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Compatible,
    Arbitrary,
    In,
    NotIn,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Compatible => "~=",
            Op::Arbitrary => "===",
            Op::In => "in",
            Op::NotIn => "not in",
        }
    }

    /// `a op b` as `b op' a`, when there is such an op'.
    fn flipped(self) -> Option<Op> {
        Some(match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            Op::Eq | Op::Ne | Op::Arbitrary => self,
            Op::Compatible | Op::In | Op::NotIn => return None,
        })
    }
}

/// The values of the marker variables of one interpreter, as it reports
/// them; a variable it does not report (and `extra`) is the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkerEnv {
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Str(String),
    Word(String),
    Op(Op),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, q)) if q == c => break,
                        Some((_, q)) => s.push(q),
                        None => return Err(format!("an unclosed string at column {}", i + 1)),
                    }
                }
                out.push(Token::Str(s));
            }
            '=' | '!' | '<' | '>' | '~' => {
                let mut op = c.to_string();
                while let Some((_, n)) = chars.peek() {
                    if matches!(n, '=') {
                        op.push(*n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Op(match op.as_str() {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "~=" => Op::Compatible,
                    "===" => Op::Arbitrary,
                    other => return Err(format!("{other:?} is not a marker operator")),
                }));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut w = c.to_string();
                while let Some((_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || matches!(n, '_' | '.') {
                        w.push(*n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(w));
            }
            other => return Err(format!("{other:?} at column {} in a marker", i + 1)),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<Marker, String> {
        let mut parts = vec![self.and()?];
        while self.word("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Marker::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Marker, String> {
        let mut parts = vec![self.atom()?];
        while self.word("and") {
            self.at += 1;
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Marker::And(parts)
        })
    }

    fn atom(&mut self) -> Result<Marker, String> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.depth += 1;
            if self.depth > 32 {
                return Err("markers nested more than 32 deep".into());
            }
            let m = self.or()?;
            self.depth -= 1;
            return match self.next() {
                Some(Token::Close) => Ok(m),
                _ => Err("a '(' without its ')'".into()),
            };
        }
        let lhs = self.value()?;
        let op = match self.next() {
            Some(Token::Op(op)) => op,
            Some(Token::Word(w)) if w == "in" => Op::In,
            Some(Token::Word(w)) if w == "not" => match self.next() {
                Some(Token::Word(w)) if w == "in" => Op::NotIn,
                _ => return Err("'not' without 'in'".into()),
            },
            _ => return Err("a comparison without its operator".into()),
        };
        let rhs = self.value()?;
        Ok(Marker::Compare { lhs, op, rhs })
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Value::Literal(s)),
            Some(Token::Word(w)) => variable(&w)
                .map(Value::Variable)
                .ok_or_else(|| format!("{w:?} is not a marker variable")),
            _ => Err("a marker variable or a quoted string expected".into()),
        }
    }
}

impl FromStr for Marker {
    type Err = String;

    /// Parse a marker; the message says what is wrong.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() > MAX_MARKER_BYTES {
            return Err(format!("a marker longer than {MAX_MARKER_BYTES} bytes"));
        }
        let mut p = Parser {
            tokens: tokens(text)?,
            at: 0,
            depth: 0,
        };
        if p.tokens.is_empty() {
            return Err("an empty marker".into());
        }
        let m = p.or()?;
        if p.at != p.tokens.len() {
            return Err("text after the end of the marker".into());
        }
        Ok(m)
    }
}

impl Marker {
    /// Whether the marker holds in `env`.
    pub fn evaluate(&self, env: &MarkerEnv) -> bool {
        match self {
            Marker::Or(parts) => parts.iter().any(|m| m.evaluate(env)),
            Marker::And(parts) => parts.iter().all(|m| m.evaluate(env)),
            Marker::Compare { lhs, op, rhs } => compare(env, lhs, *op, rhs),
        }
    }
}

fn compare(env: &MarkerEnv, lhs: &Value, op: Op, rhs: &Value) -> bool {
    let value = |v: &Value| match v {
        Value::Variable(name) => env.values.get(*name).cloned().unwrap_or_default(),
        Value::Literal(s) => s.clone(),
    };
    let (l, r) = (value(lhs), value(rhs));
    match op {
        Op::In => return r.contains(&l),
        Op::NotIn => return !r.contains(&l),
        _ => {}
    }
    // PEP 440 when the literal side reads as a specifier: the variable
    // goes on the left, the literal on the right.
    let (subject, op2, literal) = match (lhs, rhs) {
        (_, Value::Literal(_)) => (l.as_str(), Some(op), r.as_str()),
        (Value::Literal(_), Value::Variable(_)) => (r.as_str(), op.flipped(), l.as_str()),
        _ => (l.as_str(), Some(op), r.as_str()),
    };
    if let Some(op2) = op2 {
        let spec = pep440_rs::VersionSpecifier::from_str(&format!("{}{literal}", op2.as_str()));
        let version = pep440_rs::Version::from_str(subject);
        if let (Ok(spec), Ok(version)) = (spec, version) {
            return spec.contains(&version);
        }
    }
    match op {
        Op::Eq | Op::Arbitrary => l == r,
        Op::Ne => l != r,
        Op::Lt => l < r,
        Op::Le => l <= r,
        Op::Gt => l > r,
        Op::Ge => l >= r,
        Op::Compatible | Op::In | Op::NotIn => false,
    }
}

/// Check a marker's text (for a lock file's line, or a manifest's pin).
pub fn check(text: &str) -> Result<(), String> {
    Marker::from_str(text).map(|_| ())
}

/// Whether `text` holds in `env`; a marker that does not parse holds
/// (the pin is compared, as it was before markers were read: a signed
/// manifest's markers were checked when it was read).
pub fn holds(text: &str, env: &MarkerEnv) -> bool {
    match Marker::from_str(text) {
        Ok(m) => m.evaluate(env),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux_311() -> MarkerEnv {
        MarkerEnv {
            values: [
                ("sys_platform", "linux"),
                ("platform_system", "Linux"),
                ("os_name", "posix"),
                ("platform_machine", "x86_64"),
                ("python_version", "3.11"),
                ("python_full_version", "3.11.4"),
                ("implementation_name", "cpython"),
                ("platform_python_implementation", "CPython"),
                ("platform_release", "6.1.0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }

    #[test]
    fn markers_evaluate_as_pep_508_says() {
        let env = linux_311();
        for (text, want) in [
            ("sys_platform == 'win32'", false),
            ("sys_platform == \"linux\"", true),
            ("platform_system != 'Windows'", true),
            ("python_version < '3.12'", true),
            ("python_version >= \"3.12\"", false),
            ("'3.8' <= python_version", true),
            ("python_full_version ~= '3.11.0'", true),
            ("python_version == '3.*'", true),
            ("python_version > '3.9' and sys_platform == 'win32'", false),
            (
                "python_version > '3.9' and (sys_platform == 'win32' or os_name == 'posix')",
                true,
            ),
            ("'arm' in platform_machine", false),
            ("'x86' in platform_machine", true),
            ("'x86' not in platform_machine", false),
            ("extra == 'cuda'", false),
            ("os.name == 'posix'", true),
            ("platform_release >= '5'", true),
        ] {
            let m: Marker = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(m.evaluate(&env), want, "{text}");
        }
    }

    #[test]
    fn a_hostile_marker_is_refused_with_its_reason() {
        for (text, why) in [
            ("", "empty"),
            ("sys_platform ==", "expected"),
            ("sys_platform = 'x'", "not a marker operator"),
            ("sys_platfrom == 'x'", "not a marker variable"),
            ("(sys_platform == 'x'", "without its ')'"),
            ("sys_platform == 'x' extra", "after the end"),
            ("sys_platform == 'x", "unclosed"),
            ("__import__('os') == 'x'", "not a marker variable"),
        ] {
            let e = text.parse::<Marker>().expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
        let deep = format!("{}sys_platform == 'x'{}", "(".repeat(40), ")".repeat(40));
        assert!(deep.parse::<Marker>().unwrap_err().contains("32 deep"));
        let long = format!("sys_platform == '{}'", "x".repeat(5000));
        assert!(long.parse::<Marker>().unwrap_err().contains("longer"));
    }
}
