//! The `_metadata.json` of each date partition this process lands into, cached between landings.
//!
//! The cache only saves reads: every commit is a compare-and-swap against the stored version, so a stale
//! entry costs one failed precondition and a re-read, never a lost or doubled update. Commits to one date
//! are serialized within the process so that its own landings do not race each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use streamlake_core::rawzone::{
    CommitOutcome, IngestionDate, Landing, LandingPlan, MetadataError, MetadataSnapshot, RawZoneLayout,
    RawZoneStore, commit_landing, load_metadata,
};
use tokio::sync::Mutex as AsyncMutex;

type Slot = Arc<AsyncMutex<Option<MetadataSnapshot>>>;

#[derive(Debug)]
pub struct MetadataCache {
    store: RawZoneStore,
    layout: RawZoneLayout,
    slots: Mutex<HashMap<IngestionDate, Slot>>,
}

impl MetadataCache {
    pub fn new(store: RawZoneStore, layout: RawZoneLayout) -> Self {
        Self {
            store,
            layout,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, date: IngestionDate) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(date).or_default().clone()
    }

    /// Forgets every cached document (e.g. after a rebalance, when other writers may have landed).
    pub fn invalidate(&self) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// Plans records of one Kafka partition against the current metadata of `date`.
    pub async fn plan(
        &self,
        date: IngestionDate,
        partition: i32,
        offsets: &[i64],
        refresh: bool,
    ) -> Result<LandingPlan, MetadataError> {
        let slot = self.slot(date);
        let mut snapshot = slot.lock().await;
        if refresh || snapshot.is_none() {
            *snapshot = Some(load_metadata(&self.store, &self.layout, date).await?);
        }
        Ok(snapshot
            .as_ref()
            .map(|s| s.doc.plan(partition, offsets))
            .unwrap_or_default())
    }

    /// Commits a landing to `date`'s metadata; on conflict the cache holds the document that refused it.
    /// Returns the outcome and whether the committed document lists each name in `names`.
    pub async fn commit(
        &self,
        date: IngestionDate,
        landing: &Landing,
        names: &[String],
    ) -> Result<(CommitOutcome, Vec<bool>), MetadataError> {
        let slot = self.slot(date);
        let mut guard = slot.lock().await;
        let snapshot = match guard.as_mut() {
            Some(snapshot) => snapshot,
            None => guard.insert(load_metadata(&self.store, &self.layout, date).await?),
        };
        let outcome = commit_landing(&self.store, &self.layout, snapshot, landing).await;
        if outcome.is_err() {
            *guard = None; // unknown state: read it again next time
        }
        let outcome = outcome?;
        let listed = match guard.as_ref() {
            Some(s) => names
                .iter()
                .map(|n| s.doc.files.iter().any(|f| &f.path == n))
                .collect(),
            None => vec![false; names.len()],
        };
        Ok((outcome, listed))
    }
}
