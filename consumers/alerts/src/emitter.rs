//! Follow-on records of one inbound message for the health-check and log handlers: numbered in
//! emission order (so a re-applied message emits the same ids) and refusals as alerts'
//! `CommandRejected`.

use studyspot_consumer_runtime::{Effects, Inbound};
use studyspot_schemas::{EventMetadata, Record, alerts::CommandRejected};

use crate::decide::Refusal;

pub(crate) struct Emitter<'a> {
    pub message: &'a Inbound,
    effects: &'a mut Effects,
    actor: &'static str,
    next: u32,
}

impl<'a> Emitter<'a> {
    pub fn new(message: &'a Inbound, effects: &'a mut Effects, actor: &'static str) -> Self {
        Self { message, effects, actor, next: 0 }
    }

    pub fn org(&self) -> &str {
        &self.message.metadata.organization_id
    }

    pub fn metadata(&mut self) -> EventMetadata {
        self.next += 1;
        self.message.follow_on(self.next - 1, self.actor)
    }

    pub fn emit<R: Record>(&mut self, record: impl FnOnce(EventMetadata) -> R) {
        let metadata = self.metadata();
        self.effects.emit(record(metadata));
    }

    pub fn refuse<C: Record>(&mut self, refusal: Refusal) {
        let metadata = self.metadata();
        self.effects.reject(CommandRejected {
            metadata,
            command_id: self.message.metadata.event_id.clone(),
            command_type: C::FULL_NAME.to_owned(),
            code: refusal.code.to_owned(),
            reason: refusal.reason,
        });
    }
}
