//! The xDS server arrives with the control plane (issue 4). Until then a static Envoy config,
//! rendered by `miroir-envoy`, carries the topology, and a file-based ECDS source carries updates.
