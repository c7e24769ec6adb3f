//! Alert decisions: no I/O, no clock. Every instant comes from a command (a sample's
//! `sampled_at`, a tick's `up_to`, a command's `occurred_at`).
//!
//! - [`samples`]: what a metric sample may look like.
//! - [`config`]: rules, routes, inhibitions and silences as the domain holds them, validated.
//! - [`matchers`]: `=`, `!=`, `=~`, `!~` over label sets.
//! - [`series`]: a rule's values at an instant, one per `group_by` combination.
//! - [`mute`]: time intervals in a zone.
//! - [`evaluate`]: the lifecycle (inactive → pending → firing → resolved), inhibition, silences,
//!   routing, de-duplication and repeats, at one tick.
//! - [`grouping`]: Alertmanager's groups per route (`group_by`, `group_wait`, `group_interval`).
//! - [`health`]: a health check's status after a probe, and which probe results are refused.
//! - [`tick`]: which evaluation ticks are refused.
//!
//! Every refusal is decided here, from domain state the handler loaded (a stored silence, a
//! check's last probe, the last tick applied); the handler only loads, calls, writes and emits.

pub mod config;
pub mod evaluate;
pub mod grouping;
pub mod health;
pub mod matchers;
pub mod mute;
pub mod samples;
pub mod series;
pub mod tick;

/// Labels, ordered so that their fingerprint and their JSON are stable.
pub type Labels = std::collections::BTreeMap<String, String>;

pub use studyspot_consumer_runtime::{Malformed, Refusal};

#[cfg(test)]
mod evaluate_tests;
