//! What the handler and the modules it dispatches to (dashboards, derived metrics, groups, health,
//! reports, retention) share around the runtime's [`Out`]: alerts' rejection and config-change
//! records, the projection's JSON, and a command's instants.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use studyspot_consumer_runtime::{HandleError, Out, Refusal, instant, malformed};
use studyspot_schemas::{
    Record,
    alerts::{AlertConfigChanged, CommandRejected},
};

pub(crate) const ACTOR: &str = "service:alerts";

/// Alerts' follow-on records beside the runtime's numbering.
pub(crate) trait AlertsOut {
    /// The command refused, as alerts' `CommandRejected`.
    fn refuse<C: Record>(&mut self, refusal: Refusal);
    /// A rule, route, silence, dashboard, report or check defined or changed.
    fn changed(&mut self, kind: &str, id: &str, change: &str);
}

impl AlertsOut for Out<'_> {
    fn refuse<C: Record>(&mut self, refusal: Refusal) {
        let command_id = self.command_id();
        self.reject(|metadata| CommandRejected {
            metadata,
            command_id,
            command_type: C::FULL_NAME.to_owned(),
            code: refusal.code.to_owned(),
            reason: refusal.reason,
        });
    }

    fn changed(&mut self, kind: &str, id: &str, change: &str) {
        self.emit(|metadata| AlertConfigChanged {
            metadata,
            kind: kind.into(),
            id: id.into(),
            change: change.into(),
        });
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, HandleError> {
    serde_json::to_value(value).map_err(|e| HandleError::Fatal(format!("alerts projection: {e}")))
}

/// A definition the consumer itself wrote; unreadable means the projection is not ours.
pub(crate) fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, HandleError> {
    serde_json::from_value(value).map_err(|e| HandleError::Fatal(format!("alerts projection: {e}")))
}

/// Command `C`'s field `field` as an instant; an impossible one makes `C` malformed.
pub(crate) fn time<C: Record>(field: &str, ms: i64) -> Result<DateTime<Utc>, HandleError> {
    instant(field, ms).map_err(malformed::<C>)
}
