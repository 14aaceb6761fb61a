//! `GET /_miroir/ui`: the operator's page (docs/ui.md). Plain HTML, CSS and JavaScript compiled
//! into the binary (`control-plane/src/ui/`): no build step, nothing fetched from elsewhere.
//!
//! The three files are served without the admin key: they hold no data. A browser cannot attach
//! `Authorization: Bearer` to a navigation, so the page asks for the key and sends it on its own
//! `fetch` calls to the admin JSON routes (`/_miroir/topology`, `/_miroir/shards`,
//! `/_miroir/jobs`, `/_miroir/fleet`), which check it as they check every client's. No cookie
//! and no key in the URL: a cookie is sent by the browser on any request to the control plane,
//! so every admin `POST` would need CSRF protection, and a URL ends up in histories and logs. The
//! page only reads: it changes nothing.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// Only this origin's script, style and JSON; no frame may embed the page (clickjacking), and no
/// form or `<base>` may send anything elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // The files change with the binary: a browser asks again rather than run an old
            // script against a new API.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /_miroir/ui`.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /_miroir/ui/app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /_miroir/ui/style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::{PAGE, SCRIPT};
    use crate::testutil::Cluster;

    #[tokio::test]
    async fn the_page_and_its_files_need_no_key_and_only_load_from_here() {
        let cluster = Cluster::start(1).await;
        for (path, content_type) in [
            ("/_miroir/ui", "text/html"),
            ("/_miroir/ui/app.js", "text/javascript"),
            ("/_miroir/ui/style.css", "text/css"),
        ] {
            let (status, headers, _) = cluster.exchange("GET", path, &[], None).await;
            assert_eq!(status, 200, "{path}");
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            assert!(header("content-type").starts_with(content_type), "{path}");
            assert!(
                header("content-security-policy").contains("default-src 'none'"),
                "{path}"
            );
            assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        }
        // Relative to `/_miroir/ui`: `ui/app.js` is `/_miroir/ui/app.js`.
        assert!(PAGE.contains(r#"src="ui/app.js""#) && PAGE.contains(r#"href="ui/style.css""#));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }

    /// Every route the script reads (`admin("<route>")`, relative to the page) is an admin route
    /// that answers with the key and refuses without it.
    #[tokio::test]
    async fn the_routes_the_script_reads_exist_and_need_the_key() {
        let routes: std::collections::BTreeSet<&str> = SCRIPT
            .split("admin(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            ["fleet", "jobs", "shards", "topology"]
        );
        let routes = ["fleet", "jobs", "shards", "topology"];
        let cluster = Cluster::start(2).await;
        for route in routes {
            let path = format!("/_miroir/{route}");
            let (status, body) = cluster.admin("GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            let (status, _) = cluster.call("GET", &path, &[], None).await;
            assert_eq!(status, 401, "{path} without the key");
        }
    }
}
