//! JSON and NDJSON batches read the way Meilisearch reads them at its route, without building
//! them: attribute names decoded, values only checked for syntax, every document valid UTF-8.
//! serde walks the whole body (so a payload fails where and how it fails on one Meilisearch,
//! with the same message and position) and keeps nothing but where each document lies in the
//! client's body. Each document is read again, alone, for what validation needs.

use std::borrow::Cow;
use std::fmt;

use miroir_topology::reserved::RESERVED_FIELDS;
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::error::Category;
use serde_json::Value;

/// Where one document lies in the client's body: from its `{` to just past its `}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// The documents of an `application/json` payload, or the detail of Meilisearch's
/// `malformed_payload` message. Like Meilisearch: an array is read up to its `]` (what follows
/// is never looked at), and anything else is read as one object, fully.
pub fn array_documents(body: &[u8]) -> Result<Vec<Span>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match de.deserialize_seq(ArrayVisitor) {
        Ok(len) => {
            let spans = element_spans(body, len);
            let valid_utf8 = std::str::from_utf8(body).is_ok();
            for span in &spans {
                document(body, *span, valid_utf8)?;
            }
            Ok(spans)
        }
        Err(e) if e.classify() == Category::Data => single_object(body),
        Err(e) => Err(e.to_string()),
    }
}

/// Meilisearch's second reading of a payload that is no array: as one map, values and all.
fn single_object(body: &[u8]) -> Result<Vec<Span>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(Strict)
        .and_then(|()| de.end())
        .map_err(|e| match e.classify() {
            Category::Data => "data are neither an object nor a list of objects".to_string(),
            _ => e.to_string(),
        })?;
    let start = skip_whitespace(body, 0);
    Ok(vec![Span {
        start,
        end: value_end(body, start),
    }])
}

/// The documents of an `application/x-ndjson` payload, or the detail of Meilisearch's
/// `malformed_payload` message about its first line that is not a document.
pub fn line_documents(body: &[u8]) -> Result<Vec<Span>, String> {
    let valid_utf8 = std::str::from_utf8(body).is_ok();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<IgnoredAny>();
    let mut spans = Vec::new();
    loop {
        let after_previous = stream.byte_offset();
        if stream
            .next()
            .transpose()
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Ok(spans);
        }
        let span = Span {
            start: skip_whitespace(body, after_previous),
            end: stream.byte_offset(),
        };
        document(body, span, valid_utf8)?;
        spans.push(span);
    }
}

/// What Meilisearch checks of a value serde read for syntax before it takes it as a document:
/// UTF-8, an object, attribute names that decode (positioned within the document).
fn document(body: &[u8], span: Span, valid_utf8: bool) -> Result<(), String> {
    let value = body.get(span.start..span.end).unwrap_or_default();
    if !valid_utf8 && std::str::from_utf8(value).is_err() {
        let (line, column) = position(body, span.end);
        return Err(format!(
            "invalid unicode code point at line {line} column {column}"
        ));
    }
    let kind = match value.first() {
        Some(b'{') => {
            return serde_json::Deserializer::from_slice(value)
                .deserialize_map(NamesDecoded)
                .map_err(|e| e.to_string())
        }
        Some(b'[') => "sequence",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    };
    Err(format!("invalid type: {kind}, expected a map"))
}

/// serde_json's line and column of the byte at `index`.
fn position(body: &[u8], index: usize) -> (usize, usize) {
    let before = body.get(..index).unwrap_or_default();
    let start_of_line = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline.saturating_add(1));
    let newlines = before
        .iter()
        .take(start_of_line)
        .filter(|b| **b == b'\n')
        .count();
    (
        newlines.saturating_add(1),
        index.saturating_sub(start_of_line),
    )
}

/// The top-level attribute names of a document, each once, in order of first appearance.
pub fn attribute_names(document: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    serde_json::Deserializer::from_slice(document).deserialize_map(Names)
}

/// What validation reads in one document.
#[derive(Debug, Default)]
pub struct Fields {
    /// The first reserved attribute, in document order.
    pub reserved: Option<&'static str>,
    /// The value at the primary key (the last one, if the attribute is repeated).
    pub primary_key: Option<Value>,
}

/// Reads `document` for validation. A dotted primary key `a.b` names the attribute `a.b` if the
/// document has one, else `b` inside the object `a`.
pub fn fields(document: &[u8], primary_key: &str) -> Result<Fields, serde_json::Error> {
    let path: Vec<&str> = primary_key.split('.').collect();
    let nested = path.split_first().filter(|_| path.len() > 1);
    let (found, inside) =
        serde_json::Deserializer::from_slice(document).deserialize_map(FieldsVisitor {
            primary_key,
            nested,
        })?;
    Ok(Fields {
        primary_key: found.primary_key.or(inside),
        ..found
    })
}

/// Whether the object `{…}` at `span` has no attribute.
pub fn is_empty(body: &[u8], span: Span) -> bool {
    body.get(span.start.saturating_add(1)..span.end.saturating_sub(1))
        .is_some_and(|inside| inside.iter().all(|b| is_whitespace(*b)))
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body.get(at).copied().is_some_and(is_whitespace) {
        at = at.saturating_add(1);
    }
    at
}

/// The spans of the elements of an array serde accepted: only brackets and strings need
/// tracking.
fn element_spans(body: &[u8], len: usize) -> Vec<Span> {
    let mut spans = Vec::with_capacity(len);
    // Past the `[`.
    let mut at = skip_whitespace(body, 0).saturating_add(1);
    loop {
        at = skip_whitespace(body, at);
        match body.get(at) {
            None | Some(b']') => return spans,
            Some(b',') => at = at.saturating_add(1),
            Some(_) => {
                let end = value_end(body, at);
                spans.push(Span { start: at, end });
                at = end;
            }
        }
    }
}

/// Just past the value starting at `start`.
fn value_end(body: &[u8], start: usize) -> usize {
    match body.get(start) {
        Some(b'"') => string_end(body, start.saturating_add(1)),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut at = start;
            while let Some(b) = body.get(at) {
                at = at.saturating_add(1);
                match b {
                    b'{' | b'[' => depth = depth.saturating_add(1),
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return at;
                        }
                    }
                    b'"' => at = string_end(body, at),
                    _ => {}
                }
            }
            at
        }
        _ => body
            .get(start..)
            .and_then(|rest| {
                rest.iter()
                    .position(|b| matches!(b, b',' | b']' | b'}') || is_whitespace(*b))
            })
            .map_or(body.len(), |len| start.saturating_add(len)),
    }
}

/// Just past the `"` that closes the string whose content starts at `at`.
fn string_end(body: &[u8], mut at: usize) -> usize {
    while let Some(rest) = body.get(at..) {
        match rest.iter().position(|b| *b == b'"' || *b == b'\\') {
            None => return body.len(),
            Some(i) => {
                at = at.saturating_add(i);
                if rest.get(i) == Some(&b'"') {
                    return at.saturating_add(1);
                }
                // Past the `\` and the character it escapes.
                at = at.saturating_add(2);
            }
        }
    }
    at
}

/// A value visited the way `serde_json::Value` visits it (every number parsed, every string
/// decoded, nesting limited), kept nowhere.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Strict)?.is_some() {
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// An array payload's elements, each read for syntax only: how many.
struct ArrayVisitor;

impl<'de> Visitor<'de> for ArrayVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut len = 0usize;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len = len.saturating_add(1);
        }
        Ok(len)
    }
}

/// A document's attribute names decoded and its values skipped, as Meilisearch reads a document
/// at its route.
struct NamesDecoded;

impl<'de> Visitor<'de> for NamesDecoded {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Strict)?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// An attribute name, decoded (`"\u005fid"` is `_id`), borrowed from the body when it can be.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }
}

struct Names;

impl<'de> Visitor<'de> for Names {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut names: Vec<String> = Vec::new();
        while let Some(name) = map.next_key_seed(Key)? {
            map.next_value::<IgnoredAny>()?;
            if !names.iter().any(|n| *n == name) {
                names.push(name.into_owned());
            }
        }
        Ok(names)
    }
}

struct FieldsVisitor<'k> {
    primary_key: &'k str,
    /// A dotted primary key's first part and the rest.
    nested: Option<(&'k &'k str, &'k [&'k str])>,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    /// The fields, and the value found inside the primary key's first part.
    type Value = (Fields, Option<Value>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Fields::default();
        let mut inside = None;
        while let Some(name) = map.next_key_seed(Key)? {
            if found.reserved.is_none() {
                found.reserved = RESERVED_FIELDS.iter().copied().find(|f| *f == name);
            }
            match self.nested {
                _ if name == self.primary_key => found.primary_key = Some(map.next_value()?),
                Some((head, rest)) if name == **head => {
                    inside = map.next_value_seed(Path(rest))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((found, inside))
    }
}

/// The value at `path` inside a value, reading nothing else: `None` where no object leads there.
struct Path<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for Path<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.0 {
            [] => Value::deserialize(deserializer).map(Some),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Path<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key_seed(Key)? {
            match self.0.split_first() {
                Some((part, rest)) if name == *part => found = map.next_value_seed(Path(rest))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}
