//! Which operation a client request is. Paths follow Meilisearch's REST API.

/// How an answer that every node gives alike is combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// `GET /indexes/{uid}`.
    Index,
    /// `GET /indexes`.
    IndexList,
    /// `GET /indexes/{uid}/settings[/...]`.
    Settings,
    /// `GET /indexes/{uid}/stats`: summed over one replica group.
    IndexStats,
    /// `GET /stats`.
    Stats,
    /// `GET /keys/{uidOrKey}`.
    Key,
    /// `GET /keys`.
    KeyList,
    /// `POST /indexes/{uid}/fields`: every field some node holds.
    Fields,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    /// Any node's answer will do (`GET /version`, `GET /experimental-features`, reads of the
    /// dynamic search rules, `POST /render-template`): the request is forwarded as it is.
    AnyNode,
    CreateIndex,
    /// The same change on every node, answered with one task of type `kind`.
    Broadcast {
        kind: &'static str,
        index: Option<String>,
    },
    /// A settings change; `sub` is the settings sub-route (`filterable-attributes`, ...).
    Settings {
        index: String,
        sub: Option<String>,
    },
    /// A read every node answers; the answer is their agreement.
    ReadAll(Agreement),
    AddDocuments {
        index: String,
        merge: bool,
    },
    GetDocument {
        index: String,
        id: String,
    },
    DeleteDocument {
        index: String,
        id: String,
    },
    DeleteDocuments {
        index: String,
    },
    Search {
        index: String,
    },
    /// `GET /indexes/{uid}/search`: the same search with its parameters in the query string.
    SearchGet {
        index: String,
    },
    MultiSearch,
    FacetSearch {
        index: String,
    },
    /// `POST /indexes/{uid}/similar`, or its `GET` form (`get`).
    Similar {
        index: String,
        get: bool,
    },
    /// `GET /documents` (`get`) or `POST /documents/fetch`.
    ListDocuments {
        index: String,
        get: bool,
    },
    /// `GET /tasks`, `POST /tasks/cancel`, `DELETE /tasks`, `/batches`, `/webhooks`: the
    /// control plane's.
    Tasks,
    GetTask {
        uid: String,
    },
    CreateKey,
    /// The same synchronous change on every node (`PATCH`/`DELETE /keys/{uidOrKey}`,
    /// `PATCH /experimental-features`).
    Everywhere,
    Unsupported,
    /// Meilisearch's own sharding and replication (`/network`): Miroir is the cluster.
    Network,
}

pub fn route(method: &str, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let index = |uid: &&str| Some(uid.to_string());
    match (method, segments.as_slice()) {
        ("GET", ["health"]) => Route::Health,
        // Features are per node: set on every node through Miroir, so any node tells them.
        ("GET", ["version"] | ["experimental-features"]) => Route::AnyNode,
        ("PATCH", ["experimental-features"]) => Route::Everywhere,
        ("GET", ["indexes"]) => Route::ReadAll(Agreement::IndexList),
        ("POST", ["indexes"]) => Route::CreateIndex,
        ("GET", ["indexes", _]) => Route::ReadAll(Agreement::Index),
        ("PATCH", ["indexes", uid]) => Route::Broadcast {
            kind: "indexUpdate",
            index: index(uid),
        },
        ("DELETE", ["indexes", uid]) => Route::Broadcast {
            kind: "indexDeletion",
            index: index(uid),
        },
        ("POST", ["swap-indexes"]) => Route::Broadcast {
            kind: "indexSwap",
            index: None,
        },
        ("GET", ["indexes", _, "settings", ..]) => Route::ReadAll(Agreement::Settings),
        ("GET", ["indexes", _, "stats"]) => Route::ReadAll(Agreement::IndexStats),
        ("GET", ["stats"]) => Route::ReadAll(Agreement::Stats),
        ("PATCH" | "PUT" | "DELETE", ["indexes", uid, "settings"]) => Route::Settings {
            index: uid.to_string(),
            sub: None,
        },
        ("PATCH" | "PUT" | "DELETE", ["indexes", uid, "settings", sub]) => Route::Settings {
            index: uid.to_string(),
            sub: Some(sub.to_string()),
        },
        ("POST", ["indexes", uid, "documents"]) => Route::AddDocuments {
            index: uid.to_string(),
            merge: false,
        },
        ("PUT", ["indexes", uid, "documents"]) => Route::AddDocuments {
            index: uid.to_string(),
            merge: true,
        },
        // Deletions by filter and clearing touch every shard; Meilisearch evaluates the filter.
        ("POST", ["indexes", uid, "documents", "delete"])
        | ("DELETE", ["indexes", uid, "documents"]) => Route::Broadcast {
            kind: "documentDeletion",
            index: index(uid),
        },
        ("POST", ["indexes", uid, "documents", "edit"]) => Route::Broadcast {
            kind: "documentEdition",
            index: index(uid),
        },
        ("GET", ["indexes", uid, "documents"]) => Route::ListDocuments {
            index: uid.to_string(),
            get: true,
        },
        ("POST", ["indexes", uid, "documents", "fetch"]) => Route::ListDocuments {
            index: uid.to_string(),
            get: false,
        },
        ("POST", ["indexes", uid, "documents", "delete-batch"]) => Route::DeleteDocuments {
            index: uid.to_string(),
        },
        ("GET", ["indexes", uid, "documents", id]) => Route::GetDocument {
            index: uid.to_string(),
            id: id.to_string(),
        },
        ("DELETE", ["indexes", uid, "documents", id]) => Route::DeleteDocument {
            index: uid.to_string(),
            id: id.to_string(),
        },
        ("POST", ["indexes", uid, "search"]) => Route::Search {
            index: uid.to_string(),
        },
        ("GET", ["indexes", uid, "search"]) => Route::SearchGet {
            index: uid.to_string(),
        },
        ("POST", ["multi-search"]) => Route::MultiSearch,
        ("POST", ["indexes", uid, "facet-search"]) => Route::FacetSearch {
            index: uid.to_string(),
        },
        ("POST" | "GET", ["indexes", uid, "similar"]) => Route::Similar {
            index: uid.to_string(),
            get: method == "GET",
        },
        ("GET", ["keys"]) => Route::ReadAll(Agreement::KeyList),
        ("GET", ["keys", _]) => Route::ReadAll(Agreement::Key),
        ("POST", ["keys"]) => Route::CreateKey,
        ("PATCH" | "DELETE", ["keys", _]) => Route::Everywhere,
        // Every node dumps or snapshots its own data: one global task.
        ("POST", ["dumps"]) => Route::Broadcast {
            kind: "dumpCreation",
            index: None,
        },
        ("POST", ["snapshots"]) => Route::Broadcast {
            kind: "snapshotCreation",
            index: None,
        },
        ("POST", ["indexes", uid, "compact"]) => Route::Broadcast {
            kind: "indexCompaction",
            index: index(uid),
        },
        ("POST", ["indexes", _, "fields"]) => Route::ReadAll(Agreement::Fields),
        // Dynamic search rules are cluster-wide: set on every node, read from any.
        ("POST", ["dynamic-search-rules"]) | ("GET", ["dynamic-search-rules", _]) => Route::AnyNode,
        ("PATCH" | "DELETE", ["dynamic-search-rules", _]) => Route::Broadcast {
            kind: "dsrUpdate",
            index: None,
        },
        ("POST", ["render-template"]) => Route::AnyNode,
        (_, ["network", ..]) => Route::Network,
        ("GET", ["tasks", uid]) => Route::GetTask {
            uid: uid.to_string(),
        },
        ("GET" | "DELETE", ["tasks"]) | ("POST", ["tasks", "cancel"]) => Route::Tasks,
        // Webhooks are about tasks, which are global: the control plane keeps and calls them.
        ("GET" | "POST", ["webhooks"])
        | ("GET" | "PATCH" | "DELETE", ["webhooks", _])
        | ("GET", ["batches"] | ["batches", _]) => Route::Tasks,
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
        assert_eq!(
            route("DELETE", "/indexes/movies"),
            Route::Broadcast {
                kind: "indexDeletion",
                index: Some("movies".into())
            }
        );
        assert_eq!(
            route("DELETE", "/indexes/movies/documents"),
            Route::Broadcast {
                kind: "documentDeletion",
                index: Some("movies".into())
            }
        );
        assert_eq!(
            route("PUT", "/indexes/movies/settings/filterable-attributes"),
            Route::Settings {
                index: "movies".into(),
                sub: Some("filterable-attributes".into())
            }
        );
        assert_eq!(
            route("GET", "/indexes/movies/settings/faceting"),
            Route::ReadAll(Agreement::Settings)
        );
        assert_eq!(
            route("GET", "/indexes/movies/documents/42"),
            Route::GetDocument {
                index: "movies".into(),
                id: "42".into()
            }
        );
        assert_eq!(
            route("GET", "/tasks/12"),
            Route::GetTask { uid: "12".into() }
        );
        assert_eq!(
            route("GET", "/indexes/movies/search"),
            Route::SearchGet {
                index: "movies".into()
            }
        );
        assert_eq!(route("POST", "/multi-search"), Route::MultiSearch);
        assert_eq!(
            route("POST", "/indexes/movies/facet-search"),
            Route::FacetSearch {
                index: "movies".into()
            }
        );
        assert_eq!(
            route("GET", "/indexes/movies/similar"),
            Route::Similar {
                index: "movies".into(),
                get: true
            }
        );
        assert_eq!(
            route("POST", "/indexes/movies/compact"),
            Route::Broadcast {
                kind: "indexCompaction",
                index: Some("movies".into())
            }
        );
        assert_eq!(route("GET", "/network"), Route::Network);
        assert_eq!(
            route("POST", "/chats/x/chat/completions"),
            Route::Unsupported
        );
    }
}
