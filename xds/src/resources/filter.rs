//! The filter's ECDS resource: a `TypedExtensionConfig` named `miroir` wrapping the wasm HTTP
//! filter whose plugin configuration is `PluginConfig::to_json()`.

use envoy_types::pb::envoy::config::core::v3::async_data_source::Specifier as CodeSpecifier;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier as DataSpecifier;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::{
    AsyncDataSource, DataSource, HttpUri, RemoteDataSource, RetryPolicy, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::wasm::v3::plugin_config::Vm;
use envoy_types::pb::envoy::extensions::wasm::v3::{FailurePolicy, PluginConfig, VmConfig};
use envoy_types::pb::google::protobuf::{BoolValue, StringValue};
use envoy_types::util::pack_any;
use miroir_envoy::model;
use miroir_topology::PluginConfig as MiroirConfig;
use serde_json::json;

use super::{millis, resource, uint32};
use crate::cache::{Resource, TypeResources};
use crate::{version, WasmSource, FILTER_NAME};

/// The ECDS type: the one filter resource, versioned `epoch-<n>-<hash16>`.
pub fn filter_resources(config: &MiroirConfig, wasm: &WasmSource) -> TypeResources {
    let item = filter_config(config, wasm);
    let hash = version::type_version([(item.name.as_str(), item.version.as_str())]);
    TypeResources::with_version(version::ecds_version(config.topology.epoch, &hash), [item])
}

/// The `TypedExtensionConfig` named [`FILTER_NAME`] carrying `config`.
pub fn filter_config(config: &MiroirConfig, wasm: &WasmSource) -> Resource {
    let filter = model::Filter::new(config.to_json(), wasm.model());
    let config_value = serde_json::to_value(config).unwrap_or_default();
    let model = json!({"kind": "filter", "pluginConfig": config_value, "wasm": wasm});
    resource(FILTER_NAME, &model, encode_filter(&filter))
}

/// `filter` as protobuf.
pub fn encode_filter(filter: &model::Filter) -> TypedExtensionConfig {
    let plugin = PluginConfig {
        name: filter.name.clone(),
        root_id: filter.root_id.clone(),
        vm: Some(Vm::VmConfig(VmConfig {
            vm_id: filter.vm_id.clone(),
            runtime: filter.runtime.clone(),
            code: Some(code(&filter.code)),
            ..Default::default()
        })),
        configuration: Some(pack_any(StringValue {
            value: filter.configuration.clone(),
        })),
        allow_on_headers_stop_iteration: Some(BoolValue {
            value: filter.allow_on_headers_stop_iteration,
        }),
        failure_policy: if filter.fail_reload {
            FailurePolicy::FailReload as i32
        } else {
            FailurePolicy::Unspecified as i32
        },
        ..Default::default()
    };
    TypedExtensionConfig {
        name: filter.name.clone(),
        typed_config: Some(pack_any(Wasm {
            config: Some(plugin),
        })),
    }
}

fn code(code: &model::WasmCode) -> AsyncDataSource {
    let specifier = match code {
        model::WasmCode::Local(path) => CodeSpecifier::Local(DataSource {
            specifier: Some(DataSpecifier::Filename(path.to_string_lossy().into_owned())),
            ..Default::default()
        }),
        model::WasmCode::Remote {
            uri,
            sha256,
            cluster,
            timeout_ms,
            retries,
        } => CodeSpecifier::Remote(RemoteDataSource {
            http_uri: Some(HttpUri {
                uri: uri.clone(),
                timeout: millis(*timeout_ms),
                http_upstream_type: Some(HttpUpstreamType::Cluster(cluster.clone())),
            }),
            sha256: sha256.clone(),
            retry_policy: Some(RetryPolicy {
                num_retries: uint32(*retries),
                ..Default::default()
            }),
        }),
    };
    AsyncDataSource {
        specifier: Some(specifier),
    }
}
