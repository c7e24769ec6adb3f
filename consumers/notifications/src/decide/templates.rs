//! Templates rendered with minijinja in strict mode: a variable the template names but the
//! sender did not give is an error, found when the template is created (against its sample
//! variables) rather than when a message is due. The rendering itself, and its limits (work,
//! nesting, source and output size), are shared with the gateway's checks and previews
//! (`studyspot-notification-templates`), so both refuse the same templates: one refused at
//! creation never reaches a message, and one stored before a limit existed fails its message
//! with the limit's code instead of holding the consumer.

pub use studyspot_notification_templates::{Parts, RenderError, Rendered, render};

/// The refusal code of a template that did not render: the limit's own code when one was hit,
/// else `otherwise`.
pub fn refusal_code(e: &RenderError, otherwise: &'static str) -> &'static str {
    e.limit_code().unwrap_or(otherwise)
}
