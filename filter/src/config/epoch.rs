//! The topology epoch this Envoy runs, never going back: a control plane whose store was rolled
//! back (a Redis restored from an old snapshot) must not push an old topology, which would send
//! writes to shards' former owners. A configuration with a lower epoch is refused (Envoy NACKs it
//! and keeps the one it has); the same epoch is accepted again (every worker's VM configures).

use crate::host::Host;

/// Shared data of every VM of this Envoy: the highest epoch accepted.
const KEY: &str = "miroir_epoch";
const CAS_ATTEMPTS: usize = 8;

/// Accepts `epoch` unless an epoch above it was accepted already; remembers it.
pub fn admit(host: &mut dyn Host, epoch: u64) -> Result<(), String> {
    for _ in 0..CAS_ATTEMPTS {
        let (stored, cas) = host.shared_get(KEY);
        let current = stored
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok());
        match current {
            Some(current) if epoch < current => {
                return Err(format!(
                    "topology epoch {epoch} is older than epoch {current}, which this Envoy runs"
                ))
            }
            Some(current) if epoch == current => return Ok(()),
            _ => {
                if host.shared_set(KEY, epoch.to_string().as_bytes(), cas) {
                    return Ok(());
                }
            }
        }
    }
    Err("could not record the topology epoch (shared data contended)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;

    #[test]
    fn an_older_epoch_is_refused_and_the_same_or_a_newer_one_accepted() {
        let mut host = MockHost::default();
        assert!(admit(&mut host, 5).is_ok());
        assert!(
            admit(&mut host, 5).is_ok(),
            "another worker's VM, same config"
        );
        assert!(admit(&mut host, 7).is_ok());
        let refused = admit(&mut host, 6).unwrap_err();
        assert!(
            refused.contains("epoch 6 is older than epoch 7"),
            "{refused}"
        );
        assert!(admit(&mut host, 7).is_ok());
    }
}
