//! The deterministic corpus shared by the parity suite (`tests/parity.rs`) and `make bench`
//! (`miroir-bench`): the same documents on every run, on every machine.
//!
//! A small vocabulary makes most queries match many documents with many equal scores (ties);
//! numbers, booleans, multi-valued arrays, nested objects, a `studio` with duplicates for
//! `distinct`, and fields that are missing, `null` or empty exercise filters, sorts and facets.

use serde_json::{json, Map, Value};

/// Words of `title` and `overview`: few, so queries match many documents and produce ties.
pub const WORDS: [&str; 12] = [
    "river", "city", "night", "garden", "storm", "winter", "mirror", "road", "light", "shadow",
    "ocean", "forest",
];
pub const GENRES: [&str; 6] = [
    "drama",
    "comedy",
    "action",
    "horror",
    "documentary",
    "romance",
];
pub const TAGS: [&str; 5] = ["classic", "indie", "award", "cult", "remake"];
pub const COUNTRIES: [&str; 4] = ["France", "Japan", "Brazil", "Canada"];
pub const DIRECTORS: [&str; 7] = [
    "Ada Moss",
    "Bo Chen",
    "Cleo Park",
    "Dev Rao",
    "Eli Stone",
    "Fay Lund",
    "Gus Ito",
];
/// `studio` values: many documents share each one (the `distinct` attribute).
pub const STUDIOS: usize = 40;

/// SplitMix64: a tiny, seeded, portable generator (no randomness across runs).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| *self.pick(&WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Document `i` of the corpus (the same for a given `i` whatever `n`).
pub fn document(i: usize) -> Value {
    let mut rng = Rng::new(0x5EED_0000 + i as u64);
    let mut doc = Map::new();
    doc.insert("id".into(), json!(i));
    let title_len = 1 + rng.below(4);
    doc.insert("title".into(), json!(rng.words(title_len)));
    // ~10% without an overview.
    if !rng.chance(10) {
        let len = 4 + rng.below(10);
        doc.insert("overview".into(), json!(rng.words(len)));
    }
    let genre_count = 1 + rng.below(3);
    let mut genres: Vec<&str> = Vec::new();
    for _ in 0..genre_count {
        let g = *rng.pick(&GENRES);
        if !genres.contains(&g) {
            genres.push(g);
        }
    }
    doc.insert("genres".into(), json!(genres));
    doc.insert("year".into(), json!(1950 + rng.below(75)));
    // One decimal: many equal ratings.
    doc.insert("rating".into(), json!(rng.below(51) as f64 / 5.0));
    // ~20% without a price, ~5% with a null one.
    match rng.below(20) {
        0..=3 => {}
        4 => {
            doc.insert("price".into(), Value::Null);
        }
        _ => {
            doc.insert("price".into(), json!(1 + rng.below(30)));
        }
    }
    doc.insert("available".into(), json!(rng.chance(60)));
    let mut director = Map::new();
    director.insert("name".into(), json!(*rng.pick(&DIRECTORS)));
    if !rng.chance(25) {
        director.insert("country".into(), json!(*rng.pick(&COUNTRIES)));
    }
    doc.insert("director".into(), Value::Object(director));
    // Tags: an array of 1-2, an empty array, null, or missing.
    match rng.below(10) {
        0 => {
            doc.insert("tags".into(), json!([]));
        }
        1 => {
            doc.insert("tags".into(), Value::Null);
        }
        2 => {}
        _ => {
            let a = *rng.pick(&TAGS);
            let b = *rng.pick(&TAGS);
            let tags = if a == b { vec![a] } else { vec![a, b] };
            doc.insert("tags".into(), json!(tags));
        }
    }
    doc.insert(
        "studio".into(),
        json!(format!("studio-{:02}", rng.below(STUDIOS))),
    );
    Value::Object(doc)
}

/// The first `n` documents.
pub fn documents(n: usize) -> Vec<Value> {
    (0..n).map(document).collect()
}

/// The settings the parity suite and the bench give their main index (typos off: on real
/// Meilisearch a query word then matches exactly the words it spells).
pub fn settings() -> Value {
    json!({
        "searchableAttributes": ["title", "overview", "director.name", "tags", "genres"],
        "filterableAttributes": [
            "genres", "year", "rating", "price", "available", "director.name",
            "director.country", "tags", "studio", "id"
        ],
        "sortableAttributes": ["year", "rating", "price", "title", "studio", "director.name"],
        "typoTolerance": {"enabled": false}
    })
}

/// `docs` as NDJSON, one document per line.
pub fn ndjson(docs: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for doc in docs {
        out.extend_from_slice(&serde_json::to_vec(doc).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_deterministic_and_varied() {
        let a = documents(500);
        assert_eq!(a, documents(500));
        assert_eq!(document(42), a[42]);
        let count = |f: &dyn Fn(&Value) -> bool| a.iter().filter(|d| f(d)).count();
        assert!(count(&|d| d.get("overview").is_none()) > 20);
        assert!(count(&|d| d.get("price").is_none()) > 20);
        assert!(count(&|d| d["price"].is_null() && d.get("price").is_some()) > 5);
        assert!(count(&|d| d["tags"] == json!([])) > 10);
        assert!(count(&|d| d["genres"].as_array().is_some_and(|g| g.len() > 1)) > 100);
    }
}
