//! What the handler and the modules it dispatches to (campaigns, tracking) share around the
//! runtime's [`Out`]: notifications' two rejection records, for the core's refusals.

use studyspot_consumer_runtime::{Out, Refusal};
use studyspot_schemas::{
    Record,
    notifications::{CatalogCommandRejected, CommandRejected},
};

pub(crate) const ACTOR: &str = "service:notifications";

/// Notifications' refusals: of an organization-wide command, or of one for a recipient.
pub(crate) trait NotificationsOut {
    /// An organization-wide command refused (templates, campaigns).
    fn refuse_catalog<C: Record>(&mut self, refusal: Refusal);
    /// A command for `recipient_id` refused.
    fn refuse<C: Record>(&mut self, recipient_id: &str, refusal: Refusal);
}

impl NotificationsOut for Out<'_> {
    fn refuse_catalog<C: Record>(&mut self, Refusal { code, reason }: Refusal) {
        let command_id = self.command_id();
        self.reject(|metadata| CatalogCommandRejected {
            metadata,
            command_id,
            command_type: C::FULL_NAME.to_owned(),
            code: code.to_owned(),
            reason,
        });
    }

    fn refuse<C: Record>(&mut self, recipient_id: &str, Refusal { code, reason }: Refusal) {
        let command_id = self.command_id();
        self.reject(|metadata| CommandRejected {
            metadata,
            command_id,
            command_type: C::FULL_NAME.to_owned(),
            recipient_id: recipient_id.to_owned(),
            code: code.to_owned(),
            reason,
        });
    }
}
