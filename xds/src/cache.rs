//! Snapshots of resources per node group, with go-control-plane's semantics: a snapshot holds,
//! per type, a version and the resources; an Envoy's request is answered when the version it
//! holds differs from the snapshot's (see [`crate::connection`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;

use crate::version;

/// One named resource and the version of the model it was built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
}

/// The resources of one type and the type's version.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeResources {
    version: String,
    items: BTreeMap<String, Resource>,
}

impl TypeResources {
    /// Versioned by a hash over the (name, version) pairs: the same resources always have the
    /// same version, whatever order they were built in.
    pub fn new(items: impl IntoIterator<Item = Resource>) -> Self {
        let items: BTreeMap<String, Resource> =
            items.into_iter().map(|r| (r.name.clone(), r)).collect();
        let version = version::type_version(
            items
                .values()
                .map(|r| (r.name.as_str(), r.version.as_str())),
        );
        TypeResources { version, items }
    }

    /// With a version chosen by the caller (ECDS names the epoch in its version).
    pub fn with_version(version: String, items: impl IntoIterator<Item = Resource>) -> Self {
        TypeResources {
            version,
            items: items.into_iter().map(|r| (r.name.clone(), r)).collect(),
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.items.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every resource of `self` and of `newer`; where both have a name, `newer`'s wins (a node
    /// that moved is reached at its new address right away: the cluster name is unchanged).
    pub fn union(&self, newer: &TypeResources) -> TypeResources {
        let mut items = self.items.clone();
        for resource in newer.iter() {
            items.insert(resource.name.clone(), resource.clone());
        }
        TypeResources::new(items.into_values())
    }

    /// The resources an Envoy asked for: all of them for a wildcard subscription, else the
    /// named ones that exist.
    pub fn select(&self, names: &[String], wildcard: bool) -> Vec<Any> {
        if wildcard {
            return self.items.values().map(|r| r.body.clone()).collect();
        }
        names
            .iter()
            .filter_map(|name| self.items.get(name))
            .map(|r| r.body.clone())
            .collect()
    }
}

/// Per type URL, the resources an Envoy should have.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    types: BTreeMap<String, TypeResources>,
    /// Per type, bumped by the cache each time the type's version changes. A connection uses it
    /// to tell "the version it rejected is still there" from "it was set again".
    generations: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn new() -> Self {
        Snapshot::default()
    }

    pub fn with(mut self, type_url: &str, resources: TypeResources) -> Self {
        self.set(type_url, resources);
        self
    }

    pub fn set(&mut self, type_url: &str, resources: TypeResources) {
        self.types.insert(type_url.to_string(), resources);
    }

    pub fn get(&self, type_url: &str) -> Option<&TypeResources> {
        self.types.get(type_url)
    }

    pub fn version(&self, type_url: &str) -> Option<&str> {
        self.get(type_url).map(TypeResources::version)
    }

    pub fn type_urls(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub fn generation(&self, type_url: &str) -> u64 {
        self.generations.get(type_url).copied().unwrap_or(0)
    }

    /// Same resources and versions (generations aside).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.types == other.types
    }
}

/// The node group a snapshot is looked up by (go-control-plane's `NodeHash`): Envoys of one
/// `node.cluster` share a snapshot.
pub fn node_group(node_cluster: &str) -> &str {
    node_cluster
}

/// Snapshots per node group, plus a default for groups without their own.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    groups: HashMap<String, Arc<Snapshot>>,
    default: Option<Arc<Snapshot>>,
    next_generation: u64,
    /// Bumped by every change, so watchers know to look again.
    revision: u64,
}

impl SnapshotCache {
    pub fn new() -> Self {
        SnapshotCache::default()
    }

    /// The snapshot Envoys of `group` get.
    pub fn snapshot(&self, group: &str) -> Option<Arc<Snapshot>> {
        self.groups
            .get(group)
            .cloned()
            .or_else(|| self.default.clone())
    }

    /// The snapshot of every group without its own.
    pub fn default_snapshot(&self) -> Option<Arc<Snapshot>> {
        self.default.clone()
    }

    pub fn set_snapshot(&mut self, group: &str, snapshot: Snapshot) -> Arc<Snapshot> {
        let previous = self.snapshot(group);
        let stamped = Arc::new(self.stamp(previous.as_deref(), snapshot));
        self.groups.insert(group.to_string(), stamped.clone());
        self.revision += 1;
        stamped
    }

    pub fn set_default(&mut self, snapshot: Snapshot) -> Arc<Snapshot> {
        let previous = self.default.clone();
        let stamped = Arc::new(self.stamp(previous.as_deref(), snapshot));
        self.default = Some(stamped.clone());
        self.revision += 1;
        stamped
    }

    pub fn clear_snapshot(&mut self, group: &str) {
        if self.groups.remove(group).is_some() {
            self.revision += 1;
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Carries over the generation of every type whose version did not change; gives a fresh
    /// one to the others.
    fn stamp(&mut self, previous: Option<&Snapshot>, mut snapshot: Snapshot) -> Snapshot {
        let mut generations = BTreeMap::new();
        for (type_url, resources) in &snapshot.types {
            let kept = previous.and_then(|p| {
                (p.version(type_url) == Some(resources.version())).then(|| p.generation(type_url))
            });
            let generation = match kept {
                Some(generation) => generation,
                None => {
                    self.next_generation += 1;
                    self.next_generation
                }
            };
            generations.insert(type_url.clone(), generation);
        }
        snapshot.generations = generations;
        snapshot
    }
}

#[cfg(test)]
mod tests;
