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

pub mod config;
pub mod evaluate;
pub mod grouping;
pub mod matchers;
pub mod mute;
pub mod samples;
pub mod series;

/// Labels, ordered so that their fingerprint and their JSON are stable.
pub type Labels = std::collections::BTreeMap<String, String>;

/// The command is not what the contract means (the gateway lets none of these through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A well-formed command the domain refuses: a `CommandRejected` event with this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

#[cfg(test)]
mod evaluate_tests;
