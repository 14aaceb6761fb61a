//! The admin REST client: URLs built from path segments (so ids are escaped), the admin key as a
//! bearer token, and a non-2xx answer read as Meilisearch shapes its errors
//! (`{message, code, type, link}`).

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

pub struct Client {
    base: Url,
    key: Option<String>,
    http: Http,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The server answered with a non-2xx status.
    Api {
        status: u16,
        message: String,
        code: Option<String>,
        kind: Option<String>,
        link: Option<String>,
        /// The request carried no admin key.
        keyless: bool,
    },
    /// The request did not get an answer (connection refused, timeout, ...).
    Transport { url: String, message: String },
    /// A 2xx answer that is not what the CLI can read.
    Decode(String),
    /// The command line or the configuration is wrong.
    Usage(String),
}

impl Error {
    /// The server could not be reached: worth retrying while watching.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                status,
                message,
                code,
                kind,
                link,
                keyless,
            } => {
                write!(f, "{message}")?;
                let mut details = Vec::new();
                if let Some(code) = code {
                    details.push(format!("code: {code}"));
                }
                if let Some(kind) = kind {
                    details.push(format!("type: {kind}"));
                }
                details.push(format!("HTTP {status}"));
                write!(f, "\n  {}", details.join(", "))?;
                if let Some(link) = link {
                    write!(f, "\n  see {link}")?;
                }
                if *keyless && (*status == 401 || *status == 403) {
                    write!(f, "\n  hint: pass --admin-key or set MIROIR_ADMIN_KEY")?;
                }
                Ok(())
            }
            Error::Transport { url, message } => write!(f, "cannot reach {url}: {message}"),
            Error::Decode(message) | Error::Usage(message) => write!(f, "{message}"),
        }
    }
}

/// The error a non-2xx answer carries: its Meilisearch-shaped fields when the body has them, the
/// body's text (or the status's reason) otherwise.
pub fn api_error(status: StatusCode, body: &str, keyless: bool) -> Error {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let message = field("message").unwrap_or_else(|| {
        let text = body.trim();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the server refused the request")
                .to_string()
        } else {
            text.chars().take(500).collect()
        }
    });
    Error::Api {
        status: status.as_u16(),
        message,
        code: field("code"),
        kind: field("type"),
        link: field("link"),
        keyless,
    }
}

impl Client {
    pub fn new(base: Url, key: Option<String>) -> Result<Self, Error> {
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Usage(format!(
                "--url must be an http:// or https:// URL, not `{base}`"
            )));
        }
        let http = Http::builder()
            .user_agent(concat!("miroirctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            base,
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The URL of `segments` under the base URL (which may carry a path prefix).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub fn get(&self, segments: &[&str]) -> Result<Value, Error> {
        self.send(Method::GET, segments, &[], None)
    }

    pub fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Value, Error> {
        self.send(Method::POST, segments, &[], body)
    }

    pub fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let shown = url.to_string();
        let mut request: RequestBuilder = self.http.request(method, url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| Error::Transport {
            url: shown.clone(),
            message: error_chain(&e),
        })?;
        let status = response.status();
        let text = response.text().map_err(|e| Error::Transport {
            url: shown.clone(),
            message: error_chain(&e),
        })?;
        if !status.is_success() {
            return Err(api_error(status, &text, self.key.is_none()));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            Error::Decode(format!(
                "{shown} answered HTTP {} with a body that is not JSON ({e})",
                status.as_u16()
            ))
        })
    }
}

/// An error and its sources on one line (reqwest's own message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(Url::parse(base).unwrap(), None).unwrap()
    }

    #[test]
    fn urls_escape_segments_and_keep_a_prefix() {
        let c = client("http://127.0.0.1:7701");
        assert_eq!(
            c.url(&["_miroir", "nodes", "a b/c", "drain"]).as_str(),
            "http://127.0.0.1:7701/_miroir/nodes/a%20b%2Fc/drain"
        );
        let c = client("https://admin.example/miroir/");
        assert_eq!(
            c.url(&["_miroir", "jobs"]).as_str(),
            "https://admin.example/miroir/_miroir/jobs"
        );
    }

    #[test]
    fn only_http_urls() {
        assert!(Client::new(Url::parse("mailto:x@y").unwrap(), None).is_err());
        assert!(Client::new(Url::parse("ftp://x").unwrap(), None).is_err());
    }

    #[test]
    fn meilisearch_shaped_errors() {
        let e = api_error(
            StatusCode::UNAUTHORIZED,
            r#"{"message":"The Authorization header is missing.","code":"missing_authorization_header","type":"auth","link":"https://docs"}"#,
            true,
        );
        let text = e.to_string();
        assert!(text.starts_with("The Authorization header is missing.\n"));
        assert!(text.contains("code: missing_authorization_header, type: auth, HTTP 401"));
        assert!(text.contains("see https://docs"));
        assert!(text.contains("--admin-key"));
    }

    #[test]
    fn other_errors_show_their_body_or_status() {
        let e = api_error(StatusCode::BAD_GATEWAY, "upstream down\n", false);
        assert_eq!(e.to_string(), "upstream down\n  HTTP 502");
        let e = api_error(StatusCode::NOT_FOUND, "", false);
        assert_eq!(e.to_string(), "Not Found\n  HTTP 404");
    }
}
