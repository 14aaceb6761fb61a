//! Every parity query, generated deterministically (fixed lists plus a seeded generator):
//! the same cases, in the same order, on every run.

use miroir_e2e::corpus::{Rng, DIRECTORS, GENRES, TAGS, WORDS};
use serde_json::{json, Map, Value};

/// The main index and the settings variants (each a separate index, set up alike on every
/// target; see `parity.rs`).
pub const MAIN: &str = "movies";
pub const RULES: &str = "movies_rules";
pub const FACETING: &str = "movies_faceting";
pub const PAGINATION: &str = "movies_pagination";
pub const DISTINCT_ATTR: &str = "movies_distinct";
/// The corpus with a 3-dimension user-provided embedding (`embedding`), for semantic, hybrid
/// and `/similar` queries.
pub const VECTORS: &str = "movies_vectors";

/// Document `id`'s embedding, unique to it; every tenth document has none.
pub fn embedding(id: u64) -> Value {
    if id % 10 == 7 {
        return Value::Null;
    }
    let mut rng = Rng::new(0xE3BED + id);
    // Thousands of values per component: no two documents share an embedding, so every vector
    // ranking is decided by similarity alone (real Meilisearch orders equal similarities by its
    // vector store's graph, which no merge can reproduce).
    let component = |rng: &mut Rng| (rng.below(4001) as f64 - 2000.0) / 2000.0;
    let v = [
        component(&mut rng),
        component(&mut rng),
        component(&mut rng),
    ];
    if v.iter().all(|c| *c == 0.0) {
        json!([1.0, 0.0, 0.0])
    } else {
        json!(v)
    }
}

/// One request, sent as it is to the reference and to every cluster.
#[derive(Clone, Debug)]
pub enum Request {
    Post { path: String, body: Value },
    Get { path: String },
}

#[derive(Clone, Debug)]
pub struct Case {
    pub family: &'static str,
    pub request: Request,
}

impl Case {
    pub fn describe(&self) -> String {
        match &self.request {
            Request::Post { path, body } => format!("POST {path} {body}"),
            Request::Get { path } => format!("GET {path}"),
        }
    }
}

fn search(family: &'static str, index: &str, body: Value) -> Case {
    Case {
        family,
        request: Request::Post {
            path: format!("/indexes/{index}/search"),
            body,
        },
    }
}

fn post(family: &'static str, path: &str, body: Value) -> Case {
    Case {
        family,
        request: Request::Post {
            path: path.to_string(),
            body,
        },
    }
}

fn get(family: &'static str, path: &str) -> Case {
    Case {
        family,
        request: Request::Get {
            path: path.to_string(),
        },
    }
}

/// Filters used alone and by the generator: every operator, arrays, nested fields, missing,
/// null and empty values.
pub const FILTERS: &[&str] = &[
    "year = 1990",
    "year != 1990",
    "year > 2000",
    "year >= 1960 AND year < 1970",
    "year 1980 TO 1989",
    "rating >= 8",
    "rating < 2.5",
    "price <= 10",
    "price EXISTS",
    "price NOT EXISTS",
    "price IS NULL",
    "price IS NOT NULL",
    "tags IS EMPTY",
    "tags IS NOT EMPTY",
    "tags IS NULL",
    "tags NOT EXISTS",
    "tags = classic",
    "tags IN [cult, remake]",
    "genres = drama",
    "genres != drama",
    "genres IN [horror, documentary]",
    "genres NOT IN [drama, comedy, action]",
    "genres = drama AND genres = comedy",
    "genres = drama OR genres = romance",
    "NOT genres = action",
    "available = true",
    "available = false AND rating > 5",
    "director.name = \"Ada Moss\"",
    "director.country = Japan OR director.country NOT EXISTS",
    "director.country IN [France, Brazil] AND year < 1980",
    "studio = studio-07",
    "(genres = horror OR tags = cult) AND NOT available = true",
    "id < 100",
    "year = 1800",
];

fn filter_family(cases: &mut Vec<Case>) {
    for (i, filter) in FILTERS.iter().enumerate() {
        let q = if i % 3 == 0 {
            ""
        } else {
            WORDS[i % WORDS.len()]
        };
        cases.push(search("filter", MAIN, json!({"q": q, "filter": filter})));
    }
    // Array forms: the outer level is AND, inner arrays OR.
    for filter in [
        json!(["genres = drama", "year > 1990"]),
        json!([["genres = horror", "genres = comedy"], "available = true"]),
        json!([
            ["tags = indie", "tags IS EMPTY"],
            ["price > 20", "price NOT EXISTS"]
        ]),
        json!([
            "rating > 3",
            ["director.name = \"Bo Chen\"", "director.name = \"Gus Ito\""]
        ]),
        json!([]),
    ] {
        cases.push(search(
            "filter",
            MAIN,
            json!({"q": "night", "filter": filter, "limit": 30}),
        ));
    }
}

fn q_family(cases: &mut Vec<Case>) {
    let fixed = [
        json!({}),
        json!({"q": ""}),
        json!({"q": null}),
        json!({"q": "mirror"}),
        json!({"q": "mirror road"}),
        json!({"q": "river city night"}),
        json!({"q": "storm winter garden light shadow"}),
        json!({"q": "\"mirror road\""}),
        json!({"q": "\"night storm\" garden"}),
        json!({"q": "zzzzqx"}),
        json!({"q": "mirror zzzzqx"}),
        json!({"q": "riv"}),
        json!({"q": "OCEAN Forest"}),
        json!({"q": "moss"}),
        json!({"q": "classic"}),
        json!({"q": "drama"}),
        json!({"q": "road "}),
        json!({"q": "city-light"}),
        json!({"q": "a b c d e f g h i j river"}),
        json!({"q": "mirror", "limit": 100}),
    ];
    for body in fixed {
        cases.push(search("q", MAIN, body));
    }
    let mut rng = Rng::new(1);
    for _ in 0..12 {
        let n = 1 + rng.below(3);
        let words: Vec<&str> = (0..n).map(|_| *rng.pick(&WORDS)).collect();
        cases.push(search(
            "q",
            MAIN,
            json!({"q": words.join(" "), "limit": 10 + rng.below(40)}),
        ));
    }
}

fn sort_family(cases: &mut Vec<Case>) {
    let sorts = [
        json!(["year:asc"]),
        json!(["year:desc"]),
        json!(["rating:desc", "year:asc"]),
        json!(["price:asc"]),
        json!(["price:desc"]),
        json!(["title:asc"]),
        json!(["title:desc", "rating:asc"]),
        json!(["director.name:asc", "year:desc"]),
        json!(["studio:asc", "price:asc", "rating:desc"]),
    ];
    for (i, sort) in sorts.iter().enumerate() {
        cases.push(search("sort", MAIN, json!({"sort": sort})));
        cases.push(search(
            "sort",
            MAIN,
            json!({"q": WORDS[i % WORDS.len()], "sort": sort, "limit": 25}),
        ));
    }
    cases.push(search(
        "sort",
        MAIN,
        json!({"q": "garden", "sort": ["year:asc"], "filter": "genres = drama", "offset": 15, "limit": 15}),
    ));
    cases.push(search(
        "sort",
        MAIN,
        json!({"sort": ["price:asc"], "filter": "price IS NULL OR price NOT EXISTS", "limit": 40}),
    ));
}

fn pagination_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"q": "river", "offset": 0, "limit": 5}),
        json!({"q": "river", "offset": 5, "limit": 5}),
        json!({"q": "river", "offset": 37, "limit": 11}),
        json!({"q": "river", "limit": 0}),
        json!({"offset": 995, "limit": 10}),
        json!({"offset": 2995, "limit": 50}),
        json!({"offset": 100000, "limit": 5}),
        json!({"q": "zzzzqx", "offset": 10}),
        json!({"q": "night storm", "offset": 200, "limit": 100}),
        json!({"q": "winter", "page": 1, "hitsPerPage": 7}),
        json!({"q": "winter", "page": 3, "hitsPerPage": 7}),
        json!({"q": "winter", "page": 0, "hitsPerPage": 7}),
        json!({"q": "winter", "page": 2}),
        json!({"q": "winter", "hitsPerPage": 0}),
        json!({"q": "winter", "page": 10000, "hitsPerPage": 10}),
        json!({"page": 50, "hitsPerPage": 20}),
        json!({"q": "light", "page": 2, "hitsPerPage": 15, "filter": "year > 1990"}),
        json!({"q": "light", "page": 1, "hitsPerPage": 5, "offset": 3, "limit": 4}),
    ] {
        cases.push(search("pagination", MAIN, body));
    }
}

fn facets_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"facets": ["genres"]}),
        json!({"facets": ["genres", "year", "rating"], "limit": 0}),
        json!({"facets": ["director.name", "director.country", "genres", "tags", "studio", "year"]}),
        json!({"q": "mirror", "facets": ["director.name", "director.country", "available", "price"], "limit": 3}),
        json!({"q": "storm", "facets": ["tags", "available", "price"]}),
        json!({"facets": ["director.name", "director.country"], "filter": "year < 1970"}),
        json!({"facets": ["director.name", "director.country", "genres"]}),
        json!({"facets": ["studio"], "q": "ocean"}),
        json!({"facets": ["price", "rating"], "filter": "genres = horror"}),
        json!({"facets": []}),
        json!({"facets": ["genres", "tags"], "q": "zzzzqx"}),
        json!({"facets": ["year"], "page": 2, "hitsPerPage": 5}),
        json!({"facets": ["genres", "studio"], "distinct": "studio", "q": "road"}),
        json!({"facets": ["id"], "filter": "id < 50"}),
    ] {
        cases.push(search("facets", MAIN, body));
    }
}

fn attributes_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"q": "city", "attributesToRetrieve": ["title"]}),
        json!({"q": "city", "attributesToRetrieve": ["id", "title", "year"]}),
        json!({"q": "city", "attributesToRetrieve": ["*"]}),
        json!({"q": "city", "attributesToRetrieve": []}),
        json!({"q": "city", "attributesToRetrieve": ["director.name", "nope"]}),
        json!({"q": "city", "attributesToRetrieve": ["director"]}),
        // Fields the merge needs, not retrieved:
        json!({"sort": ["year:desc"], "attributesToRetrieve": ["title"]}),
        json!({"q": "road", "sort": ["rating:asc", "price:desc"], "attributesToRetrieve": ["id"]}),
        json!({"q": "road", "distinct": "studio", "attributesToRetrieve": ["title"]}),
        json!({"q": "road", "showRankingScore": true, "attributesToRetrieve": ["id"]}),
        json!({"q": "road", "facets": ["genres"], "attributesToRetrieve": ["year"]}),
        json!({"sort": ["director.name:desc"], "attributesToRetrieve": ["director.country"]}),
        json!({"q": "garden", "attributesToRetrieve": ["_miroir_shard"]}),
    ] {
        cases.push(search("attributes", MAIN, body));
    }
}

fn formatting_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"q": "mirror", "attributesToHighlight": ["title"]}),
        json!({"q": "mirror road", "attributesToHighlight": ["*"]}),
        json!({"q": "mirror", "attributesToHighlight": ["title"], "highlightPreTag": "[", "highlightPostTag": "]"}),
        json!({"q": "storm", "attributesToCrop": ["overview"]}),
        json!({"q": "storm", "attributesToCrop": ["overview:3"], "cropMarker": "~"}),
        json!({"q": "storm", "attributesToCrop": ["overview"], "cropLength": 4}),
        json!({"q": "storm night", "attributesToCrop": ["*"], "cropLength": 2, "attributesToHighlight": ["overview"]}),
        json!({"q": "light", "showMatchesPosition": true}),
        json!({"q": "light shadow", "showMatchesPosition": true, "attributesToRetrieve": ["id"]}),
        json!({"q": "light", "showMatchesPosition": true, "attributesToHighlight": ["title"], "sort": ["year:asc"]}),
        json!({"attributesToHighlight": ["title"], "limit": 5}),
        json!({"q": "forest", "attributesToHighlight": ["title"], "attributesToRetrieve": ["id"]}),
    ] {
        cases.push(search("formatting", MAIN, body));
    }
}

fn scores_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"q": "river", "showRankingScore": true}),
        json!({"q": "river city", "showRankingScore": true, "limit": 60}),
        json!({"q": "river city", "showRankingScoreDetails": true}),
        json!({"q": "night garden storm", "showRankingScore": true, "showRankingScoreDetails": true}),
        json!({"showRankingScore": true, "limit": 5}),
        json!({"q": "river", "sort": ["year:asc"], "showRankingScoreDetails": true}),
        json!({"q": "river", "rankingScoreThreshold": 0.5}),
        json!({"q": "river city", "rankingScoreThreshold": 0.8, "showRankingScore": true}),
        json!({"q": "river city", "rankingScoreThreshold": 0.99, "limit": 100}),
        json!({"q": "river city", "rankingScoreThreshold": 0.0}),
        json!({"q": "river city", "rankingScoreThreshold": 1.0}),
        json!({"q": "mirror", "rankingScoreThreshold": 0.7, "facets": ["genres"]}),
        json!({"q": "mirror", "rankingScoreThreshold": 0.6, "page": 2, "hitsPerPage": 10}),
    ] {
        cases.push(search("scores", MAIN, body));
    }
}

fn distinct_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"distinct": "studio"}),
        json!({"q": "mirror", "distinct": "studio", "limit": 50}),
        json!({"q": "mirror", "distinct": "genres"}),
        json!({"q": "winter", "distinct": "director.name", "showRankingScore": true}),
        json!({"q": "winter", "distinct": "studio", "sort": ["year:desc"]}),
        json!({"distinct": "studio", "offset": 10, "limit": 10}),
        json!({"distinct": "studio", "page": 2, "hitsPerPage": 10}),
        json!({"q": "ocean", "distinct": "tags"}),
        json!({"q": "ocean", "distinct": "price", "filter": "year > 1980"}),
        json!({"distinct": "available"}),
    ] {
        cases.push(search("distinct", MAIN, body));
    }
}

fn strategy_family(cases: &mut Vec<Case>) {
    for strategy in ["last", "all", "frequency"] {
        for q in ["mirror road", "river night ocean", "zzzzqx city"] {
            cases.push(search(
                "strategy",
                MAIN,
                json!({"q": q, "matchingStrategy": strategy, "limit": 30}),
            ));
        }
    }
    for body in [
        json!({"q": "mirror", "attributesToSearchOn": ["title"]}),
        json!({"q": "mirror", "attributesToSearchOn": ["overview"], "limit": 40}),
        json!({"q": "moss", "attributesToSearchOn": ["director.name"]}),
        json!({"q": "classic", "attributesToSearchOn": ["title", "tags"]}),
        json!({"q": "road storm", "attributesToSearchOn": ["overview", "title"], "matchingStrategy": "all"}),
    ] {
        cases.push(search("strategy", MAIN, body));
    }
}

/// A query string, percent-encoded as a browser would (`+`-free: `%20` for spaces).
pub fn query_string(params: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn get_family(cases: &mut Vec<Case>) {
    let queries: &[&[(&str, &str)]] = &[
        &[],
        &[("q", "mirror")],
        &[("q", "mirror road"), ("limit", "7"), ("offset", "3")],
        &[("q", "night"), ("filter", "genres = drama AND year > 1980")],
        &[("q", "night"), ("sort", "year:desc,rating:asc")],
        &[("facets", "genres,tags"), ("q", "storm")],
        &[("facets", "director.name,genres"), ("limit", "2")],
        &[("q", "city"), ("attributesToRetrieve", "id,title")],
        &[("q", "city"), ("showRankingScore", "true")],
        &[
            ("q", "city"),
            ("showRankingScoreDetails", "true"),
            ("limit", "3"),
        ],
        &[("q", "city"), ("page", "2"), ("hitsPerPage", "6")],
        &[("q", "city"), ("distinct", "studio")],
        &[("q", "city ocean"), ("matchingStrategy", "all")],
        &[("q", "city"), ("attributesToSearchOn", "title")],
        &[("q", "city"), ("rankingScoreThreshold", "0.9")],
        &[
            ("q", "city"),
            ("attributesToHighlight", "title"),
            ("showMatchesPosition", "true"),
        ],
        &[
            ("q", "city"),
            ("attributesToCrop", "overview"),
            ("cropLength", "3"),
        ],
    ];
    for params in queries {
        let path = if params.is_empty() {
            format!("/indexes/{MAIN}/search")
        } else {
            format!("/indexes/{MAIN}/search?{}", query_string(params))
        };
        cases.push(get("get", &path));
    }
}

fn settings_family(cases: &mut Vec<Case>) {
    // Custom ranking rules (`rating:desc` before the typo rule, `year:asc` last).
    for body in [
        json!({"q": "mirror"}),
        json!({"q": "mirror road", "limit": 40}),
        json!({}),
        json!({"q": "storm", "sort": ["price:asc"]}),
        json!({"q": "storm", "showRankingScoreDetails": true, "limit": 5}),
        json!({"q": "storm", "attributesToRetrieve": ["title"], "limit": 30}),
        json!({"q": "ocean", "filter": "genres = comedy", "offset": 10, "limit": 10}),
        json!({"q": "light", "distinct": "studio"}),
    ] {
        cases.push(search("settings:rankingRules", RULES, body));
    }
    // sortFacetValuesBy and maxValuesPerFacet.
    for body in [
        json!({"facets": ["genres", "tags", "studio"]}),
        json!({"q": "garden", "facets": ["director.name", "director.country", "genres", "tags", "studio"]}),
        json!({"facets": ["year", "director.name"], "filter": "rating > 4"}),
        json!({"facets": ["studio"], "q": "winter night"}),
        json!({"facets": ["director.country", "available"]}),
    ] {
        cases.push(search("settings:faceting", FACETING, body));
    }
    // A small maxTotalHits.
    for body in [
        json!({}),
        json!({"limit": 50}),
        json!({"offset": 25, "limit": 10}),
        json!({"offset": 40, "limit": 10}),
        json!({"page": 2, "hitsPerPage": 20}),
        json!({"page": 3, "hitsPerPage": 10}),
        json!({"q": "river", "limit": 100, "showRankingScore": true}),
        json!({"q": "river", "sort": ["year:asc"], "offset": 20}),
    ] {
        cases.push(search("settings:pagination", PAGINATION, body));
    }
    // The index-level distinctAttribute.
    for body in [
        json!({}),
        json!({"q": "mirror"}),
        json!({"q": "mirror", "limit": 60}),
        json!({"sort": ["year:desc"], "offset": 5, "limit": 10}),
        json!({"q": "night", "facets": ["studio"]}),
    ] {
        cases.push(search("settings:distinctAttribute", DISTINCT_ATTR, body));
    }
}

fn multi_family(cases: &mut Vec<Case>) {
    let bodies = [
        json!({"queries": [
            {"indexUid": MAIN, "q": "mirror"},
            {"indexUid": MAIN, "q": "river", "filter": "year > 1990", "limit": 5},
        ]}),
        json!({"queries": [
            {"indexUid": MAIN, "q": "storm", "facets": ["genres"], "showRankingScore": true},
            {"indexUid": RULES, "q": "storm"},
            {"indexUid": FACETING, "facets": ["studio"], "limit": 0},
        ]}),
        json!({"queries": [
            {"indexUid": PAGINATION, "offset": 20, "limit": 20},
            {"indexUid": MAIN, "page": 2, "hitsPerPage": 4, "sort": ["rating:desc"]},
        ]}),
        json!({"queries": [{"indexUid": MAIN, "q": "night", "distinct": "studio", "attributesToRetrieve": ["id"]}]}),
        json!({"queries": []}),
        json!({"queries": [
            {"indexUid": MAIN, "q": "ocean", "rankingScoreThreshold": 0.9},
            {"indexUid": DISTINCT_ATTR, "q": "ocean"},
        ]}),
    ];
    for body in bodies {
        cases.push(post("multi-search", "/multi-search", body));
    }
}

fn facet_search_family(cases: &mut Vec<Case>) {
    let path = format!("/indexes/{MAIN}/facet-search");
    for body in [
        json!({"facetName": "genres"}),
        json!({"facetName": "genres", "facetQuery": "dr"}),
        json!({"facetName": "genres", "facetQuery": "o"}),
        json!({"facetName": "studio", "facetQuery": "studio-1"}),
        json!({"facetName": "studio", "q": "mirror"}),
        json!({"facetName": "director.name", "facetQuery": "a"}),
        json!({"facetName": "tags", "filter": "year < 1990"}),
        json!({"facetName": "tags", "q": "river night", "facetQuery": "c"}),
        json!({"facetName": "director.country", "q": "storm", "matchingStrategy": "all"}),
        json!({"facetName": "genres", "q": "zzzzqx"}),
        json!({"facetName": "genres", "facetQuery": "horror", "filter": "available = true"}),
        json!({"facetName": "studio", "exhaustiveFacetCount": true, "q": "garden"}),
    ] {
        cases.push(post("facet-search", &path, body));
    }
    for body in [
        json!({"facetName": "studio"}),
        json!({"facetName": "genres", "facetQuery": "c"}),
    ] {
        cases.push(post(
            "facet-search",
            &format!("/indexes/{FACETING}/facet-search"),
            body,
        ));
    }
}

fn errors_family(cases: &mut Vec<Case>) {
    for body in [
        json!({"filter": "overview = storm"}),
        json!({"filter": "year >"}),
        json!({"sort": ["overview:asc"]}),
        json!({"sort": ["year"]}),
        json!({"limit": "ten"}),
        json!({"offset": -1}),
        json!({"nope": true}),
        json!({"facets": ["overview"]}),
        json!({"distinct": "overview"}),
        json!({"rankingScoreThreshold": 1.5}),
        json!({"matchingStrategy": "some"}),
        json!({"attributesToSearchOn": ["price"]}),
    ] {
        cases.push(search("errors", MAIN, body));
    }
    cases.push(search("errors", "no_such_index", json!({"q": "x"})));
    cases.push(get("errors", &format!("/indexes/{MAIN}/search?limit=abc")));
    cases.push(get(
        "errors",
        &format!("/indexes/{MAIN}/search?unknownParam=1"),
    ));
    cases.push(post(
        "errors",
        "/multi-search",
        json!({"queries": [{"indexUid": MAIN}, {"indexUid": "no_such_index"}]}),
    ));
    cases.push(post(
        "errors",
        "/multi-search",
        json!({"queries": [{"indexUid": MAIN, "filter": "year >"}]}),
    ));
    cases.push(post(
        "errors",
        &format!("/indexes/{MAIN}/facet-search"),
        json!({"facetQuery": "x"}),
    ));
    cases.push(post(
        "errors",
        &format!("/indexes/{MAIN}/facet-search"),
        json!({"facetName": "overview"}),
    ));
}

fn vector_family(cases: &mut Vec<Case>) {
    let semantic = |ratio: f64| json!({"embedder": "embedding", "semanticRatio": ratio});
    for body in [
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": semantic(1.0)}),
        json!({"vector": [0.5, -1.0, 0.5], "hybrid": semantic(1.0), "limit": 40, "showRankingScore": true}),
        json!({"vector": [0.0, 1.0, 1.0], "hybrid": semantic(1.0), "filter": "genres = drama", "offset": 10, "limit": 10}),
        json!({"vector": [1.0, 1.0, 0.0], "hybrid": semantic(1.0), "showRankingScoreDetails": true, "limit": 5}),
        json!({"vector": [-1.0, 0.0, 0.5], "hybrid": semantic(1.0), "page": 2, "hitsPerPage": 15}),
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": semantic(1.0), "rankingScoreThreshold": 0.9}),
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": semantic(1.0), "retrieveVectors": true, "limit": 5}),
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": semantic(1.0), "facets": ["genres"], "distinct": "studio"}),
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": semantic(1.0), "sort": ["year:asc"]}),
        json!({"q": "mirror", "vector": [0.0, 0.5, 1.0], "hybrid": semantic(0.5)}),
        json!({"q": "mirror road", "vector": [0.0, 0.5, 1.0], "hybrid": semantic(0.8), "showRankingScore": true, "limit": 30}),
        json!({"q": "storm", "vector": [1.0, -1.0, 0.0], "hybrid": semantic(0.2), "filter": "year > 1990"}),
        json!({"q": "night", "hybrid": semantic(0.0)}),
        json!({"q": "garden", "vector": [1.0, 1.0, 1.0], "hybrid": semantic(0.5), "facets": ["tags"], "page": 1, "hitsPerPage": 10}),
    ] {
        cases.push(search("vector", VECTORS, body));
    }
    // Wrong dimensions, unknown embedder, text a user-provided embedder cannot embed.
    for body in [
        json!({"vector": [1.0, 0.0], "hybrid": semantic(1.0)}),
        json!({"vector": [1.0, 0.0, 0.0], "hybrid": {"embedder": "nope", "semanticRatio": 1.0}}),
        json!({"q": "river", "hybrid": semantic(0.5)}),
    ] {
        cases.push(search("errors", VECTORS, body));
    }
    cases.push(get(
        "vector",
        &format!(
            "/indexes/{VECTORS}/search?{}",
            query_string(&[
                ("q", "night"),
                ("hybridEmbedder", "embedding"),
                ("hybridSemanticRatio", "0.0")
            ])
        ),
    ));
    let similar = format!("/indexes/{VECTORS}/similar");
    for body in [
        json!({"id": 5, "embedder": "embedding"}),
        json!({"id": 5, "embedder": "embedding", "limit": 50, "showRankingScore": true}),
        json!({"id": 12, "embedder": "embedding", "offset": 15, "limit": 10}),
        json!({"id": 12, "embedder": "embedding", "filter": "rating > 5", "attributesToRetrieve": ["id", "title"]}),
        json!({"id": 40, "embedder": "embedding", "showRankingScoreDetails": true, "limit": 5}),
        json!({"id": 40, "embedder": "embedding", "rankingScoreThreshold": 0.95}),
        json!({"id": 40, "embedder": "embedding", "retrieveVectors": true, "limit": 3}),
        json!({"id": 7, "embedder": "embedding"}),
    ] {
        cases.push(post("similar", &similar, body));
    }
    for body in [
        json!({"id": 999999, "embedder": "embedding"}),
        json!({"id": 5, "embedder": "nope"}),
    ] {
        cases.push(post("errors", &similar, body));
    }
    cases.push(get(
        "similar",
        &format!("{similar}?id=5&embedder=embedding&offset=2&limit=7"),
    ));
}

fn federated_family(cases: &mut Vec<Case>) {
    let bodies = [
        json!({"federation": {}, "queries": [
            {"indexUid": MAIN, "q": "mirror"},
            {"indexUid": RULES, "q": "road"},
        ]}),
        json!({"federation": {"limit": 30, "offset": 5}, "queries": [
            {"indexUid": MAIN, "q": "river", "filter": "year > 1990"},
            {"indexUid": MAIN, "q": "night", "federationOptions": {"weight": 2.0}},
        ]}),
        json!({"federation": {"page": 2, "hitsPerPage": 10}, "queries": [
            {"indexUid": MAIN, "q": "storm garden"},
            {"indexUid": FACETING, "q": "ocean"},
        ]}),
        json!({"federation": {"facetsByIndex": {"movies": ["genres", "year"], "movies_faceting": ["studio"]}}, "queries": [
            {"indexUid": MAIN, "q": "light"},
            {"indexUid": FACETING, "q": "light"},
        ]}),
        json!({"federation": {"facetsByIndex": {"movies": ["genres"], "movies_rules": ["genres"]}, "mergeFacets": {}}, "queries": [
            {"indexUid": MAIN, "q": "shadow"},
            {"indexUid": RULES, "q": "forest"},
        ]}),
        json!({"federation": {"distinct": "studio"}, "queries": [
            {"indexUid": MAIN, "q": "winter"},
            {"indexUid": RULES, "q": "winter"},
        ]}),
        json!({"federation": {}, "queries": [
            {"indexUid": MAIN, "q": "city", "showRankingScore": true, "sort": ["year:asc"]},
            {"indexUid": VECTORS, "vector": [1.0, 0.0, 0.0], "hybrid": {"embedder": "embedding", "semanticRatio": 1.0}},
        ]}),
        json!({"federation": {}, "queries": []}),
    ];
    for body in bodies {
        cases.push(post("federated", "/multi-search", body));
    }
    // Pagination belongs to `federation`, not to the queries.
    cases.push(post(
        "errors",
        "/multi-search",
        json!({"federation": {}, "queries": [{"indexUid": MAIN, "limit": 5}]}),
    ));
}

/// Seeded combinations of everything above.
fn generated_family(cases: &mut Vec<Case>) {
    let mut rng = Rng::new(0xC0FFEE);
    let sorts = [
        vec!["year:asc"],
        vec!["rating:desc"],
        vec!["price:asc", "year:desc"],
        vec!["title:asc"],
        vec!["director.name:desc", "rating:asc"],
    ];
    let facet_sets = [
        vec!["genres"],
        vec!["tags", "year"],
        vec!["director.country", "available", "rating"],
        vec!["director.name", "director.country", "genres"],
    ];
    for _ in 0..70 {
        let mut body = Map::new();
        let words = rng.below(4);
        if words > 0 || rng.chance(50) {
            let q: Vec<&str> = (0..words).map(|_| *rng.pick(&WORDS)).collect();
            body.insert("q".into(), json!(q.join(" ")));
        }
        if rng.chance(45) {
            let filter = match rng.below(4) {
                0 => json!(format!("genres = {}", rng.pick(&GENRES))),
                1 => json!(format!("tags = {}", rng.pick(&TAGS))),
                2 => json!(format!("director.name = \"{}\"", rng.pick(&DIRECTORS))),
                _ => json!(*rng.pick(FILTERS)),
            };
            body.insert("filter".into(), filter);
        }
        if rng.chance(35) {
            body.insert("sort".into(), json!(rng.pick(&sorts)));
        }
        if rng.chance(30) {
            body.insert("facets".into(), json!(rng.pick(&facet_sets)));
        }
        if rng.chance(25) {
            body.insert("page".into(), json!(rng.below(5)));
            body.insert("hitsPerPage".into(), json!(1 + rng.below(30)));
        } else {
            body.insert("offset".into(), json!(rng.below(60)));
            body.insert("limit".into(), json!(rng.below(40)));
        }
        if rng.chance(30) {
            body.insert("showRankingScore".into(), json!(true));
        }
        if rng.chance(15) {
            body.insert("showRankingScoreDetails".into(), json!(true));
        }
        if rng.chance(15) {
            body.insert(
                "distinct".into(),
                json!(*rng.pick(&["studio", "genres", "director.name"])),
            );
        }
        if rng.chance(20) {
            body.insert(
                "attributesToRetrieve".into(),
                json!(rng.pick(&[vec!["id"], vec!["title", "year"], vec!["*"]])),
            );
        }
        if rng.chance(15) {
            body.insert(
                "matchingStrategy".into(),
                json!(*rng.pick(&["last", "all", "frequency"])),
            );
        }
        cases.push(search("generated", MAIN, Value::Object(body)));
    }
}

/// Every case, in a fixed order.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    q_family(&mut cases);
    filter_family(&mut cases);
    sort_family(&mut cases);
    pagination_family(&mut cases);
    facets_family(&mut cases);
    attributes_family(&mut cases);
    formatting_family(&mut cases);
    scores_family(&mut cases);
    distinct_family(&mut cases);
    strategy_family(&mut cases);
    get_family(&mut cases);
    settings_family(&mut cases);
    multi_family(&mut cases);
    facet_search_family(&mut cases);
    errors_family(&mut cases);
    vector_family(&mut cases);
    federated_family(&mut cases);
    generated_family(&mut cases);
    cases
}
