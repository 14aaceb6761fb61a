//! Meilisearch's filter language: a hand-written parser following the grammar of Meilisearch's
//! `filter-parser` crate (same keywords, quoting and error messages with `col:col input`
//! positions), and an evaluator over JSON documents.

use serde_json::Value;

use crate::documents::{lookup, values_at};
use crate::settings::Settings;
use crate::state::Document;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cond { attr: String, op: Op },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(String),
    Ne(String),
    Gt(String),
    Ge(String),
    Lt(String),
    Le(String),
    Between(String, String),
    In(Vec<String>),
    Exists,
    IsNull,
    IsEmpty,
    Contains(String),
    StartsWith(String),
}

const KEYWORDS: &[&str] = &[
    "AND",
    "OR",
    "IN",
    "NOT",
    "TO",
    "EXISTS",
    "IS",
    "NULL",
    "EMPTY",
    "CONTAINS",
    "STARTS",
    "WITH",
    "_geoRadius",
    "_geoBoundingBox",
];

fn is_value_component(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn is_syntax_component(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '=' | '<' | '>' | '!')
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
}

type PResult<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn error(&self, message: &str, start: usize, len: usize) -> String {
        format!(
            "{message}\n{}:{} {}",
            start + 1,
            start + 1 + len,
            self.input
        )
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn rest(&self, from: usize) -> String {
        self.chars[from.min(self.chars.len())..].iter().collect()
    }

    fn peek_word(&self) -> String {
        self.chars[self.pos..]
            .iter()
            .take_while(|c| is_value_component(**c))
            .collect()
    }

    /// Consumes `word` (a whole value-component run, case-sensitive like Meilisearch).
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_ws();
        if self.peek_word() == word {
            self.pos += word.chars().count();
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn parse(mut self) -> PResult<Filter> {
        let filter = self.parse_or(0)?;
        self.skip_ws();
        if self.pos < self.chars.len() {
            let rest = self.rest(self.pos);
            return Err(self.error(
                &format!("Found unexpected characters at the end of the filter: `{}`. You probably forgot an `OR` or an `AND` rule.", rest.escape_debug()),
                self.pos,
                rest.chars().count(),
            ));
        }
        Ok(filter)
    }

    fn depth_check(&self, depth: usize) -> PResult<()> {
        if depth > 200 {
            let rest = self.rest(self.pos);
            return Err(self.error(
                "The filter exceeded the maximum depth limit. Try rewriting the filter so that it contains fewer nested conditions.",
                self.pos,
                rest.chars().count(),
            ));
        }
        Ok(())
    }

    fn parse_or(&mut self, depth: usize) -> PResult<Filter> {
        self.depth_check(depth)?;
        let mut items = vec![self.parse_and(depth + 1)?];
        while self.eat_word("OR") {
            items.push(self.parse_and(depth + 1)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::Or(items)
        })
    }

    fn parse_and(&mut self, depth: usize) -> PResult<Filter> {
        self.depth_check(depth)?;
        let mut items = vec![self.parse_not(depth + 1)?];
        while self.eat_word("AND") {
            items.push(self.parse_not(depth + 1)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::And(items)
        })
    }

    fn parse_not(&mut self, depth: usize) -> PResult<Filter> {
        self.depth_check(depth)?;
        let save = self.pos;
        if self.eat_word("NOT") {
            self.skip_ws();
            // `NOT` directly followed by an operator keyword means `NOT` was a field name.
            if self.pos < self.chars.len() {
                return Ok(match self.parse_not(depth + 1)? {
                    Filter::Not(inner) => *inner,
                    other => Filter::Not(Box::new(other)),
                });
            }
            self.pos = save;
        }
        self.parse_primary(depth + 1)
    }

    fn invalid_primary(&self, start: usize) -> String {
        let rest = self.rest(start);
        let text = if rest.trim().is_empty() {
            "but instead got nothing.".to_string()
        } else {
            format!("at `{}`.", rest.escape_debug())
        };
        self.error(
            &format!("Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, or `_geoBoundingBox` {text}"),
            start,
            rest.chars().count(),
        )
    }

    fn parse_primary(&mut self, depth: usize) -> PResult<Filter> {
        self.skip_ws();
        let start = self.pos;
        if self.eat_str("(") {
            let inner = self.parse_or(depth + 1)?;
            self.skip_ws();
            if !self.eat_str(")") {
                let rest = self.rest(start);
                return Err(self.error(
                    &format!(
                        "Expression `{}` is missing the following closing delimiter: `)`.",
                        rest.escape_debug()
                    ),
                    start,
                    rest.chars().count(),
                ));
            }
            self.skip_ws();
            return Ok(inner);
        }
        let word = self.peek_word();
        if word.starts_with("_geo") {
            return Err(self.error(
                &format!("`{word}` filters are not supported by the miroir test node."),
                start,
                word.chars().count(),
            ));
        }
        if self.pos >= self.chars.len() {
            return Err(self.invalid_primary(start));
        }
        let attr = match self.parse_value() {
            Ok(v) => v,
            Err(_) => return Err(self.invalid_primary(start)),
        };
        self.skip_ws();
        let op = if self.eat_str("!=") {
            Op::Ne(self.parse_value()?.0)
        } else if self.eat_str(">=") {
            Op::Ge(self.parse_value()?.0)
        } else if self.eat_str("<=") {
            Op::Le(self.parse_value()?.0)
        } else if self.eat_str("=") {
            Op::Eq(self.parse_value()?.0)
        } else if self.eat_str(">") {
            Op::Gt(self.parse_value()?.0)
        } else if self.eat_str("<") {
            Op::Lt(self.parse_value()?.0)
        } else if self.eat_word("IN") {
            Op::In(self.parse_in_body()?)
        } else if self.eat_word("EXISTS") {
            Op::Exists
        } else if self.eat_word("CONTAINS") {
            Op::Contains(self.parse_value()?.0)
        } else if self.eat_word("STARTS") {
            if !self.eat_word("WITH") {
                return Err(self.invalid_primary(start));
            }
            Op::StartsWith(self.parse_value()?.0)
        } else if self.eat_word("IS") {
            let negated = self.eat_word("NOT");
            let op = if self.eat_word("NULL") {
                Op::IsNull
            } else if self.eat_word("EMPTY") {
                Op::IsEmpty
            } else {
                return Err(self.invalid_primary(start));
            };
            self.skip_ws();
            let cond = Filter::Cond { attr: attr.0, op };
            return Ok(if negated {
                Filter::Not(Box::new(cond))
            } else {
                cond
            });
        } else if self.eat_word("NOT") {
            let op = if self.eat_word("IN") {
                Op::In(self.parse_in_body()?)
            } else if self.eat_word("EXISTS") {
                Op::Exists
            } else if self.eat_word("CONTAINS") {
                Op::Contains(self.parse_value()?.0)
            } else if self.eat_word("STARTS") && self.eat_word("WITH") {
                Op::StartsWith(self.parse_value()?.0)
            } else {
                return Err(self.invalid_primary(start));
            };
            self.skip_ws();
            return Ok(Filter::Not(Box::new(Filter::Cond { attr: attr.0, op })));
        } else {
            // `attr from TO to`
            let save = self.pos;
            match self.parse_value() {
                Ok(from) if self.eat_word("TO") => Op::Between(from.0, self.parse_value()?.0),
                _ => {
                    self.pos = save;
                    return Err(self.invalid_primary(start));
                }
            }
        };
        self.skip_ws();
        Ok(Filter::Cond { attr: attr.0, op })
    }

    fn parse_in_body(&mut self) -> PResult<Vec<String>> {
        self.skip_ws();
        if !self.eat_str("[") {
            let rest = self.rest(self.pos);
            return Err(self.error(
                "Expected `[` after `IN` keyword.",
                self.pos,
                rest.chars().count(),
            ));
        }
        let mut values = Vec::new();
        loop {
            self.skip_ws();
            if self.eat_str("]") {
                break;
            }
            if self.pos >= self.chars.len() {
                return Err(self.error(
                    "Expected matching `]` after the list of field names given to `IN[`",
                    self.pos,
                    0,
                ));
            }
            let at = self.pos;
            match self.parse_value() {
                Ok(v) => values.push(v.0),
                Err(_) => {
                    let word: String = self.chars[at..]
                        .iter()
                        .take_while(|c| !is_syntax_component(**c) && **c != ']' && **c != ',')
                        .collect();
                    let word = if word.is_empty() { self.rest(at) } else { word };
                    return Err(self.error(
                        &format!("Expected only comma-separated field names inside `IN[..]` but instead found `{}`.", word.escape_debug()),
                        at,
                        word.chars().count(),
                    ));
                }
            }
            self.skip_ws();
            if self.eat_str(",") {
                continue;
            }
            self.skip_ws();
            if !self.eat_str("]") {
                let rest = self.rest(self.pos);
                return Err(if rest.is_empty() {
                    self.error(
                        "Expected matching `]` after the list of field names given to `IN[`",
                        self.pos,
                        0,
                    )
                } else {
                    self.error(
                        &format!("Expected only comma-separated field names inside `IN[..]` but instead found `{}`.", rest.escape_debug()),
                        self.pos,
                        rest.chars().count(),
                    )
                });
            }
            break;
        }
        self.skip_ws();
        Ok(values)
    }

    /// value = WS* (word | 'single quoted' | "double quoted") WS*
    /// Returns the value and whether it was quoted.
    fn parse_value(&mut self) -> PResult<(String, bool)> {
        self.skip_ws();
        let start = self.pos;
        match self.chars.get(self.pos).copied() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                let mut out = String::new();
                while let Some(c) = self.chars.get(self.pos).copied() {
                    self.pos += 1;
                    if c == q {
                        self.skip_ws();
                        return Ok((out, true));
                    }
                    if c == '\\' {
                        match self.chars.get(self.pos).copied() {
                            Some(next) if next == q || next == '\\' => {
                                out.push(next);
                                self.pos += 1;
                            }
                            Some(_) => out.push('\\'),
                            None => break,
                        }
                    } else {
                        out.push(c);
                    }
                }
                let rest = self.rest(start);
                Err(self.error(
                    &format!(
                        "Expression `{}` is missing the following closing delimiter: `{q}`.",
                        rest.escape_debug()
                    ),
                    start,
                    rest.chars().count(),
                ))
            }
            _ => {
                let word = self.peek_word();
                if word.is_empty() || KEYWORDS.contains(&word.as_str()) {
                    let found: String = self.chars[start..]
                        .iter()
                        .take_while(|c| !is_syntax_component(**c))
                        .collect();
                    let message = if found.trim().is_empty() {
                        "Was expecting a value but instead got nothing.".to_string()
                    } else if KEYWORDS.contains(&found.as_str()) {
                        format!("Was expecting a value but instead got `{found}`, which is a reserved keyword. To use `{found}` as a field name or a value, surround it by quotes.")
                    } else {
                        format!(
                            "Was expecting a value but instead got `{}`.",
                            found.escape_debug()
                        )
                    };
                    return Err(self.error(&message, start, found.chars().count()));
                }
                self.pos += word.chars().count();
                self.skip_ws();
                Ok((word, false))
            }
        }
    }
}

/// Parses one filter string; `Ok(None)` for a blank filter, like Meilisearch.
pub fn parse(input: &str) -> Result<Option<Filter>, String> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    Parser {
        input,
        chars: input.chars().collect(),
        pos: 0,
    }
    .parse()
    .map(Some)
}

/// The JSON forms of `filter`: a string, or an array whose items are ANDed and whose inner
/// arrays are ORed.
pub fn from_json(value: &Value) -> Result<Option<Filter>, String> {
    fn type_error(found: &Value) -> String {
        format!(
            "Invalid syntax for the filter parameter: `expected String, Array, found: {found}`."
        )
    }
    match value {
        Value::Null => Ok(None),
        Value::String(s) => parse(s),
        Value::Array(items) => {
            let mut ands = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => ands.extend(parse(s)?),
                    Value::Array(inner) => {
                        let mut ors = Vec::new();
                        for i in inner {
                            match i {
                                Value::String(s) => ors.extend(parse(s)?),
                                other => {
                                    return Err(format!(
                                        "Invalid syntax for the filter parameter: `expected String, found: {other}`."
                                    ))
                                }
                            }
                        }
                        match ors.len() {
                            0 => {}
                            1 => ands.extend(ors),
                            _ => ands.push(Filter::Or(ors)),
                        }
                    }
                    other => return Err(type_error(other)),
                }
            }
            Ok(match ands.len() {
                0 => None,
                1 => ands.pop(),
                _ => Some(Filter::And(ands)),
            })
        }
        other => Err(type_error(other)),
    }
}

impl Filter {
    fn attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And(items) | Filter::Or(items) => items.iter().for_each(|f| f.attributes(out)),
            Filter::Not(inner) => inner.attributes(out),
            Filter::Cond { attr, .. } => out.push(attr),
        }
    }

    /// Renders the filter in canonical form (quoted tokens), recording where `target`'s
    /// attribute token lands, for "not filterable" messages.
    fn render(&self, out: &mut String, target: &str, span: &mut Option<(usize, usize)>) {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        match self {
            Filter::And(items) | Filter::Or(items) => {
                let sep = if matches!(self, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    let wrap = matches!(item, Filter::And(_) | Filter::Or(_));
                    if wrap {
                        out.push('(');
                    }
                    item.render(out, target, span);
                    if wrap {
                        out.push(')');
                    }
                }
            }
            Filter::Not(inner) => {
                out.push_str("NOT (");
                inner.render(out, target, span);
                out.push(')');
            }
            Filter::Cond { attr, op } => {
                if span.is_none() && attr == target {
                    let start = out.chars().count() + 2;
                    *span = Some((start, start + attr.chars().count()));
                }
                out.push_str(&q(attr));
                let rest = match op {
                    Op::Eq(v) => format!(" = {}", q(v)),
                    Op::Ne(v) => format!(" != {}", q(v)),
                    Op::Gt(v) => format!(" > {}", q(v)),
                    Op::Ge(v) => format!(" >= {}", q(v)),
                    Op::Lt(v) => format!(" < {}", q(v)),
                    Op::Le(v) => format!(" <= {}", q(v)),
                    Op::Between(a, b) => format!(" {} TO {}", q(a), q(b)),
                    Op::In(vs) => format!(
                        " IN [{}]",
                        vs.iter().map(|v| q(v)).collect::<Vec<_>>().join(", ")
                    ),
                    Op::Exists => " EXISTS".to_string(),
                    Op::IsNull => " IS NULL".to_string(),
                    Op::IsEmpty => " IS EMPTY".to_string(),
                    Op::Contains(v) => format!(" CONTAINS {}", q(v)),
                    Op::StartsWith(v) => format!(" STARTS WITH {}", q(v)),
                };
                out.push_str(&rest);
            }
        }
    }

    /// Every attribute used must be filterable; the message is Meilisearch's.
    pub fn check_filterable(&self, index_uid: &str, settings: &Settings) -> Result<(), String> {
        let mut attrs = Vec::new();
        self.attributes(&mut attrs);
        let Some(bad) = attrs.into_iter().find(|a| !settings.is_filterable(a)) else {
            return Ok(());
        };
        let mut patterns = settings.filterable_patterns();
        patterns.sort_unstable();
        patterns.dedup();
        let detail = if patterns.is_empty() {
            " This index does not have configured filterable attributes.".to_string()
        } else {
            format!(
                " Available filterable attribute patterns are: {}.",
                patterns
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut rendered = String::new();
        let mut span = None;
        self.render(&mut rendered, bad, &mut span);
        let (start, end) = span.unwrap_or((1, 1));
        Err(format!(
            "Index `{index_uid}`: Attribute `{bad}` is not filterable.{detail}\n{start}:{end} {rendered}"
        ))
    }

    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::And(items) => items.iter().all(|f| f.matches(doc)),
            Filter::Or(items) => items.iter().any(|f| f.matches(doc)),
            Filter::Not(inner) => !inner.matches(doc),
            Filter::Cond { attr, op } => eval(doc, attr, op),
        }
    }
}

/// Meilisearch compares facet strings after lowercasing.
fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn leaf_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(norm(s)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn equals(v: &Value, target: &str) -> bool {
    match v {
        Value::Number(n) => match (n.as_f64(), target.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        other => leaf_text(other).is_some_and(|s| s == norm(target)),
    }
}

/// Numbers compare numerically when the filter value is a number, otherwise strings compare
/// lexicographically (lowercased), as Meilisearch does for string facets.
fn compare(v: &Value, target: &str) -> Option<std::cmp::Ordering> {
    match (v, target.trim().parse::<f64>()) {
        (Value::Number(n), Ok(t)) => n.as_f64().and_then(|a| a.partial_cmp(&t)),
        (Value::Number(_), Err(_)) => None,
        (Value::String(s), Err(_)) => Some(norm(s).cmp(&norm(target))),
        _ => None,
    }
}

fn eval(doc: &Document, attr: &str, op: &Op) -> bool {
    use std::cmp::Ordering::*;
    let mut values = Vec::new();
    values_at(doc, attr, &mut values);
    let any = |f: &dyn Fn(&Value) -> bool| values.iter().any(|v| f(v));
    match op {
        Op::Eq(t) => any(&|v| equals(v, t)),
        Op::Ne(t) => !any(&|v| equals(v, t)),
        Op::Gt(t) => any(&|v| compare(v, t) == Some(Greater)),
        Op::Ge(t) => any(&|v| matches!(compare(v, t), Some(Greater | Equal))),
        Op::Lt(t) => any(&|v| compare(v, t) == Some(Less)),
        Op::Le(t) => any(&|v| matches!(compare(v, t), Some(Less | Equal))),
        Op::Between(a, b) => any(&|v| {
            matches!(compare(v, a), Some(Greater | Equal))
                && matches!(compare(v, b), Some(Less | Equal))
        }),
        Op::In(list) => any(&|v| list.iter().any(|t| equals(v, t))),
        Op::Exists => lookup(doc, attr).is_some() || !values.is_empty(),
        Op::IsNull => matches!(lookup(doc, attr), Some(Value::Null)) || any(&|v| v.is_null()),
        Op::IsEmpty => match lookup(doc, attr) {
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        },
        Op::Contains(t) => any(&|v| leaf_text(v).is_some_and(|s| s.contains(&norm(t)))),
        Op::StartsWith(t) => any(&|v| leaf_text(v).is_some_and(|s| s.starts_with(&norm(t)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().unwrap().clone()
    }

    fn cond(attr: &str, op: Op) -> Filter {
        Filter::Cond {
            attr: attr.into(),
            op,
        }
    }

    #[test]
    fn parses_grammar() {
        assert_eq!(
            parse("genres = Drama").unwrap(),
            Some(cond("genres", Op::Eq("Drama".into())))
        );
        assert_eq!(
            parse("a = 1 OR b = 2 AND c = 3").unwrap(),
            Some(Filter::Or(vec![
                cond("a", Op::Eq("1".into())),
                Filter::And(vec![
                    cond("b", Op::Eq("2".into())),
                    cond("c", Op::Eq("3".into()))
                ]),
            ]))
        );
        assert_eq!(
            parse("NOT (a = 1 OR a = 2)").unwrap(),
            Some(Filter::Not(Box::new(Filter::Or(vec![
                cond("a", Op::Eq("1".into())),
                cond("a", Op::Eq("2".into()))
            ]))))
        );
        assert_eq!(
            parse("NOT NOT a EXISTS").unwrap(),
            Some(cond("a", Op::Exists))
        );
        assert_eq!(
            parse("genres IN [Drama, 'Science Fiction', \"a\\\"b\"]").unwrap(),
            Some(cond(
                "genres",
                Op::In(vec![
                    "Drama".into(),
                    "Science Fiction".into(),
                    "a\"b".into()
                ])
            ))
        );
        assert_eq!(
            parse("genres NOT IN [x]").unwrap(),
            Some(Filter::Not(Box::new(cond(
                "genres",
                Op::In(vec!["x".into()])
            ))))
        );
        assert_eq!(
            parse("year 2000 TO 2010").unwrap(),
            Some(cond("year", Op::Between("2000".into(), "2010".into())))
        );
        assert_eq!(
            parse("a IS NOT NULL").unwrap(),
            Some(Filter::Not(Box::new(cond("a", Op::IsNull))))
        );
        assert_eq!(
            parse("rating >= 7.5").unwrap(),
            Some(cond("rating", Op::Ge("7.5".into())))
        );
        assert_eq!(parse("  ").unwrap(), None);
    }

    #[test]
    fn syntax_errors_match_meilisearch() {
        assert_eq!(
            parse("year >").unwrap_err(),
            "Was expecting a value but instead got nothing.\n7:7 year >"
        );
        assert_eq!(
            parse("a = 1 b = 2").unwrap_err(),
            "Found unexpected characters at the end of the filter: `b = 2`. You probably forgot an `OR` or an `AND` rule.\n7:12 a = 1 b = 2"
        );
        assert!(parse("(a = 1")
            .unwrap_err()
            .starts_with("Expression `(a = 1` is missing the following closing delimiter: `)`."));
        assert!(parse("a = 'x")
            .unwrap_err()
            .contains("closing delimiter: `'`"));
        assert!(parse("year")
            .unwrap_err()
            .starts_with("Was expecting an operation `=`"));
        assert!(parse("a = AND").unwrap_err().contains("reserved keyword"));
        assert!(parse("a IN x")
            .unwrap_err()
            .starts_with("Expected `[` after `IN` keyword."));
        assert!(parse("a = 1 AND").is_err());
    }

    #[test]
    fn evaluates() {
        let d = doc(
            json!({"genres": ["Drama", "Romance"], "year": 2015, "rating": 7.2, "title": "Carol", "n": null, "e": []}),
        );
        let t = |s: &str| parse(s).unwrap().unwrap().matches(&d);
        assert!(t("genres = drama"));
        assert!(t("genres = Drama AND year >= 2012"));
        assert!(!t("genres = Comedy"));
        assert!(t("genres != Comedy"));
        assert!(t("year 2015 TO 2016") && !t("year 2016 TO 2020"));
        assert!(t("rating > 7.1 AND rating < 7.3"));
        assert!(t("genres IN [Comedy, Romance]") && t("genres NOT IN [Comedy]"));
        assert!(t("missing NOT EXISTS") && t("title EXISTS") && t("n EXISTS"));
        assert!(t("n IS NULL") && t("title IS NOT NULL") && t("e IS EMPTY"));
        assert!(t("NOT (year < 2000 OR title = x)"));
        assert!(t("title > A") && !t("title > D"));
        assert!(!t("missing = 1") && t("missing != 1"));
        let arr = from_json(&json!([
            ["genres = Comedy", "genres = Drama"],
            "year > 2000"
        ]))
        .unwrap()
        .unwrap();
        assert!(arr.matches(&d));
        let arr = from_json(&json!([["genres = Comedy"], "year > 2000"]))
            .unwrap()
            .unwrap();
        assert!(!arr.matches(&d));
        assert!(from_json(&json!(true)).is_err());
    }

    #[test]
    fn not_filterable_message() {
        let mut s = Settings::default();
        s.apply(
            &crate::settings::validate(
                &json!({"filterableAttributes": ["genres", "year", "rating", "director"]}),
            )
            .unwrap(),
        );
        let f = parse("title = Carol").unwrap().unwrap();
        assert_eq!(
            f.check_filterable("movies", &s).unwrap_err(),
            "Index `movies`: Attribute `title` is not filterable. Available filterable attribute patterns are: `director`, `genres`, `rating`, `year`.\n2:7 \"title\" = \"Carol\""
        );
        assert!(parse("year > 1 AND genres = x")
            .unwrap()
            .unwrap()
            .check_filterable("movies", &s)
            .is_ok());
        let e = f.check_filterable("m", &Settings::default()).unwrap_err();
        assert!(e.contains("This index does not have configured filterable attributes."));
    }
}
