//! Leader election: exactly one replica runs the background work (health checks, task polling).
//! The lease lives in the store (Redis: `SET NX PX`, renewed by a compare-owner script; the
//! embedded store: always the leader) and is renewed every third of its TTL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::pause;
use crate::store::SharedStore;

pub async fn run(
    store: SharedStore,
    owner: String,
    ttl: Duration,
    flag: Arc<AtomicBool>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // When the lease was last (re)taken, measured before the call: it expires `ttl` after that.
    let mut held_since: Option<Instant> = None;
    loop {
        let asked_at = Instant::now();
        match store.leader_acquire(&owner, ttl).await {
            Ok(true) => {
                held_since = Some(asked_at);
                if !flag.swap(true, Ordering::Relaxed) {
                    tracing::info!(owner, "this replica is the leader");
                }
            }
            Ok(false) => {
                held_since = None;
                if flag.swap(false, Ordering::Relaxed) {
                    tracing::warn!(owner, "leadership lost");
                }
            }
            Err(e) => {
                // The store is unreachable: keep leading only while the lease surely holds.
                tracing::warn!(owner, error = %e, "leader lease not renewed");
                if held_since.is_none_or(|t| t.elapsed() >= ttl)
                    && flag.swap(false, Ordering::Relaxed)
                {
                    tracing::warn!(owner, "leadership lost");
                }
            }
        }
        if !pause(&mut shutdown, ttl / 3).await {
            break;
        }
    }
    if flag.swap(false, Ordering::Relaxed) {
        if let Err(e) = store.leader_release(&owner).await {
            tracing::warn!(owner, error = %e, "leader lease not released");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::RedisStore;
    use crate::testutil::{eventually, RedisServer};

    #[tokio::test]
    async fn one_leader_and_a_takeover() {
        let server = RedisServer::start();
        let ttl = Duration::from_millis(600);
        let mut contenders = Vec::new();
        for name in ["a", "b"] {
            let store: SharedStore =
                Arc::new(RedisStore::connect(&server.url).await.expect("connect"));
            let flag = Arc::new(AtomicBool::new(false));
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(run(store, name.to_string(), ttl, flag.clone(), stopped));
            contenders.push((flag, stop, task));
        }
        let leaders = |c: &Vec<(Arc<AtomicBool>, _, _)>| {
            c.iter()
                .filter(|(f, _, _)| f.load(Ordering::Relaxed))
                .count()
        };
        eventually("a leader", || {
            let n = leaders(&contenders);
            async move { n == 1 }
        })
        .await;
        // Stable: still exactly one after several renewals.
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(leaders(&contenders), 1);

        // The leader stops renewing without releasing (a crash): the other takes over.
        let leader = contenders
            .iter()
            .position(|(f, _, _)| f.load(Ordering::Relaxed))
            .expect("leader");
        let (_, _, task) = contenders.remove(leader);
        task.abort();
        let (other, _, _) = &contenders[0];
        let other = other.clone();
        eventually("takeover", || {
            let o = other.load(Ordering::Relaxed);
            async move { o }
        })
        .await;
    }
}
