//! The sink's state, driven by the poll thread and by the rebalance callbacks.
//!
//! The poll thread owns the Kafka consumer and calls into [`SinkCore`] for every record and on a short
//! tick; rebalance callbacks run on the same thread (inside `poll`), so the core is never touched by two
//! threads at once. Landings run on the Tokio runtime and report back through a channel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::backpressure::{Action, Backpressure};
use crate::buffer::{OpenBuffers, RotationPolicy, SealedUnit};
use crate::health::Health;
use crate::landing::{Landed, LandingContext, land};
use crate::metrics::Metrics;
use crate::record::{PartitionArenas, SourceRecord};
use crate::tracker::{OffsetTracker, UnitId};

/// Longest time the poll loop stops taking records for memory before it pauses the partitions instead.
const MAX_HOLD: Duration = Duration::from_secs(10);
/// How often a periodic commit sends every partition's position, moved or not: a periodic commit is
/// asynchronous, and its outcome is not reported back (see [`SinkCore::commit`]), so a position whose commit
/// failed is sent again at the latest after this long.
const RECOMMIT_EVERY: Duration = Duration::from_secs(10);
/// How long the shutdown waits for the broker to confirm its final commit. With the default drain deadline
/// (30 s) that ends within a pod's grace period (45 s) even when the broker is away; a synchronous commit
/// would wait until the group session times out.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(5);

/// How the sink batches, bounds memory and commits.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub rotation: RotationPolicy,
    /// Memory for records (open buffers, and landings in flight counted with their encoded files) at which
    /// the poll loop stops taking records ([`Backpressure`]).
    pub max_buffered_bytes: usize,
    pub max_concurrent_landings: usize,
    pub commit_interval: Duration,
    /// How long a revoke or shutdown waits for landings before committing what is durable.
    pub drain_timeout: Duration,
    /// Memory a landing holds besides its records: the file it encodes.
    pub landing_file_memory: FileMemory,
}

/// How much memory a landing's file takes, on top of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMemory {
    /// The whole file is built in memory: charged as much again as the records (JSON lines are about
    /// their size; Parquet holds a batch of column builders and the compressed pages).
    AsLargeAsTheRecords,
    /// The file is streamed to the store while it is built, through a buffer of up to this many bytes
    /// (smaller for a smaller file).
    Streamed(usize),
}

impl FileMemory {
    /// What a landing of `records` bytes is charged.
    fn landing_bytes(self, records: usize) -> usize {
        match self {
            Self::AsLargeAsTheRecords => records * 2,
            Self::Streamed(buffer) => records + records.min(buffer),
        }
    }

    /// The largest unit whose landing fits in `memory`.
    fn unit_bytes_within(self, memory: usize) -> usize {
        match self {
            Self::AsLargeAsTheRecords => memory / 2,
            Self::Streamed(buffer) if memory <= 2 * buffer => memory / 2,
            Self::Streamed(buffer) => memory - buffer,
        }
    }
}

/// Per-partition end offsets (exclusive) of the bounded mode.
#[derive(Debug, Default)]
pub struct Bounds {
    ends: BTreeMap<i32, i64>,
    reached: BTreeSet<i32>,
    /// Every partition reached its end (asked once per record, so kept rather than computed).
    all_reached: bool,
}

impl Bounds {
    pub fn new(ends: BTreeMap<i32, i64>) -> Self {
        Self {
            all_reached: ends.is_empty(),
            ends,
            reached: BTreeSet::new(),
        }
    }

    /// Marks a partition as finished (its start is at or past its end, or its end was read); true if it
    /// was not before.
    pub fn reached(&mut self, partition: i32) -> bool {
        let newly = self.reached.insert(partition);
        self.all_reached = self.ends.keys().all(|p| self.reached.contains(p));
        newly
    }

    fn end(&self, partition: i32) -> i64 {
        self.ends.get(&partition).copied().unwrap_or(i64::MIN)
    }
}

pub struct SinkCore {
    settings: SinkSettings,
    topic: String,
    buffers: OpenBuffers,
    trackers: BTreeMap<i32, OffsetTracker>,
    inflight: HashMap<UnitId, usize>,
    inflight_bytes: usize,
    /// The position last sent in a commit, per partition (for an asynchronous commit: sent, not known to
    /// have been taken).
    commit_sent: BTreeMap<i32, i64>,
    last_recommit: Instant,
    backpressure: Backpressure,
    landing: Arc<LandingContext>,
    runtime: tokio::runtime::Handle,
    permits: Arc<Semaphore>,
    done_tx: mpsc::Sender<Landed>,
    done_rx: mpsc::Receiver<Landed>,
    last_commit: Instant,
    bounds: Option<Bounds>,
    /// Where each partition's records are copied to.
    arenas: PartitionArenas,
}

impl std::fmt::Debug for SinkCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkCore")
            .field("topic", &self.topic)
            .field("partitions", &self.trackers.keys().collect::<Vec<_>>())
            .field("inflight", &self.inflight.len())
            .field("backpressure", &self.backpressure)
            .finish_non_exhaustive()
    }
}

impl SinkCore {
    pub fn new(
        settings: SinkSettings,
        topic: String,
        landing: Arc<LandingContext>,
        runtime: tokio::runtime::Handle,
        bounds: Option<Bounds>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            buffers: OpenBuffers::new(settings.rotation),
            permits: Arc::new(Semaphore::new(settings.max_concurrent_landings.max(1))),
            backpressure: Backpressure::new(settings.max_buffered_bytes, MAX_HOLD),
            settings,
            topic,
            trackers: BTreeMap::new(),
            inflight: HashMap::new(),
            inflight_bytes: 0,
            commit_sent: BTreeMap::new(),
            last_recommit: Instant::now(),
            landing,
            runtime,
            done_tx,
            done_rx,
            last_commit: Instant::now(),
            bounds,
            arenas: PartitionArenas::default(),
        }
    }

    /// Switches to bounded mode: no commits, and records past each partition's end are not landed.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = Some(bounds);
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn metrics(&self) -> &Metrics {
        &self.landing.metrics
    }

    pub fn health(&self) -> &Health {
        &self.landing.health
    }

    fn buffered_bytes(&self) -> usize {
        self.buffers.bytes() + self.inflight_bytes
    }

    /// Copies a message out of the client's buffers, into its partition's arena.
    pub fn copy_out(&mut self, message: &BorrowedMessage<'_>) -> SourceRecord {
        self.arenas.copy_out(message)
    }

    /// Takes a record read from Kafka.
    pub fn accept<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        record: SourceRecord,
        now: Instant,
    ) {
        let (partition, offset) = (record.partition, record.offset);
        if let Some(bounds) = &mut self.bounds {
            let end = bounds.end(partition);
            if offset + 1 >= end && bounds.reached(partition) {
                pause_partition(consumer, &self.topic, partition);
            }
            if offset >= end {
                return; // past the requested range: not ours to land
            }
        }
        let tracker = self.trackers.entry(partition).or_default();
        if tracker.last_seen().is_some_and(|last| offset <= last) {
            warn!(
                partition,
                offset, "record delivered again; it is already held, ignoring the copy"
            );
            return;
        }
        let (unit, sealed) = self.buffers.append(record, now);
        // Cannot fail: the offset is above the last one seen.
        let _ = tracker.record(offset, unit);
        if let Some(sealed) = sealed {
            self.launch(sealed);
        }
        self.update_pressure();
        self.backpressure.after_record(self.buffered_bytes(), now);
    }

    /// A partition has no more records for now (bounded mode asks for `enable.partition.eof`).
    pub fn partition_eof<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, partition: i32) {
        let Some(bounds) = &mut self.bounds else { return };
        let position = consumer.position().ok().and_then(|tpl| {
            tpl.find_partition(&self.topic, partition)
                .and_then(|p| p.offset().to_raw())
        });
        if position.is_some_and(|p| p >= bounds.end(partition)) && bounds.reached(partition) {
            pause_partition(consumer, &self.topic, partition);
        }
    }

    fn launch(&mut self, unit: SealedUnit) {
        // A landing holds its records and, while it encodes and uploads, the file's bytes or its buffer.
        let charged = self.settings.landing_file_memory.landing_bytes(unit.bytes);
        self.inflight.insert(unit.id, charged);
        self.inflight_bytes += charged;
        let (ctx, done, permits) = (self.landing.clone(), self.done_tx.clone(), self.permits.clone());
        self.runtime.spawn(async move {
            // Holding a permit bounds concurrent uploads; the memory is bounded by the pause below.
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let landed = land(ctx, unit).await;
            let _ = done.send(landed);
        });
    }

    fn complete(&mut self, landed: Landed) {
        if let Some(bytes) = self.inflight.remove(&landed.unit) {
            self.inflight_bytes -= bytes;
        }
        if let Some(tracker) = self.trackers.get_mut(&landed.partition) {
            tracker.mark_durable(landed.unit);
        }
    }

    /// While the poll loop holds for memory: waits up to `timeout` for a landing to finish. Waking on the
    /// completion rather than after a fixed sleep lets the loop read again as soon as memory is freed.
    pub fn await_landing(&mut self, timeout: Duration) {
        if let Ok(landed) = self.done_rx.recv_timeout(timeout) {
            self.complete(landed);
        }
    }

    fn drain_completions(&mut self) {
        while let Ok(landed) = self.done_rx.try_recv() {
            self.complete(landed);
        }
    }

    /// Periodic work: finished landings, age rotation, back-pressure, commits.
    pub fn tick<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, now: Instant) {
        self.drain_completions();
        for unit in self.buffers.seal_expired(now) {
            self.launch(unit);
        }
        if let Some(bounds) = &self.bounds {
            let reached: Vec<i32> = bounds.reached.iter().copied().collect();
            for unit in self.buffers.seal_partitions(&reached) {
                self.launch(unit);
            }
        }
        self.apply_backpressure(consumer, now);
        if now.duration_since(self.last_commit) >= self.settings.commit_interval {
            if now.duration_since(self.last_recommit) >= RECOMMIT_EVERY {
                self.commit_sent.clear();
                self.last_recommit = now;
            }
            self.commit(consumer, None, CommitMode::Async);
            self.last_commit = now;
        }
        self.metrics()
            .buffered_bytes
            .set(i64::try_from(self.buffered_bytes()).unwrap_or(i64::MAX));
    }

    fn apply_backpressure<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, now: Instant) {
        let failing = self.health().storage_failing();
        self.update_pressure();
        let seal = self.backpressure.buffers_to_seal(
            self.buffered_bytes(),
            failing,
            self.inflight.len(),
            self.settings.max_concurrent_landings.max(1),
        );
        for unit in self.buffers.seal_largest(seal) {
            self.launch(unit);
        }
        match self.backpressure.decide(self.buffered_bytes(), failing, now) {
            Some(Action::Pause) => self.set_paused(consumer, true),
            Some(Action::Resume) => self.set_paused(consumer, false),
            None => {}
        }
    }

    /// Under load (a quarter of the budget held), buffers are sealed at a size that lets several landings
    /// run while records keep coming, instead of at the rotation size: reading and landing overlap and use
    /// every core. Checked on every record: between two ticks the loop can read tens of MiB into one
    /// buffer, which would then land alone, charged several times over, while the cores idle.
    fn update_pressure(&mut self) {
        let pressure = self.buffered_bytes() >= self.settings.max_buffered_bytes / 4;
        for unit in self
            .buffers
            .set_pressure_limit(pressure.then(|| self.pressure_unit_bytes()))
        {
            self.launch(unit);
        }
    }

    /// The size of a unit sealed under memory pressure: with every landing slot busy and one unit open per
    /// slot, the records and their encoded files still fit in the budget.
    fn pressure_unit_bytes(&self) -> usize {
        let slots = self.settings.max_concurrent_landings.max(1) + 1;
        let per_slot = self.settings.max_buffered_bytes / slots;
        self.settings
            .landing_file_memory
            .unit_bytes_within(per_slot)
            .max(1)
    }

    /// Whether the poll loop may take more records now (false while memory is full and not yet paused).
    pub fn wants_records(&self) -> bool {
        self.backpressure.wants_records()
    }

    fn set_paused<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, paused: bool) {
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let result = if paused {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&self.resumable(&assignment))
        };
        match result {
            Ok(()) => {
                self.backpressure.set_paused(paused);
                self.metrics().paused.set(i64::from(paused));
                info!(
                    paused,
                    buffered_bytes = self.buffered_bytes(),
                    storage_failing = self.health().storage_failing(),
                    "consumption {}",
                    if paused { "paused" } else { "resumed" }
                );
            }
            Err(e) => warn!(
                "could not {} partitions: {e}",
                if paused { "pause" } else { "resume" }
            ),
        }
    }

    /// The assigned partitions minus those that reached their bounded end.
    fn resumable(&self, assignment: &TopicPartitionList) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for elem in assignment.elements() {
            let reached = self
                .bounds
                .as_ref()
                .is_some_and(|b| b.reached.contains(&elem.partition()));
            if !reached {
                tpl.add_partition(elem.topic(), elem.partition());
            }
        }
        tpl
    }

    /// Commits the durable position of every partition (or only of `only`).
    ///
    /// Periodic commits are asynchronous and send only positions that moved since the last one sent: while
    /// the coordinator is unreachable a commit waits for it (until the broker is back or the session times
    /// out), and the poll loop must keep turning meanwhile. librdkafka does not report the outcome of an
    /// application's asynchronous commit to a client that takes its callbacks as events (as rust-rdkafka's
    /// does), so every `RECOMMIT_EVERY` (10 s) the positions are all sent again. A revoke's commit is
    /// synchronous and sends every position: the partitions must not be handed over before the broker took
    /// them (the coordinator that asks for them is there). The shutdown's waits a bounded time
    /// (`final_commit`).
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        only: Option<&[i32]>,
        mode: CommitMode,
    ) {
        if self.bounds.is_some() {
            return; // bounded mode has no group
        }
        let periodic = matches!(mode, CommitMode::Async);
        let (tpl, positions) = self.positions_to_commit(only, periodic);
        if positions.is_empty() {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                for (partition, position) in positions {
                    self.commit_sent.insert(partition, position);
                    if !periodic {
                        // Taken by the broker; an asynchronous commit's shows in the statistics.
                        self.landing.metrics.set_committed(partition, position);
                    }
                }
            }
            Err(e) => warn!("committing offsets failed (will retry): {e}"),
        }
    }

    /// The durable position of every partition (or only of `only`; if `only_moved`, only those not sent
    /// yet), as a list to commit and as pairs.
    fn positions_to_commit(
        &mut self,
        only: Option<&[i32]>,
        only_moved: bool,
    ) -> (TopicPartitionList, BTreeMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        let mut positions = BTreeMap::new();
        for (partition, tracker) in &mut self.trackers {
            if only.is_some_and(|only| !only.contains(partition)) {
                continue;
            }
            if let Some(position) = tracker.commit_position()
                && (!only_moved || self.commit_sent.get(partition) != Some(&position))
            {
                let _ = tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(position));
                positions.insert(*partition, position);
            }
        }
        (tpl, positions)
    }

    /// Lands everything held for `partitions` and waits until it is durable or the deadline passes.
    pub fn drain(&mut self, partitions: &[i32], deadline: Instant) {
        for unit in self.buffers.seal_partitions(partitions) {
            self.launch(unit);
        }
        loop {
            let settled = partitions
                .iter()
                .all(|p| self.trackers.get_mut(p).is_none_or(|t| t.is_settled()));
            if settled {
                return;
            }
            let Some(remaining) = time_left(deadline) else {
                warn!(
                    ?partitions,
                    "drain deadline passed; records not yet durable will be read again by the next owner"
                );
                return;
            };
            match self
                .done_rx
                .recv_timeout(remaining.min(Duration::from_millis(100)))
            {
                Ok(landed) => self.complete(landed),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Partitions were revoked: land what is held, commit it, and forget them.
    pub fn revoke<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, partitions: &[i32]) {
        if consumer.assignment_lost() {
            warn!(
                ?partitions,
                "assignment lost; dropping held records (the new owner reads them again)"
            );
        } else {
            self.drain(partitions, Instant::now() + self.settings.drain_timeout);
            self.commit(consumer, Some(partitions), CommitMode::Sync);
        }
        self.forget(partitions);
        if !partitions.is_empty() {
            info!(?partitions, "partitions revoked");
        }
    }

    /// The client that held the partitions was replaced without handing them over (see
    /// [`crate::membership`]): what is held for them is dropped, and whoever owns them next reads it again
    /// from the committed offsets. Landings in flight still finish; the metadata skips what they landed.
    pub fn abandon_all(&mut self) {
        let partitions: Vec<i32> = self.trackers.keys().copied().collect();
        self.forget(&partitions);
        if !partitions.is_empty() {
            warn!(
                ?partitions,
                "partitions of the replaced client dropped (the next owner reads them again)"
            );
        }
    }

    fn forget(&mut self, partitions: &[i32]) {
        self.buffers.discard_partitions(partitions);
        for partition in partitions {
            self.trackers.remove(partition);
            self.commit_sent.remove(partition);
            self.arenas.forget(*partition);
        }
    }

    /// Partitions were assigned: other writers may have landed meanwhile, so re-read the metadata.
    pub fn assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, partitions: &[i32]) {
        self.landing.metadata.invalidate();
        for partition in partitions {
            self.trackers.entry(*partition).or_default();
        }
        if self.backpressure.is_paused() {
            let mut tpl = TopicPartitionList::new();
            for partition in partitions {
                tpl.add_partition(&self.topic, *partition);
            }
            if let Err(e) = consumer.pause(&tpl) {
                warn!("could not pause newly assigned partitions: {e}");
            }
        }
        if !partitions.is_empty() {
            info!(?partitions, "partitions assigned");
        }
    }

    /// Bounded mode: every partition reached its end, so Kafka has nothing more for this run.
    pub fn all_read(&self) -> bool {
        self.bounds.as_ref().is_some_and(|b| b.all_reached)
    }

    /// Bounded mode: every partition reached its end and everything read is durable.
    pub fn bounded_done(&mut self) -> bool {
        self.all_read() && self.buffers.is_empty() && self.trackers.values_mut().all(|t| t.is_settled())
    }

    /// SIGTERM: stop reading, land everything, commit. False if the broker did not confirm the commit (it
    /// may be away): closing the client would then wait for that commit too.
    pub fn shutdown<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> bool {
        self.health().stopping();
        let partitions: Vec<i32> = self.trackers.keys().copied().collect();
        info!(?partitions, "shutting down: draining");
        self.drain(&partitions, Instant::now() + self.settings.drain_timeout);
        let confirmed = self.final_commit(consumer, FINAL_COMMIT_WAIT);
        // The client's close revokes the partitions: it must find nothing left to drain and wait for again
        // (landings still in flight finish; the next owner reads their records again and skips them).
        self.forget(&partitions);
        confirmed
    }

    /// The shutdown's commit: sent asynchronously and confirmed by reading the committed offsets back, for at
    /// most `wait`. True if confirmed, or if there was nothing to commit.
    fn final_commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, wait: Duration) -> bool {
        if self.bounds.is_some() {
            return true; // bounded mode has no group
        }
        let (tpl, positions) = self.positions_to_commit(None, false);
        if positions.is_empty() {
            return true;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            warn!("the final commit failed: {e}; the next owner reads again from the last committed offsets");
            return false;
        }
        let deadline = Instant::now() + wait;
        while let Some(remaining) = time_left(deadline) {
            let read_back = consumer.committed_offsets(tpl.clone(), remaining.min(Duration::from_secs(1)));
            let taken = read_back.is_ok_and(|now| {
                positions.iter().all(|(partition, position)| {
                    now.find_partition(&self.topic, *partition)
                        .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *position))
                })
            });
            if taken {
                for (partition, position) in positions {
                    self.landing.metrics.set_committed(partition, position);
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        warn!(
            ?positions,
            "the final commit was not confirmed within {wait:?} (is the broker away?): the next owner reads \
             again from the last committed offsets, and skips what is listed as landed"
        );
        false
    }
}

fn pause_partition<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if let Err(e) = consumer.pause(&tpl) {
        warn!(partition, "could not pause a finished partition: {e}");
    }
}

/// What is left of the time before `deadline`, if anything.
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Locks the core; a panic elsewhere must not stop the drain and commit of what is durable.
pub fn lock(core: &Mutex<SinkCore>) -> MutexGuard<'_, SinkCore> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_unit_within_a_share_of_memory_is_charged_no_more_than_that_share() {
        const MIB: usize = 1 << 20;
        let streamed = FileMemory::Streamed(2 * MIB);
        for memory in [1, 1000, 3 * MIB, 4 * MIB, 4 * MIB + 1, 25 * MIB + 123] {
            for file in [FileMemory::AsLargeAsTheRecords, streamed] {
                let unit = file.unit_bytes_within(memory);
                assert!(
                    file.landing_bytes(unit) <= memory,
                    "{file:?} in {memory}: unit {unit}"
                );
                assert!(
                    file.landing_bytes(unit + 2) > memory,
                    "{file:?} in {memory}: unit {unit} is not the largest"
                );
            }
        }
        assert_eq!(
            streamed.unit_bytes_within(25 * MIB),
            23 * MIB,
            "records plus the whole buffer"
        );
        assert_eq!(
            streamed.landing_bytes(MIB),
            2 * MIB,
            "a small file's buffer is its size"
        );
    }
}
