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
use miroir_topology::{PluginConfig as MiroirConfig, CONTROL_PLANE_CLUSTER};
use serde_json::json;

use super::{millis, resource, uint32};
use crate::cache::{Resource, TypeResources};
use crate::{version, WasmSource, FILTER_NAME};

/// Deadline of one fetch of remote code. The module is a few MiB from a nearby control plane.
const REMOTE_FETCH_TIMEOUT_MS: u64 = 30_000;
const REMOTE_FETCH_RETRIES: u32 = 5;

/// The ECDS type: the one filter resource, versioned `epoch-<n>-<hash16>`.
pub fn filter_resources(config: &MiroirConfig, wasm: &WasmSource) -> TypeResources {
    let item = filter_config(config, wasm);
    let hash = version::type_version([(item.name.as_str(), item.version.as_str())]);
    TypeResources::with_version(version::ecds_version(config.topology.epoch, &hash), [item])
}

/// The `TypedExtensionConfig` named [`FILTER_NAME`], with the static renderer's VM and plugin
/// settings.
pub fn filter_config(config: &MiroirConfig, wasm: &WasmSource) -> Resource {
    let plugin = PluginConfig {
        name: FILTER_NAME.to_string(),
        root_id: FILTER_NAME.to_string(),
        vm: Some(Vm::VmConfig(VmConfig {
            // Same vm_id and code across pushes: a config-only update reuses the VMs.
            vm_id: FILTER_NAME.to_string(),
            runtime: "envoy.wasm.runtime.v8".to_string(),
            code: Some(code(wasm)),
            ..Default::default()
        })),
        configuration: Some(pack_any(StringValue {
            value: config.to_json(),
        })),
        // Without it a Pause in on_http_request_headers never lets the body through.
        allow_on_headers_stop_iteration: Some(BoolValue { value: true }),
        // A trapped VM is rebuilt instead of failing every later request.
        failure_policy: FailurePolicy::FailReload as i32,
        ..Default::default()
    };
    let extension = TypedExtensionConfig {
        name: FILTER_NAME.to_string(),
        typed_config: Some(pack_any(Wasm {
            config: Some(plugin),
        })),
    };
    let config_value = serde_json::to_value(config).unwrap_or_default();
    let model = json!({"kind": "filter", "pluginConfig": config_value, "wasm": wasm});
    resource(FILTER_NAME, &model, extension)
}

fn code(wasm: &WasmSource) -> AsyncDataSource {
    let specifier = match wasm {
        WasmSource::Local(path) => CodeSpecifier::Local(DataSource {
            specifier: Some(DataSpecifier::Filename(path.to_string_lossy().into_owned())),
            ..Default::default()
        }),
        WasmSource::Remote { uri, sha256 } => CodeSpecifier::Remote(RemoteDataSource {
            http_uri: Some(HttpUri {
                uri: uri.clone(),
                timeout: millis(REMOTE_FETCH_TIMEOUT_MS),
                http_upstream_type: Some(HttpUpstreamType::Cluster(
                    CONTROL_PLANE_CLUSTER.to_string(),
                )),
            }),
            sha256: sha256.clone(),
            retry_policy: Some(RetryPolicy {
                num_retries: uint32(REMOTE_FETCH_RETRIES),
                ..Default::default()
            }),
        }),
    };
    AsyncDataSource {
        specifier: Some(specifier),
    }
}
