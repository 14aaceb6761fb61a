//! Which operation a client request is. Paths follow Meilisearch's REST API.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    CreateIndex,
    UpdateSettings { index: String },
    AddDocuments { index: String, merge: bool },
    Search { index: String },
    GetTask { uid: String },
    Unsupported,
}

pub fn route(method: &str, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method, segments.as_slice()) {
        ("GET", ["health"]) => Route::Health,
        ("POST", ["indexes"]) => Route::CreateIndex,
        ("PATCH", ["indexes", index, "settings"]) => Route::UpdateSettings {
            index: index.to_string(),
        },
        ("POST", ["indexes", index, "documents"]) => Route::AddDocuments {
            index: index.to_string(),
            merge: false,
        },
        ("PUT", ["indexes", index, "documents"]) => Route::AddDocuments {
            index: index.to_string(),
            merge: true,
        },
        ("POST", ["indexes", index, "search"]) => Route::Search {
            index: index.to_string(),
        },
        ("GET", ["tasks", uid]) => Route::GetTask {
            uid: uid.to_string(),
        },
        _ => Route::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_meilisearch_paths() {
        assert_eq!(route("GET", "/health"), Route::Health);
        assert_eq!(route("POST", "/indexes"), Route::CreateIndex);
        assert_eq!(
            route("PUT", "/indexes/movies/documents"),
            Route::AddDocuments {
                index: "movies".into(),
                merge: true
            }
        );
        assert_eq!(
            route("POST", "/indexes/movies/search/"),
            Route::Search {
                index: "movies".into()
            }
        );
        assert_eq!(route("GET", "/indexes/movies/search"), Route::Unsupported);
        assert_eq!(route("DELETE", "/indexes/movies"), Route::Unsupported);
        assert_eq!(
            route("GET", "/tasks/12"),
            Route::GetTask { uid: "12".into() }
        );
    }
}
