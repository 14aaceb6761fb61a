//! Stage 1: the plugin configuration compiled once per topology epoch (in `on_configure`), so
//! that requests only look things up: placement tables, group order, the epoch header.

pub mod epoch;
mod placement;
pub mod settings_cache;

use std::collections::BTreeMap;

use miroir_topology::{
    rotation, ControlPlaneRef, CoveringSet, IndexRef, Node, NodeState, PluginConfig, Topology,
};

use placement::Placement;

use crate::host::Host;

/// Authority of the calls to nodes when no control plane names one: nodes route on nothing.
const NODE_AUTHORITY: &str = "miroir";

/// What the filter runs on: the plugin configuration as received, and what every request would
/// otherwise recompute from it.
#[derive(Debug)]
pub struct FilterConfig {
    pub topology: Topology,
    pub node_timeout_ms: u64,
    pub node_api_key: Option<String>,
    pub control_plane: Option<ControlPlaneRef>,
    /// The control plane's index registry (primary keys), a hint checked at the nodes.
    pub indexes: BTreeMap<String, IndexRef>,
    /// The `x-miroir-topology-epoch` header's value.
    pub epoch_text: String,
    placement: Placement,
}

impl FilterConfig {
    pub fn compile(config: PluginConfig) -> FilterConfig {
        // A configuration written by hand has no shard map: the allocator's, computed once here.
        let topology = match config.topology.clone().with_explicit_map() {
            Ok(explicit) => explicit,
            Err(_) => config.topology,
        };
        let placement = Placement::compile(&topology);
        FilterConfig {
            epoch_text: topology.epoch.to_string(),
            topology,
            node_timeout_ms: config.node_timeout_ms,
            node_api_key: config.node_api_key,
            control_plane: config.control_plane,
            indexes: config.indexes,
            placement,
        }
    }

    /// The plugin configuration this was compiled from.
    pub fn to_plugin(&self) -> PluginConfig {
        PluginConfig {
            topology: self.topology.clone(),
            node_timeout_ms: self.node_timeout_ms,
            node_api_key: self.node_api_key.clone(),
            control_plane: self.control_plane.clone(),
            indexes: self.indexes.clone(),
        }
    }

    /// Parses, validates and compiles a plugin configuration, refusing one whose epoch is below
    /// one this Envoy already runs ([`epoch`]). Refused, Envoy keeps serving the previous one.
    pub fn configure(bytes: &[u8], host: &mut dyn Host) -> Result<FilterConfig, String> {
        let config = PluginConfig::from_json(bytes).map_err(|e| e.to_string())?;
        epoch::admit(host, config.topology.epoch)?;
        crate::metrics::on_configure(host, config.topology.epoch);
        Ok(FilterConfig::compile(config))
    }

    /// `:authority` of the calls to nodes.
    pub fn node_authority(&self) -> &str {
        NODE_AUTHORITY
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.topology.nodes.iter()
    }

    fn node_at(&self, index: usize) -> Option<&Node> {
        self.topology.nodes.get(index)
    }

    /// The primary key the control plane's registry gives `index`, if any.
    pub fn registry_primary_key(&self, index: &str) -> Option<&str> {
        self.indexes.get(index).map(|i| i.primary_key.as_str())
    }

    /// The replica groups' names, in order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.placement.groups().iter().map(|g| g.name.as_str())
    }

    /// The group request number `turn` searches, and one active owner of every shard in it.
    pub fn covering(&self, turn: u64) -> Option<(&str, CoveringSet)> {
        let (_, group) = self.placement.group_for(turn)?;
        Some((group.name.as_str(), group.covering(&self.topology, turn)))
    }

    /// The nodes that answer a read alone, best first: the sole holder of the group request
    /// number `turn` reads from, then those of the other groups. `None` when that group needs a
    /// merge.
    pub fn sole_holders(&self, turn: u64) -> Option<Vec<&Node>> {
        let groups = self.placement.groups();
        let (first, group) = self.placement.group_for(turn)?;
        let picked = self.node_at(group.sole()?)?;
        let others = groups
            .iter()
            .cycle()
            .skip(first.saturating_add(1))
            .take(groups.len().saturating_sub(1))
            .filter_map(|g| g.sole().and_then(|i| self.node_at(i)));
        Some(std::iter::once(picked).chain(others).collect())
    }

    /// The nodes reads of what every node holds alike (indexes, settings, keys) ask: those not
    /// marked failed that hold no copy out of sync, which may have missed a change.
    pub fn agreeing_nodes(&self) -> impl Iterator<Item = &Node> {
        self.placement
            .agreeing()
            .iter()
            .filter_map(|i| self.node_at(*i))
    }

    /// Every node that must store `shard`: all its copies in every group.
    pub fn write_targets(&self, shard: u32) -> impl Iterator<Item = &Node> {
        self.placement
            .write_targets(shard)
            .iter()
            .filter_map(|i| self.node_at(*i))
    }

    /// The owners of `shard`: in the group request number `turn` reads from first (rotating over
    /// its replicas), then in the others; active owners first, so a read fails over.
    pub fn shard_readers(&self, shard: u32, turn: u64) -> Vec<&Node> {
        let groups = self.placement.groups();
        let offset = rotation(turn, groups.len());
        let mut owners: Vec<&Node> = Vec::new();
        for group in groups.iter().cycle().skip(offset).take(groups.len()) {
            let in_group = group.owners_of(shard);
            let rotate = rotation(turn, in_group.len());
            owners.extend(
                in_group
                    .iter()
                    .cycle()
                    .skip(rotate)
                    .take(in_group.len())
                    .filter_map(|i| self.node_at(*i)),
            );
        }
        owners.sort_by_key(|n| n.state != NodeState::Active);
        owners
    }

    /// Another in-sync owner of `shard` that `usable` accepts: in `group` first, then in
    /// others; one on a node the control plane marked failed only when no other is left (its
    /// health checks may not see a node this Envoy reaches).
    pub fn replacement(
        &self,
        shard: u32,
        group: &str,
        usable: impl Fn(&Node) -> bool,
    ) -> Option<&Node> {
        let groups = self.placement.groups();
        let first = groups.iter().filter(|g| g.name == group);
        let others = groups.iter().filter(|g| g.name != group);
        let mut owners = first
            .chain(others)
            .flat_map(|g| g.owners_of(shard).iter())
            .filter_map(|i| self.node_at(*i))
            .filter(|n| usable(n));
        let mut failed = None;
        for node in owners.by_ref() {
            if node.state == NodeState::Active {
                return Some(node);
            }
            failed = failed.or(Some(node));
        }
        failed
    }

    /// Every node, active ones first, rotated by request number `turn` so that reads spread.
    pub fn nodes_in_read_order(&self, turn: u64) -> Vec<&Node> {
        let nodes = &self.topology.nodes;
        let offset = rotation(turn, nodes.len());
        let mut ordered: Vec<&Node> = nodes
            .iter()
            .cycle()
            .skip(offset)
            .take(nodes.len())
            .collect();
        ordered.sort_by_key(|n| n.state != NodeState::Active);
        ordered
    }
}
