//! Kafka offset operations behind a replay: the pure [`OffsetResetPlan`] (what to commit, where the
//! re-read ends, how far it has come) and the [`OffsetClient`] that reads and commits offsets.
//!
//! Offsets are only committed while the group has no members (DESIGN.md invariants): a live member
//! would commit its own position over the reset.

mod client;
mod plan;

pub use client::{GroupDescription, GroupMember, OffsetClient, OffsetError, Watermarks};
pub use plan::{
    EndPosition, OffsetResetPlan, PartitionOffsets, PartitionPlan, PlanError, Progress, StartPosition,
};
