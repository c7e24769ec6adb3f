//! The consumer runtime: the thin shell around a domain's pure `decide`.
//!
//! Per batch, one PostgreSQL transaction holds the projection writes, the next offset of every
//! partition in the batch, the applied event ids and the outbox rows of follow-on events and
//! dead letters, and the outcome of every command. Commit, then publish the outbox with the idempotent producer, then mark it.
//! Positions are loaded from PostgreSQL on assignment, so a crash at any instant neither loses
//! nor doubles an effect.

pub mod checksum;
mod crash;
mod database;
mod decision;
mod handler;
mod keeper;
mod lane;
mod outbox;
mod outcomes;
mod process;
mod rebuild;
mod runtime;
mod sidecar;
pub mod slots;
pub mod ticker;

pub use database::{Database, connect_schema};
pub use decision::{Malformed, Out, Refusal, filled, instant, malformed};
pub use handler::{Disposition, Effects, HandleError, Handler, Inbound};
pub use process::{ConsumerSpec, ProcessError, run_consumer, shutdown_on_signals};
pub use rebuild::{RebuildOptions, RebuildReport, drop_old, rebuild};
pub use runtime::{Runtime, RuntimeConfig, RuntimeError};
pub use sidecar::{OutboxWriter, Sidecar, SidecarContext};
pub use sqlx::migrate::Migrator;
