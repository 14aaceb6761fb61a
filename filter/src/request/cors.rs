//! CORS as Meilisearch answers it. Meilisearch wraps its whole API in actix-cors
//! `Cors::default().send_wildcard().allow_any_header().allow_any_origin().allow_any_method()
//! .max_age(86_400)` (meilisearch: crates/meilisearch/src/lib.rs), which gives, before any route
//! or key check:
//!
//! - a **preflight** is `OPTIONS` with an `Access-Control-Request-Method` that is an HTTP method
//!   token (`Origin` is not needed). One of the nine standard methods: 200, empty body,
//!   `access-control-allow-origin: *`, `access-control-allow-methods` (the nine),
//!   `access-control-allow-headers` echoing `Access-Control-Request-Headers` when sent,
//!   `access-control-max-age: 86400`, `vary`. Another token (`post`, `PROPFIND`): 400 with the
//!   text body `Requested method is not allowed` and none of those headers. No API key is
//!   needed: browsers send none on a preflight. Anything else with `OPTIONS` is an ordinary
//!   request.
//! - **every other answer** (errors included) carries `access-control-allow-origin: *` when the
//!   request had an `Origin` header, and always `vary: Origin, Access-Control-Request-Method,
//!   Access-Control-Request-Headers`. No `access-control-expose-headers` (none are configured),
//!   no credentials.
//!
//! Miroir answers every request from the filter, so the filter adds them itself rather than
//! Envoy's CORS filter, which echoes the origin instead of `*`, cannot echo the requested headers
//! (it sends a fixed list, and `*` does not cover `Authorization`), skips `vary` without
//! `Origin`, and would need its own configuration in every listener (and Istio's).

use crate::request::Request;

/// `vary`, as actix-cors writes it.
pub const VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// actix-cors's `allow_any_method`: the nine methods of the `http` crate. (Meilisearch lists them
/// in its process's hash-set order, which changes from run to run; the set is what counts.)
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, CONNECT, TRACE";

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// What the CORS layer adds to an answer that is not a preflight's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    /// The request carried an `Origin` header.
    origin: bool,
}

impl Cors {
    pub fn of(request: &Request) -> Cors {
        Cors::with_origin(request.header("origin").is_some())
    }

    pub fn with_origin(origin: bool) -> Cors {
        Cors { origin }
    }

    /// The headers to add to the answer.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        if self.origin {
            &[("access-control-allow-origin", "*"), ("vary", VARY)]
        } else {
            &[("vary", VARY)]
        }
    }
}

/// The answer to a preflight, which no node sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static [u8],
}

/// The answer to `request` if it is a preflight.
pub fn preflight(request: &Request) -> Option<Preflight> {
    if request.method != "OPTIONS" {
        return None;
    }
    let method = request.header("access-control-request-method")?;
    if !is_token(method) {
        // Not a method: not a preflight, an ordinary `OPTIONS`.
        return None;
    }
    if !METHODS.contains(&method) {
        return Some(Preflight {
            status: 400,
            headers: Vec::new(),
            body: b"Requested method is not allowed",
        });
    }
    let mut headers = vec![
        ("access-control-allow-origin", "*".to_string()),
        ("access-control-allow-methods", ALLOWED_METHODS.to_string()),
    ];
    if let Some(asked) = request.header("access-control-request-headers") {
        headers.push(("access-control-allow-headers", asked.to_string()));
    }
    headers.push(("access-control-max-age", "86400".to_string()));
    headers.push(("vary", VARY.to_string()));
    Some(Preflight {
        status: 200,
        headers,
        body: b"",
    })
}

/// An HTTP method as the `http` crate parses one: a non-empty token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Request {
        Request::new(
            method,
            "/indexes/movies/search",
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Vec::new(),
        )
    }

    fn header<'a>(p: &'a Preflight, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// What Meilisearch 1.50 answered (recorded from the real binary).
    #[test]
    fn a_preflight_is_answered_as_meilisearch_answers_it() {
        let p = preflight(&request(
            "OPTIONS",
            &[
                ("Origin", "http://example.com"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type, x-meilisearch-client",
                ),
            ],
        ))
        .unwrap();
        assert_eq!((p.status, p.body), (200, &b""[..]));
        assert_eq!(header(&p, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            header(&p, "access-control-allow-headers"),
            Some("authorization, content-type, x-meilisearch-client")
        );
        assert_eq!(header(&p, "access-control-max-age"), Some("86400"));
        assert_eq!(header(&p, "vary"), Some(VARY));
        let mut methods: Vec<&str> = header(&p, "access-control-allow-methods")
            .unwrap()
            .split(", ")
            .collect();
        methods.sort_unstable();
        assert_eq!(
            methods,
            ["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]
        );

        // Without `Origin` and without requested headers: the same, minus allow-headers.
        let p = preflight(&request(
            "OPTIONS",
            &[("access-control-request-method", "DELETE")],
        ))
        .unwrap();
        assert_eq!(p.status, 200);
        assert_eq!(header(&p, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&p, "access-control-allow-headers"), None);
        // Requested headers are echoed as sent, spacing included.
        let p = preflight(&request(
            "OPTIONS",
            &[
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "X-Foo,  Authorization"),
            ],
        ))
        .unwrap();
        assert_eq!(
            header(&p, "access-control-allow-headers"),
            Some("X-Foo,  Authorization")
        );
    }

    #[test]
    fn a_method_outside_the_nine_is_refused_and_a_non_method_is_no_preflight() {
        let refused = preflight(&request(
            "OPTIONS",
            &[
                ("origin", "http://a.b"),
                ("access-control-request-method", "post"),
            ],
        ))
        .unwrap();
        assert_eq!(
            (refused.status, refused.body, refused.headers.len()),
            (400, &b"Requested method is not allowed"[..], 0)
        );
        for method in ["BL@H", "", "GET POST"] {
            assert_eq!(
                preflight(&request(
                    "OPTIONS",
                    &[("access-control-request-method", method)]
                )),
                None,
                "{method:?}"
            );
        }
        assert_eq!(preflight(&request("OPTIONS", &[("origin", "x")])), None);
        assert_eq!(
            preflight(&request(
                "POST",
                &[("access-control-request-method", "POST")]
            )),
            None
        );
    }

    #[test]
    fn every_answer_varies_and_allows_any_origin_when_asked() {
        let with = Cors::of(&request("GET", &[("origin", "null")]));
        assert_eq!(
            with.headers(),
            &[("access-control-allow-origin", "*"), ("vary", VARY)]
        );
        let without = Cors::of(&request("GET", &[]));
        assert_eq!(without.headers(), &[("vary", VARY)]);
    }
}
