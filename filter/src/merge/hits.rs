//! A node's search answer read only as far as the merge needs it: every field but `hits` as
//! values, each hit kept as the JSON text the node sent. Ranking reads three fields of a hit, and
//! the page writes its hits out with Miroir's fields removed, so no document is ever built as a
//! tree of values (parsing them was most of a search's cost in the filter).

use std::cell::OnceCell;
use std::fmt;

use miroir_topology::reserved::{decode_seq, RESERVED_FIELDS};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One hit, as the node wrote it.
pub struct Hit {
    raw: Box<RawValue>,
    /// The hit as a value, for the few merges that read document fields (distinct).
    parsed: OnceCell<Value>,
}

/// What ranking reads of a hit.
#[derive(Default)]
pub(crate) struct Ranking {
    pub(crate) score: f64,
    pub(crate) seq: Option<u64>,
    /// `_rankingScoreDetails`, when the node sent them: each rule's entry, in the node's order.
    pub(crate) details: Option<Details>,
}

#[derive(Deserialize)]
struct RankingFields {
    #[serde(rename = "_rankingScore")]
    score: Option<f64>,
    #[serde(rename = "_miroir_seq")]
    seq: Option<String>,
    #[serde(rename = "_rankingScoreDetails")]
    details: Option<Details>,
}

/// What a merge compares of one rule's ranking details; the rest is skipped unread.
#[derive(Deserialize, Default)]
pub(crate) struct Detail {
    pub(crate) order: Option<u64>,
    pub(crate) similarity: Option<f64>,
    pub(crate) distance: Option<f64>,
    /// A sort rule's value (`null` when the document has none, absent for other rules).
    #[serde(default, deserialize_with = "present")]
    pub(crate) value: Option<Value>,
    pub(crate) score: Option<f64>,
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// `_rankingScoreDetails`: rule name and entry, in the node's order.
pub(crate) type Details = Ordered<Detail>;

/// An object's fields in the order the node wrote them (a map would reorder or hash them).
pub(crate) struct Ordered<V>(pub(crate) Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Ordered<V>, M::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// What the client asked to see of the ranking.
#[derive(Clone, Copy)]
pub(crate) struct Shown {
    pub(crate) score: bool,
    pub(crate) details: bool,
}

impl Hit {
    pub fn from_value(value: Value) -> Hit {
        let raw =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Hit {
            raw,
            parsed: OnceCell::from(value),
        }
    }

    pub(crate) fn ranking(&self) -> Ranking {
        match serde_json::from_str::<RankingFields>(self.raw.get()) {
            Ok(fields) => Ranking {
                score: fields.score.unwrap_or(0.0),
                seq: fields.seq.as_deref().and_then(decode_seq),
                details: fields.details,
            },
            // A field of an unexpected type: read leniently from the hit as a value.
            Err(_) => {
                let hit = self.value();
                Ranking {
                    score: hit
                        .get("_rankingScore")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    seq: miroir_topology::reserved::seq_of(hit),
                    details: hit
                        .get("_rankingScoreDetails")
                        .and_then(|d| Details::deserialize(d).ok()),
                }
            }
        }
    }

    /// The hit as a value (parsed once, when first asked).
    pub fn value(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_str(self.raw.get()).unwrap_or(Value::Null))
    }

    /// Writes the hit as the client sees it: without Miroir's fields (also inside `_formatted`
    /// and `_matchesPosition`), the ranking score and details only if asked, and without `hide`.
    pub(crate) fn write(&self, show: Shown, hide: Option<&str>, out: &mut Vec<u8>) {
        let Ok(Ordered(fields)) = serde_json::from_str::<Fields>(self.raw.get()) else {
            // Not an object: as the node sent it.
            out.extend_from_slice(self.raw.get().as_bytes());
            return;
        };
        let dropped = |name: &str| {
            RESERVED_FIELDS.contains(&name)
                || (name == "_rankingScore" && !show.score)
                || (name == "_rankingScoreDetails" && !show.details)
                || Some(name) == hide
        };
        write_object(
            out,
            fields.iter().filter(|(k, _)| !dropped(k)),
            |k, v, out| {
                if k == "_formatted" || k == "_matchesPosition" {
                    if let Ok(Ordered(inner)) = serde_json::from_str::<Fields>(v.get()) {
                        let kept = inner
                            .iter()
                            .filter(|(k, _)| !RESERVED_FIELDS.contains(&k.as_str()));
                        write_object(out, kept, |_, v, out| {
                            out.extend_from_slice(v.get().as_bytes())
                        });
                        return;
                    }
                }
                out.extend_from_slice(v.get().as_bytes());
            },
        );
    }
}

/// `{"k":v,...}` with each value written by `value`.
fn write_object<'a>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = &'a (String, &'a RawValue)>,
    value: impl Fn(&str, &RawValue, &mut Vec<u8>),
) {
    out.push(b'{');
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // A string always serializes.
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        value(k, v, out);
    }
    out.push(b'}');
}

/// An object's fields in order, values as the node wrote them.
type Fields<'a> = Ordered<&'a RawValue>;

/// A node's answer to a search: its fields in order (`hits` among them as `null`, holding its
/// place) and its hits.
pub struct NodeAnswer {
    pub fields: Map<String, Value>,
    pub hits: Vec<Hit>,
}

impl NodeAnswer {
    /// Reads a node's answer; `None` unless it is a JSON object.
    pub fn parse(body: &[u8]) -> Option<NodeAnswer> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let answer = de.deserialize_map(AnswerVisitor).ok()?;
        de.end().ok()?;
        Some(answer)
    }

    /// An answer already read as values (hits under `hits`).
    pub fn from_map(mut fields: Map<String, Value>) -> NodeAnswer {
        let hits = match fields.get_mut("hits") {
            Some(Value::Array(hits)) => std::mem::take(hits)
                .into_iter()
                .map(Hit::from_value)
                .collect(),
            _ => Vec::new(),
        };
        if let Some(slot) = fields.get_mut("hits") {
            *slot = Value::Null;
        }
        NodeAnswer { fields, hits }
    }
}

struct AnswerVisitor;

impl<'de> Visitor<'de> for AnswerVisitor {
    type Value = NodeAnswer;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a search answer")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<NodeAnswer, M::Error> {
        let mut fields = Map::new();
        let mut hits = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "hits" {
                let raw: Vec<Box<RawValue>> = map.next_value()?;
                hits = raw
                    .into_iter()
                    .map(|raw| Hit {
                        raw,
                        parsed: OnceCell::new(),
                    })
                    .collect();
                fields.insert(key, Value::Null);
            } else {
                fields.insert(key, map.next_value()?);
            }
        }
        Ok(NodeAnswer { fields, hits })
    }
}

/// Writes an answer's fields in order, `hits` as `page` (each hit written as [`Hit::write`]).
pub(crate) fn write_answer<'h>(
    fields: &Map<String, Value>,
    page: impl Iterator<Item = &'h Hit>,
    show: Shown,
    hide: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut page = Some(page);
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        match page.take_if(|_| k == "hits") {
            Some(hits) => {
                out.push(b'[');
                for (j, hit) in hits.enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    hit.write(show, hide, &mut out);
                }
                out.push(b']');
            }
            None => {
                let _ = serde_json::to_writer(&mut out, v);
            }
        }
    }
    out.push(b'}');
    out
}
