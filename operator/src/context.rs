//! What every reconcile shares: the Kubernetes client, the Kafka offset client, metrics, the Event
//! recorder, and the cache of Replays (to see which one holds a consumer group).

use std::sync::Arc;

use kube::core::DeserializeGuard;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use streamlake_core::offsets::OffsetClient;

use crate::crd::Replay;
use crate::metrics::Metrics;

/// The field manager of everything the operator writes with server-side apply.
pub const FIELD_MANAGER: &str = "streamlake-operator";

pub struct Context {
    pub client: kube::Client,
    /// Blocking calls: use from `spawn_blocking`.
    pub offsets: Arc<OffsetClient>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub replays: Store<DeserializeGuard<Replay>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}
