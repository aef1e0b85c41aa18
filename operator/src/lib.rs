//! StreamLake's operator: the four custom resources and their controllers.
//!
//! Each controller reconciles as a pipeline: read what it needs, decide (a pure function, unit-tested),
//! apply the actions, write the status with server-side apply.

pub mod backfill;
pub mod conditions;
pub mod context;
pub mod controller;
pub mod crd;
pub mod dlqinspection;
pub mod dqcheck;
pub mod error;
pub mod http;
pub mod lake;
pub mod leader;
pub mod metrics;
pub mod replay;
pub mod startup;
