//! Cluster-wide tasks: the registry, the client task routes (Meilisearch's `/tasks`), and the
//! filter's internal routes (registration, uid leases).

pub mod query;
pub mod registry;
pub mod routes;

#[cfg(test)]
mod tests;
