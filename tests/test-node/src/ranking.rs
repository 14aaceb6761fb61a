//! The test node's own relevance: a small bucket sort in the spirit of Meilisearch's.
//!
//! Every relevancy rule gives a `Rank { rank, max }` computed from the query and the document
//! alone (never from other documents or corpus statistics), so scores from different shards are
//! comparable. Ranks fold into `_rankingScore` with Meilisearch's mixed-radix formula.

use serde_json::{json, Map, Value};

use crate::state::Document;

pub const MAX_QUERY_WORDS: usize = 10;
/// Word distances at or beyond this are all "far", like Meilisearch's proximity cap.
const MAX_PAIR_COST: u64 = 7;
/// Word positions at or beyond this all count the same for `wordPosition`.
const MAX_POSITION_COST: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub rank: u64,
    pub max: u64,
}

impl Rank {
    pub fn score(self) -> f64 {
        self.rank as f64 / self.max as f64
    }

    /// Orders by local score, higher first, without floating point.
    pub fn cmp_desc(self, other: Rank) -> std::cmp::Ordering {
        (other.rank as u128 * self.max as u128).cmp(&(self.rank as u128 * other.max as u128))
    }

    /// Meilisearch's `Rank::global_score`: `rank = (outer.rank-1)*inner.max + inner.rank`.
    pub fn fold(ranks: impl IntoIterator<Item = Rank>) -> Option<Rank> {
        let mut iter = ranks.into_iter();
        let mut cur = iter.next()?;
        for next in iter {
            cur.rank = (cur.rank - 1) * next.max + next.rank;
            cur.max *= next.max;
        }
        Some(cur)
    }

    pub fn global_score(ranks: impl IntoIterator<Item = Rank>) -> f64 {
        Self::fold(ranks).map_or(1.0, Rank::score)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchingStrategy {
    #[default]
    Last,
    All,
    Frequency,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub terms: Vec<String>,
    /// The last word matches as a prefix unless the query ends with a separator.
    pub last_is_prefix: bool,
}

impl Query {
    pub fn parse(q: &str) -> Self {
        let mut terms = tokenize(q);
        let ends_with_separator = q.chars().last().is_some_and(|c| !c.is_alphanumeric());
        let truncated = terms.len() > MAX_QUERY_WORDS;
        terms.truncate(MAX_QUERY_WORDS);
        Self {
            terms,
            last_is_prefix: !ends_with_separator && !truncated,
        }
    }

    pub fn is_placeholder(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Folds the common Latin accents so `Amélie` matches `amelie`.
fn fold_char(c: char) -> char {
    match c {
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' | 'ø' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => c,
    }
}

/// Lowercase, accent-folded words split on every non-alphanumeric character.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .flat_map(char::to_lowercase)
                .map(fold_char)
                .collect()
        })
        .collect()
}

/// One searchable attribute of a document: its weight (index in `searchableAttributes`, 0 for
/// `*`) and its words, array elements concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub path: String,
    pub weight: usize,
    pub tokens: Vec<String>,
}

/// Splits a document into searchable attributes, in document order.
pub fn searchable_text(doc: &Document, searchable: Option<&[String]>) -> Vec<Attr> {
    fn walk(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(obj) => {
                for (k, v) in obj {
                    walk(v, &format!("{path}.{k}"), out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, path, out)),
            Value::String(s) => out.push((path.to_string(), s.clone())),
            Value::Number(n) => out.push((path.to_string(), n.to_string())),
            Value::Bool(b) => out.push((path.to_string(), b.to_string())),
            Value::Null => {}
        }
    }
    let mut leaves = Vec::new();
    for (k, v) in doc {
        if k != crate::vectors::VECTORS_FIELD {
            walk(v, k, &mut leaves);
        }
    }
    let mut attrs: Vec<Attr> = Vec::new();
    for (path, text) in leaves {
        let weight = match searchable {
            None => Some(0),
            Some(list) => list
                .iter()
                .position(|s| path == *s || path.starts_with(&format!("{s}."))),
        };
        let Some(weight) = weight else { continue };
        let tokens = tokenize(&text);
        match attrs.iter_mut().find(|a| a.path == path) {
            Some(attr) => attr.tokens.extend(tokens),
            None => attrs.push(Attr {
                path,
                weight,
                tokens,
            }),
        }
    }
    attrs
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Occurrence {
    attr: usize,
    pos: usize,
    exact: bool,
}

/// How a document matches a query, from which every relevancy rule derives its rank.
#[derive(Debug, Clone)]
pub struct DocMatch {
    query_len: usize,
    /// Query-term indices that count, in query order.
    effective: Vec<usize>,
    occurrences: Vec<Vec<Occurrence>>,
    weights: usize,
    best_weight: usize,
    exact_attr: ExactAttr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ExactAttr {
    ExactMatch,
    MatchesStart,
    NoExactMatch,
}

/// `None` when the document is not a hit. With `last` a document must contain the first query
/// word and counts the longest run of leading words it contains (Meilisearch drops words from
/// the end); `all` needs every word; `frequency` counts whichever words it contains.
pub fn match_document(
    query: &Query,
    attrs: &[Attr],
    weights: usize,
    strategy: MatchingStrategy,
) -> Option<DocMatch> {
    let n = query.terms.len();
    let mut occurrences = vec![Vec::new(); n];
    for (ai, attr) in attrs.iter().enumerate() {
        for (pos, token) in attr.tokens.iter().enumerate() {
            for (ti, term) in query.terms.iter().enumerate() {
                let exact = token == term;
                let prefix =
                    ti + 1 == n && query.last_is_prefix && token.starts_with(term.as_str());
                if exact || prefix {
                    occurrences[ti].push(Occurrence {
                        attr: ai,
                        pos,
                        exact,
                    });
                }
            }
        }
    }
    let effective: Vec<usize> = match strategy {
        MatchingStrategy::Last => (0..n).take_while(|i| !occurrences[*i].is_empty()).collect(),
        MatchingStrategy::All if occurrences.iter().all(|o| !o.is_empty()) => (0..n).collect(),
        MatchingStrategy::All => Vec::new(),
        MatchingStrategy::Frequency => (0..n).filter(|i| !occurrences[*i].is_empty()).collect(),
    };
    if effective.is_empty() {
        return None;
    }
    let best_weight = effective
        .iter()
        .flat_map(|t| occurrences[*t].iter().map(|o| attrs[o.attr].weight))
        .min()
        .unwrap_or(0);
    let exact_attr = if attrs.iter().any(|a| a.tokens == query.terms) {
        ExactAttr::ExactMatch
    } else if attrs.iter().any(|a| a.tokens.starts_with(&query.terms)) {
        ExactAttr::MatchesStart
    } else {
        ExactAttr::NoExactMatch
    };
    Some(DocMatch {
        query_len: n,
        effective,
        occurrences,
        weights: weights.max(1),
        best_weight,
        exact_attr,
    })
}

impl DocMatch {
    fn k(&self) -> u64 {
        self.effective.len() as u64
    }

    fn words(&self) -> Rank {
        Rank {
            rank: self.k(),
            max: self.query_len as u64,
        }
    }

    /// Typo tolerance is not implemented: every match is exact, so this is always full marks.
    fn typo(&self) -> Rank {
        Rank {
            rank: self.k() + 1,
            max: self.k() + 1,
        }
    }

    fn proximity(&self) -> Rank {
        let max_cost = MAX_PAIR_COST * (self.k() - 1);
        let cost: u64 = self
            .effective
            .windows(2)
            .map(|w| {
                let mut best = MAX_PAIR_COST;
                for a in &self.occurrences[w[0]] {
                    for b in &self.occurrences[w[1]] {
                        if a.attr != b.attr {
                            continue;
                        }
                        // Reversed order costs one more, like Meilisearch.
                        let d = if b.pos > a.pos {
                            b.pos - a.pos
                        } else {
                            a.pos - b.pos + 1
                        };
                        best = best.min((d as u64).min(MAX_PAIR_COST + 1) - 1);
                    }
                }
                best
            })
            .sum();
        Rank {
            rank: max_cost - cost + 1,
            max: max_cost + 1,
        }
    }

    fn attribute_rank(&self) -> Rank {
        Rank {
            rank: (self.weights - self.best_weight) as u64,
            max: self.weights as u64,
        }
    }

    fn word_position(&self) -> Rank {
        let max_cost = MAX_POSITION_COST * self.k();
        let cost: u64 = self
            .effective
            .iter()
            .map(|t| {
                self.occurrences[*t]
                    .iter()
                    .map(|o| (o.pos as u64).min(MAX_POSITION_COST))
                    .min()
                    .unwrap_or(MAX_POSITION_COST)
            })
            .sum();
        Rank {
            rank: max_cost - cost + 1,
            max: max_cost + 1,
        }
    }

    fn exact_words(&self) -> u64 {
        self.effective
            .iter()
            .filter(|t| self.occurrences[**t].iter().any(|o| o.exact))
            .count() as u64
    }

    fn exactness(&self) -> Rank {
        match self.exact_attr {
            ExactAttr::ExactMatch => Rank { rank: 3, max: 3 },
            ExactAttr::MatchesStart => Rank { rank: 2, max: 3 },
            ExactAttr::NoExactMatch => Rank { rank: 1, max: 3 }.fold_with(Rank {
                rank: self.exact_words() + 1,
                max: self.k() + 1,
            }),
        }
    }

    /// The rank and `_rankingScoreDetails` entry of a relevancy rule, `None` for other rules.
    pub fn rule(&self, rule: &str, order: usize) -> Option<(Rank, Value)> {
        let detail = |rank: Rank, extra: Value| {
            let mut map = Map::new();
            map.insert("order".into(), json!(order));
            if let Value::Object(extra) = extra {
                map.extend(extra);
            }
            map.insert("score".into(), json!(rank.score()));
            (rank, Value::Object(map))
        };
        Some(match rule {
            "words" => detail(
                self.words(),
                json!({"matchingWords": self.k(), "maxMatchingWords": self.query_len}),
            ),
            "typo" => detail(
                self.typo(),
                json!({"typoCount": 0, "maxTypoCount": self.k()}),
            ),
            "proximity" => detail(self.proximity(), json!({})),
            "attributeRank" => detail(self.attribute_rank(), json!({})),
            "wordPosition" => detail(self.word_position(), json!({})),
            "attribute" => {
                let (a, p) = (self.attribute_rank(), self.word_position());
                let folded = a.fold_with(p);
                detail(
                    folded,
                    json!({"attributeRankingOrderScore": a.score(), "queryWordDistanceScore": p.score()}),
                )
            }
            "exactness" => {
                let extra = match self.exact_attr {
                    ExactAttr::ExactMatch => json!({"matchType": "exactMatch"}),
                    ExactAttr::MatchesStart => json!({"matchType": "matchesStart"}),
                    ExactAttr::NoExactMatch => json!({
                        "matchType": "noExactMatch",
                        "matchingWords": self.exact_words(),
                        "maxMatchingWords": self.k()
                    }),
                };
                detail(self.exactness(), extra)
            }
            _ => return None,
        })
    }
}

impl Rank {
    fn fold_with(self, inner: Rank) -> Rank {
        Rank {
            rank: (self.rank - 1) * inner.max + inner.rank,
            max: self.max * inner.max,
        }
    }
}

pub fn is_relevancy_rule(rule: &str) -> bool {
    matches!(
        rule,
        "words"
            | "typo"
            | "proximity"
            | "attributeRank"
            | "wordPosition"
            | "attribute"
            | "exactness"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Document {
        v.as_object().unwrap().clone()
    }

    const RULES: &[&str] = &[
        "words",
        "typo",
        "proximity",
        "attributeRank",
        "wordPosition",
        "exactness",
    ];

    fn score(q: &str, d: &Document, searchable: Option<&[String]>) -> Option<f64> {
        let query = Query::parse(q);
        let attrs = searchable_text(d, searchable);
        let m = match_document(
            &query,
            &attrs,
            searchable.map_or(1, <[String]>::len),
            MatchingStrategy::Last,
        )?;
        Some(Rank::global_score(
            RULES
                .iter()
                .enumerate()
                .filter_map(|(i, r)| m.rule(r, i))
                .map(|(r, _)| r),
        ))
    }

    #[test]
    fn fold_reproduces_meilisearch_scores() {
        // Ranks read off a recorded Meilisearch `_rankingScoreDetails`; the fold must give the
        // recorded `_rankingScore` (0.4621212121212121 for "life drama" on "The Life Aquatic").
        let ranks = [
            Rank { rank: 1, max: 2 },
            Rank { rank: 2, max: 2 },
            Rank { rank: 1, max: 1 },
            Rank { rank: 1, max: 1 },
            Rank { rank: 10, max: 11 },
            Rank { rank: 1, max: 3 },
            Rank { rank: 2, max: 2 },
        ];
        assert_eq!(Rank::global_score(ranks), 0.4621212121212121);
        assert_eq!(Rank::global_score([]), 1.0);
    }

    #[test]
    fn score_depends_only_on_query_and_document() {
        let a = doc(json!({"id": 1, "title": "Life of Pi", "genres": ["Adventure", "Drama"]}));
        let b = doc(json!({"id": 2, "title": "Something else entirely"}));
        let alone = score("life drama", &a, None);
        // Same document, same query: same score whatever else exists.
        let _ = score("life drama", &b, None);
        assert_eq!(score("life drama", &a, None), alone);
        assert!(alone.is_some_and(|s| s > 0.0 && s <= 1.0));
        assert_eq!(score("life drama", &b, None), None);
    }

    #[test]
    fn orders_like_a_bucket_sort() {
        let exact = doc(json!({"title": "Drama"}));
        let starts = doc(json!({"title": "Drama Queen"}));
        let later = doc(json!({"title": "The Big Drama"}));
        let s = |d: &Document| score("drama", d, None).unwrap();
        assert_eq!(s(&exact), 1.0);
        assert!(s(&exact) > s(&starts) && s(&starts) > s(&later));

        // More matched words beat everything after the words rule.
        let both = doc(
            json!({"title": "far apart", "body": "x x x x x x x x x x x x life y y y y y y y y drama"}),
        );
        let one = doc(json!({"title": "life"}));
        assert!(
            score("life drama", &both, None).unwrap() > score("life drama", &one, None).unwrap()
        );

        // Adjacent words beat distant ones.
        let near = doc(json!({"t": "life drama"}));
        let far = doc(json!({"t": "life a b c d e f g h drama"}));
        assert!(
            score("life drama", &near, None).unwrap() > score("life drama", &far, None).unwrap()
        );
    }

    #[test]
    fn matching_strategy_last_drops_words_from_the_end() {
        let q = Query::parse("life drama");
        let only_drama = searchable_text(&doc(json!({"g": "Drama"})), None);
        assert!(match_document(&q, &only_drama, 1, MatchingStrategy::Last).is_none());
        assert!(match_document(&q, &only_drama, 1, MatchingStrategy::Frequency).is_some());
        let only_life = searchable_text(&doc(json!({"g": "Life"})), None);
        assert!(match_document(&q, &only_life, 1, MatchingStrategy::All).is_none());
        assert!(match_document(&q, &only_life, 1, MatchingStrategy::Last).is_some());
    }

    #[test]
    fn prefix_and_attribute_weights() {
        let d = doc(json!({"title": "Aquatic", "overview": "life"}));
        assert!(score("aqua", &d, None).is_some());
        assert!(score("aqua ", &d, None).is_none());
        let searchable = vec!["title".to_string(), "overview".to_string()];
        let in_title = doc(json!({"title": "life", "overview": "x"}));
        let in_overview = doc(json!({"title": "x", "overview": "life"}));
        assert!(
            score("life", &in_title, Some(&searchable)).unwrap()
                > score("life", &in_overview, Some(&searchable)).unwrap()
        );
        assert_eq!(
            tokenize("Amélie, Jean-Pierre"),
            vec!["amelie", "jean", "pierre"]
        );
    }
}
