//! Stage 5: the nodes' answers combined into the one a client gets, as one Meilisearch holding
//! every document would give it.

pub mod distinct_count;
pub mod distinct_hits;
pub mod documents;
pub mod facets;
pub mod federated;
pub mod follow_up;
pub mod hidden;
pub mod hits;
pub mod node_error;
pub mod refine;
pub mod search;
pub mod similar;
pub mod stats;
