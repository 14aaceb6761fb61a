//! Cluster-wide tasks: the registry, the client task and batch routes (Meilisearch's `/tasks`,
//! `/batches`), and the
//! filter's internal routes (registration, uid leases).

pub mod batches;
pub mod query;
pub mod registry;
pub mod routes;
pub mod scope;

#[cfg(test)]
mod tests;
