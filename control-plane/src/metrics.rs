//! Prometheus metrics (`GET /metrics`, text format), every one listed in docs/metrics.md.
//!
//! Names start with `miroir_` and never with `miroir_filter_`, the filter's prefix (its metrics
//! come from the Envoys' `/stats/prometheus`), so both can share one Prometheus.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{CheckStatus, IndexEntry};

type Labels = Vec<(String, String)>;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct Metrics {
    registry: Registry,
    /// `version`: 1, the control plane's build.
    pub build_info: Family<Labels, Gauge>,
    pub topology_epoch: Gauge,
    /// `state`: active, failed, draining.
    pub nodes: Family<Labels, Gauge>,
    /// `node`, `result`: ok, fail.
    pub health_checks: Family<Labels, Counter>,
    pub tasks_registered: Counter,
    pub uid_leases: Counter,
    pub uids_leased: Counter,
    /// `result`: ok, nack, timeout, invalid.
    pub rollouts: Family<Labels, Counter>,
    pub rollout_nacks: Counter,
    pub leader: Gauge,
    pub envoys: Gauge,
    /// `index`: 1 when the last settings check found every node identical, 0 when nodes
    /// differ; absent when never checked or unverified. Set from the index registry.
    pub index_settings_consistent: Family<Labels, Gauge>,
    /// `result`: consistent, inconsistent, unverified.
    pub index_settings_checks: Family<Labels, Counter>,
    /// `node`, `result`: created, exists, mismatch, rejected, refused, unavailable (one per
    /// default key and node, until the node is done).
    pub default_keys: Family<Labels, Counter>,
    /// Documents written by shard copies (moves, new groups, replication).
    pub job_documents_copied: Counter,
    /// Phase of the running job: 0 prepare, 1 stage, 2 copy, 3 activate, 4 cut-over, 5 clean-up,
    /// 6 done.
    pub job_phase: Gauge,
    /// Shard copies the running job has still to move.
    pub job_moves_left: Gauge,
    /// `group`, `shard`, `node`: documents the copy being filled differed by at its last round
    /// (0 once verified); cleared when the job ends.
    pub job_shard_lag: Family<Labels, Gauge>,
    /// `state`: active, copying, leaving, outOfSync: shard copies in the stored topology.
    pub copies: Family<Labels, Gauge>,
    /// Out-of-sync copies a repair put back in the in-sync set.
    pub repairs: Counter,
    /// `result`: ok, error: anti-entropy passes.
    pub anti_entropy_passes: Family<Labels, Counter>,
    /// Documents anti-entropy read, every copy counted.
    pub anti_entropy_documents_read: Counter,
    /// Documents whose in-sync copies differed and that anti-entropy made equal.
    pub anti_entropy_documents_repaired: Counter,
    /// Nodes whose settings of an index anti-entropy brought to the majority's.
    pub anti_entropy_settings_repaired: Counter,
    /// `result`: applied, superseded, refused: schema changes the filter left unfinished that
    /// the leader replayed (or dropped).
    pub intents_replayed: Family<Labels, Counter>,
    /// Nodes found with another disk than the one last seen (their task history changed).
    pub disks_replaced: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("miroir");
        let m = Metrics {
            registry: Registry::default(),
            build_info: Family::default(),
            topology_epoch: Gauge::default(),
            nodes: Family::default(),
            health_checks: Family::default(),
            tasks_registered: Counter::default(),
            uid_leases: Counter::default(),
            uids_leased: Counter::default(),
            rollouts: Family::default(),
            rollout_nacks: Counter::default(),
            leader: Gauge::default(),
            envoys: Gauge::default(),
            index_settings_consistent: Family::default(),
            index_settings_checks: Family::default(),
            default_keys: Family::default(),
            job_documents_copied: Counter::default(),
            job_phase: Gauge::default(),
            job_moves_left: Gauge::default(),
            job_shard_lag: Family::default(),
            copies: Family::default(),
            repairs: Counter::default(),
            anti_entropy_passes: Family::default(),
            anti_entropy_documents_read: Counter::default(),
            anti_entropy_documents_repaired: Counter::default(),
            anti_entropy_settings_repaired: Counter::default(),
            intents_replayed: Family::default(),
            disks_replaced: Counter::default(),
        };
        m.build_info
            .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        // Counters over a known set of results exist at 0 from the start (an empty family is
        // not rendered at all), so `rate()` sees their first increase.
        for (family, results) in [
            (&m.rollouts, &["ok", "nack", "timeout", "invalid"][..]),
            (
                &m.index_settings_checks,
                &["consistent", "inconsistent", "unverified"][..],
            ),
            (&m.anti_entropy_passes, &["ok", "error"][..]),
            (
                &m.intents_replayed,
                &[
                    "applied",
                    "superseded",
                    "refused",
                    "marked",
                    "sent",
                    "untaken",
                ][..],
            ),
        ] {
            for result in results {
                let _ = family.get_or_create(&labels(&[("result", result)]));
            }
        }
        registry.register(
            "build_info",
            "1, labelled with the control plane's version",
            m.build_info.clone(),
        );
        registry.register(
            "topology_epoch",
            "Epoch of the stored topology",
            m.topology_epoch.clone(),
        );
        registry.register("nodes", "Nodes by state", m.nodes.clone());
        registry.register(
            "health_checks",
            "Health checks of the nodes by result",
            m.health_checks.clone(),
        );
        registry.register(
            "tasks_registered",
            "Tasks registered in the task registry",
            m.tasks_registered.clone(),
        );
        registry.register(
            "uid_leases",
            "Uid leases issued to Envoys",
            m.uid_leases.clone(),
        );
        registry.register(
            "uids_leased",
            "Task uids reserved by leases",
            m.uids_leased.clone(),
        );
        registry.register("rollouts", "Rollouts by result", m.rollouts.clone());
        registry.register(
            "rollout_nacks",
            "Rollouts an Envoy rejected",
            m.rollout_nacks.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the background work",
            m.leader.clone(),
        );
        registry.register("envoys", "Connected Envoys", m.envoys.clone());
        registry.register(
            "index_settings_consistent",
            "1 if every node held the same primary key and settings at the index's last check, 0 if not",
            m.index_settings_consistent.clone(),
        );
        registry.register(
            "index_settings_checks",
            "Checks of an index's settings across the nodes after a change, by result",
            m.index_settings_checks.clone(),
        );
        registry.register(
            "default_keys",
            "Creations of the cluster's default keys on the nodes, by node and result",
            m.default_keys.clone(),
        );
        registry.register(
            "job_documents_copied",
            "Documents written to nodes by shard copies",
            m.job_documents_copied.clone(),
        );
        registry.register(
            "job_phase",
            "Phase of the running job (0 prepare, 1 stage, 2 copy, 3 activate, 4 cut-over, 5 clean-up, 6 done)",
            m.job_phase.clone(),
        );
        registry.register(
            "job_moves_left",
            "Shard copies the running job has still to move",
            m.job_moves_left.clone(),
        );
        registry.register(
            "job_shard_lag",
            "Documents a copy being filled differed from its source by at its last round",
            m.job_shard_lag.clone(),
        );
        registry.register(
            "copies",
            "Shard copies in the stored topology, by state (active, copying, leaving, outOfSync)",
            m.copies.clone(),
        );
        registry.register(
            "repairs",
            "Out-of-sync copies a repair put back in the in-sync set",
            m.repairs.clone(),
        );
        registry.register(
            "anti_entropy_passes",
            "Anti-entropy passes over every shard's in-sync copies, by result",
            m.anti_entropy_passes.clone(),
        );
        registry.register(
            "anti_entropy_documents_read",
            "Documents anti-entropy read from the nodes, every copy counted",
            m.anti_entropy_documents_read.clone(),
        );
        registry.register(
            "anti_entropy_documents_repaired",
            "Documents whose in-sync copies differed and that anti-entropy made equal",
            m.anti_entropy_documents_repaired.clone(),
        );
        registry.register(
            "intents_replayed",
            "Schema changes a filter left unfinished, replayed to every node by the leader (applied), dropped for a later change of the index (superseded) or refused by a node",
            m.intents_replayed.clone(),
        );
        registry.register(
            "anti_entropy_settings_repaired",
            "Nodes whose primary key or settings of an index differed from the majority's and that anti-entropy brought to them",
            m.anti_entropy_settings_repaired.clone(),
        );
        registry.register(
            "disks_replaced",
            "Nodes found with another database than the one last seen (task history changed)",
            m.disks_replaced.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The consistency gauges from the index registry, which every replica shares.
    pub fn observe_indexes(&self, indexes: &[IndexEntry]) {
        self.index_settings_consistent.clear();
        for index in indexes {
            let value = match index.settings.as_ref().map(|s| s.status) {
                Some(CheckStatus::Consistent) => 1,
                Some(CheckStatus::Inconsistent) => 0,
                Some(CheckStatus::Unverified) | None => continue,
            };
            self.index_settings_consistent
                .get_or_create(&labels(&[("index", &index.uid)]))
                .set(value);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_stay_clear_of_the_filters() {
        let metrics = Metrics::new();
        metrics.repairs.inc();
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                "miroir_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        let mut families = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split_whitespace().skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            families += 1;
            assert!(name.starts_with("miroir_"), "{line}");
            assert!(!name.starts_with("miroir_filter_"), "{line}");
            if kind == "counter" {
                // prometheus_client adds `_total` to a counter's samples.
                assert!(!name.ends_with("_total"), "{line}: _total twice");
            }
        }
        assert!(families > 15, "{text}");
        for result in ["ok", "nack", "timeout", "invalid"] {
            assert!(
                text.contains(&format!(
                    "\nmiroir_rollouts_total{{result=\"{result}\"}} 0\n"
                )),
                "{text}"
            );
        }
        assert!(text.contains("\nmiroir_repairs_total 1\n"), "{text}");
    }
}
