//! Envoy resources built from a `PluginConfig` plus [`ResourceOptions`], each paired with a
//! version hashed from the model it was built from.
//!
//! What each resource holds is [`miroir_envoy::model`], the description the static renderer
//! encodes as JSON too (see its README for why each setting is there): a file-fed and an xDS-fed
//! Envoy must behave the same. The encoders here turn it into protobuf and nothing else.

mod cluster;
mod filter;
mod listener;

use std::fmt;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};
use miroir_topology::PluginConfig;

use crate::cache::{Resource, TypeResources};
use crate::ResourceOptions;

pub use cluster::{control_plane_cluster, encode_cluster, node_cluster};
pub use filter::{encode_filter, filter_config};
pub use listener::{encode_listener, listener, ListenerTimeouts};

/// Why a configuration cannot become Envoy resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Everything one configuration needs, by type.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    pub clusters: TypeResources,
    pub listeners: TypeResources,
    pub filter: TypeResources,
}

/// Builds the resources of `config`. The listener's timeouts are sized for `config`'s node
/// timeout (and never below the options' floor).
pub fn build(config: &PluginConfig, options: &ResourceOptions) -> Result<Built, BuildError> {
    let mut clusters = Vec::with_capacity(config.topology.nodes.len() + 1);
    for node in &config.topology.nodes {
        clusters.push(node_cluster(&node.id, &node.address, &options.health)?);
    }
    clusters.push(control_plane_cluster(&options.control_plane_http)?);
    let timeouts =
        ListenerTimeouts::for_node_timeout(options.node_timeout_ms.max(config.node_timeout_ms));
    Ok(Built {
        clusters: TypeResources::new(clusters),
        listeners: TypeResources::new([listener(options.listen, timeouts)]),
        filter: filter::filter_resources(config, &options.wasm),
    })
}

/// Splits `host:port`, accepting `[v6]:port`.
pub(crate) fn host_port(address: &str) -> Result<(String, u16), BuildError> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| BuildError(format!("`{address}` is not host:port")))?;
    let port = port
        .parse::<u16>()
        .map_err(|e| BuildError(format!("`{address}`: bad port: {e}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(BuildError(format!("`{address}` has no host")));
    }
    Ok((host.to_string(), port))
}

pub(crate) fn millis(ms: u64) -> Option<Duration> {
    Some(Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // < 1e9, fits.
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

pub(crate) fn socket_address(host: &str, port: u16) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: host.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

pub(crate) fn uint32(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

/// Pairs a built proto with its name and the version of the model it came from.
pub(crate) fn resource<M, T>(name: &str, model: &T, message: M) -> Resource
where
    M: prost::Name + prost::Message,
    T: serde::Serialize + ?Sized,
{
    Resource {
        name: name.to_string(),
        version: crate::version::hash_model(model),
        body: envoy_types::util::pack_any(message),
    }
}

#[cfg(test)]
mod tests;
