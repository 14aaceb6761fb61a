//! A blocking HTTP client for tests: any status is a reply, not an error.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

/// Bound of one request (large document batches included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A response, whatever its status.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, `None` if it is not JSON (an empty body is not).
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as JSON; panics with the raw body when it is not.
    pub fn json(&self) -> Value {
        self.try_json().unwrap_or_else(|| {
            panic!(
                "expected a JSON body, got status {} and {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// `(status, JSON body)` — `Value::Null` when the body is not JSON (see [`Reply::text`]).
    pub fn pair(&self) -> (u16, Value) {
        (self.status, self.try_json().unwrap_or(Value::Null))
    }
}

/// A client bound to one base URL (Envoy or a node), sending `Authorization: Bearer <key>`
/// unless built [`Client::without_auth`]. Each client has its own connection pool.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: Option<String>,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("auth", &self.key.is_some())
            .finish()
    }
}

impl Client {
    pub fn new(base_url: &str, key: Option<&str>) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            key: key.map(str::to_string),
            headers: Vec::new(),
            agent: ureq::AgentBuilder::new()
                .timeout(REQUEST_TIMEOUT)
                .redirects(0)
                .build(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn without_auth(mut self) -> Client {
        self.key = None;
        self
    }

    pub fn with_key(mut self, key: &str) -> Client {
        self.key = Some(key.to_string());
        self
    }

    /// A header sent with every request of this client.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_json("POST", path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.send_json("PUT", path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send_json("PATCH", path, body)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.send(method, path, Some(("application/json", &bytes)))
    }

    /// Any method, with an optional `(content-type, body)`. Panics on transport errors
    /// (connection refused, timeout); use [`Client::try_send`] when those are expected.
    pub fn send(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Reply {
        self.try_send(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base))
    }

    /// Like [`Client::send`], but a transport error is an `Err`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.set("authorization", &format!("Bearer {key}"));
        }
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some((content_type, bytes)) => {
                request.set("content-type", content_type).send_bytes(bytes)
            }
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                let value = response.header(&name)?.to_string();
                Some((name.to_ascii_lowercase(), value))
            })
            .collect();
        let mut body = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the body of a {status} reply: {e}"))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
