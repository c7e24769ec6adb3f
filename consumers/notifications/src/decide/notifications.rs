//! The commands of one notification and of the template catalogue, and which of them are refused:
//! a send whose id is taken or whose message cannot be written, a "send now" of nothing waiting,
//! a report or tracked status of a notification that is not the recipient's, a template that does
//! not render. The handler loads the state below, calls these, and writes and emits what they
//! return.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use studyspot_ids::{NotificationId, RecipientId, TemplateId};
use studyspot_schemas::notifications::{CreateTemplate, SendNotification};

use super::{
    Malformed, Refusal, parse, parse_opt,
    templates::{self, Parts, Rendered},
    waiting::{self, Release},
};

/// A stored notification as the commands that name it read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub notification_id: NotificationId,
    pub recipient_id: RecipientId,
    pub status: String,
}

/// A command naming one notification of one recipient (`ReleaseNotification`,
/// `RecordDeliveryOutcome`, `RecordDeliveryStatus`), its ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub notification_id: NotificationId,
    pub recipient_id: RecipientId,
}

pub fn named(notification_id: &str, recipient_id: &str) -> Result<Named, Malformed> {
    Ok(Named {
        notification_id: parse("notification_id", notification_id)?,
        recipient_id: parse("recipient_id", recipient_id)?,
    })
}

/// The notification `c` names, when it is the recipient's: another recipient's (or another
/// organization's, which the handler never loads) is not found.
pub fn decide_found<'a>(stored: Option<&'a Notification>, c: &Named) -> Result<&'a Notification, Refusal> {
    stored.filter(|n| n.recipient_id == c.recipient_id).ok_or_else(|| {
        Refusal::new(
            "notification_not_found",
            format!("notification {} does not exist for {}", c.notification_id, c.recipient_id),
        )
    })
}

/// A `SendNotification` as the send decides it: the commanded one (checked by
/// [`super::validate_send`] first), one another domain's event asks for, a notice the handler
/// writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub notification_id: NotificationId,
    pub recipient_id: RecipientId,
    pub template_id: Option<TemplateId>,
    pub subject: Option<String>,
    pub body: String,
    pub variables: HashMap<String, String>,
}

pub fn parse_send(c: &SendNotification) -> Result<Send, Malformed> {
    Ok(Send {
        notification_id: parse("notification_id", &c.notification_id)?,
        recipient_id: parse("recipient_id", &c.recipient_id)?,
        template_id: parse_opt("template_id", c.template_id.as_deref())?,
        subject: c.subject.clone(),
        body: c.body.clone(),
        variables: c.variables.clone(),
    })
}

/// A published version of a template, in the channel and locale a send asked for (or the
/// fallback the store found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub template_id: TemplateId,
    pub channel: String,
    pub locale: String,
    pub version: i32,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

/// What a send will say, and the template version it was written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub rendered: Rendered,
    pub template: Option<Template>,
}

/// A new notification: refused when its id is taken in the organization (`exists`).
pub fn decide_new(exists: bool, c: &Send) -> Result<(), Refusal> {
    if exists {
        return Err(Refusal::new(
            "notification_exists",
            format!("notification {} already exists", c.notification_id),
        ));
    }
    Ok(())
}

/// A new notification's message, rendered before it is routed: one that cannot be written is
/// refused, whoever it was for. Without the organization's `template` (loaded for the send's
/// `channel` and `locale`), the command's own text is the template; text with variables (a
/// campaign's, personalized) is a template of its own.
pub fn decide_message(
    template: Option<&Template>,
    c: &Send,
    channel: &str,
    locale: &str,
) -> Result<Composed, Refusal> {
    let own = Parts { subject: c.subject.as_deref(), body: &c.body, html: None };
    let render = |parts: &Parts<'_>| {
        templates::render(parts, &c.variables)
            .map_err(|e| Refusal::new(templates::refusal_code(&e, "template_render_failed"), e.to_string()))
    };
    match (&c.template_id, template) {
        (Some(_), Some(t)) => {
            let parts = Parts { subject: t.subject.as_deref(), body: &t.body, html: t.html.as_deref() };
            Ok(Composed { rendered: render(&parts)?, template: Some(t.clone()) })
        }
        (Some(_), None) if !c.body.is_empty() => Ok(Composed { rendered: render(&own)?, template: None }),
        (Some(id), None) => Err(Refusal::new(
            "template_not_found",
            format!("template {id} has no {channel} version in {locale} or en"),
        )),
        (None, _) if !c.variables.is_empty() => Ok(Composed { rendered: render(&own)?, template: None }),
        (None, _) => Ok(Composed {
            rendered: Rendered { subject: c.subject.clone(), body: c.body.clone(), html: None },
            template: None,
        }),
    }
}

/// What a "send now" (`ReleaseNotification`) meets: the notification it names, and what would
/// go out for it — itself, or the digest a digested message went into — with whether that is a
/// digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseState {
    pub notification: Option<Notification>,
    pub target: Option<Waiting>,
}

/// What goes out for a notification: its status and when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub status: String,
    pub not_before: Option<DateTime<Utc>>,
    pub is_digest: bool,
}

/// "Send now": refused for a notification that is not the recipient's, or when nothing waits to
/// be sent; else what it does ([`Release::Due`]).
pub fn decide_release(state: &ReleaseState, c: &Named, at: DateTime<Utc>) -> Result<Release, Refusal> {
    let found = decide_found(state.notification.as_ref(), c)?;
    let decision = state
        .target
        .as_ref()
        .map_or(Release::NotWaiting, |t| waiting::release(&t.status, t.not_before, t.is_digest, at));
    match decision {
        Release::NotWaiting => Err(Refusal::new(
            "notification_not_waiting",
            format!("notification {} is {}: nothing waits to be sent", c.notification_id, found.status),
        )),
        due => Ok(due),
    }
}

/// A `CreateTemplate`, parsed (checked by [`super::validate_template`] first): the version to
/// publish and the sample variables it must render with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTemplate {
    pub template: Template,
    pub sample_variables: HashMap<String, String>,
}

pub fn parse_template(c: &CreateTemplate) -> Result<NewTemplate, Malformed> {
    super::validate_template(c)?;
    Ok(NewTemplate {
        template: Template {
            template_id: parse("template_id", &c.template_id)?,
            channel: c.channel.clone(),
            locale: c.locale.clone(),
            version: 0,
            subject: c.subject.clone(),
            body: c.body.clone(),
            html: c.html.clone(),
        },
        sample_variables: c.sample_variables.clone(),
    })
}

/// A template version to publish (its number the store's): refused when it does not render with
/// its sample variables.
pub fn decide_template(c: &NewTemplate) -> Result<&Template, Refusal> {
    let t = &c.template;
    let parts = Parts { subject: t.subject.as_deref(), body: &t.body, html: t.html.as_deref() };
    match templates::render(&parts, &c.sample_variables) {
        Ok(_) => Ok(t),
        Err(e) => Err(Refusal::new(templates::refusal_code(&e, "template_invalid"), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().expect("id")
    }

    fn ntf(recipient: &str, status: &str) -> Notification {
        Notification { notification_id: id("ntf_1"), recipient_id: id(recipient), status: status.into() }
    }

    fn ask() -> Named {
        Named { notification_id: id("ntf_1"), recipient_id: id("mem_1") }
    }

    fn send(template_id: Option<&str>, body: &str, variables: &[(&str, &str)]) -> Send {
        Send {
            notification_id: id("ntf_1"),
            recipient_id: id("mem_1"),
            template_id: template_id.map(id),
            subject: Some("Hello".into()),
            body: body.into(),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn template(body: &str) -> Template {
        Template {
            template_id: id("tpl_receipt"),
            channel: "email".into(),
            locale: "en".into(),
            version: 2,
            subject: Some("Receipt".into()),
            body: body.into(),
            html: None,
        }
    }

    fn rendered(subject: &str, body: &str) -> Rendered {
        Rendered { subject: Some(subject.into()), body: body.into(), html: None }
    }

    #[test]
    fn given_the_recipients_notification_when_it_is_named_then_it_is_found() {
        let stored = ntf("mem_1", "queued");
        assert_eq!(decide_found(Some(&stored), &ask()), Ok(&stored));
    }

    #[test]
    fn given_no_notification_or_another_recipients_when_it_is_named_then_notification_not_found() {
        // What a delivery report (RecordDeliveryOutcome), a tracked status (RecordDeliveryStatus)
        // and a "send now" (ReleaseNotification) are told.
        let refusal = Refusal::new("notification_not_found", "notification ntf_1 does not exist for mem_1");
        assert_eq!(decide_found(None, &ask()), Err(refusal.clone()));
        assert_eq!(decide_found(Some(&ntf("mem_2", "queued")), &ask()), Err(refusal.clone()));
        let release = ReleaseState { notification: Some(ntf("mem_2", "queued")), target: None };
        assert_eq!(decide_release(&release, &ask(), t("2026-11-26T09:00:00Z")), Err(refusal));
    }

    #[test]
    fn given_a_taken_id_when_a_notification_is_sent_then_notification_exists() {
        assert_eq!(
            decide_new(true, &send(None, "Thanks", &[])),
            Err(Refusal::new("notification_exists", "notification ntf_1 already exists"))
        );
    }

    #[test]
    fn given_plain_text_when_it_is_sent_then_it_goes_as_written() {
        assert_eq!(decide_new(false, &send(None, "Thanks", &[])), Ok(()));
        assert_eq!(
            decide_message(None, &send(None, "Thanks {{ x }}", &[]), "email", "en"),
            Ok(Composed { rendered: rendered("Hello", "Thanks {{ x }}"), template: None })
        );
    }

    #[test]
    fn given_the_organizations_template_when_a_send_names_it_then_the_template_is_rendered() {
        let stored = template("Paid {{ amount }}");
        assert_eq!(
            decide_message(
                Some(&stored),
                &send(Some("tpl_receipt"), "", &[("amount", "EUR 5.00")]),
                "email",
                "en"
            ),
            Ok(Composed { rendered: rendered("Receipt", "Paid EUR 5.00"), template: Some(stored) })
        );
    }

    #[test]
    fn given_no_template_when_a_send_names_one_then_its_own_text_or_template_not_found() {
        let own = send(Some("tpl_receipt"), "Paid {{ amount }}", &[("amount", "EUR 5.00")]);
        assert_eq!(
            decide_message(None, &own, "sms", "de"),
            Ok(Composed { rendered: rendered("Hello", "Paid EUR 5.00"), template: None })
        );
        assert_eq!(
            decide_message(None, &send(Some("tpl_receipt"), "", &[]), "sms", "de"),
            Err(Refusal::new("template_not_found", "template tpl_receipt has no sms version in de or en"))
        );
    }

    #[test]
    fn given_a_message_that_does_not_render_when_it_is_sent_then_template_render_failed() {
        // A variable the template names but the send does not give, in the stored template or in
        // the command's own text with variables.
        let stored = template("Paid {{ amount }}");
        let refused =
            decide_message(Some(&stored), &send(Some("tpl_receipt"), "", &[("x", "1")]), "email", "en")
                .expect_err("amount missing");
        assert_eq!(refused.code, "template_render_failed");
        let refused = decide_message(None, &send(None, "Hi {{ name }}", &[("x", "1")]), "email", "en")
            .expect_err("name");
        assert_eq!(refused.code, "template_render_failed");
    }

    #[test]
    fn given_a_deferred_notification_when_it_is_sent_now_then_it_is_brought_forward() {
        let state = ReleaseState {
            notification: Some(ntf("mem_1", "deferred")),
            target: Some(Waiting {
                status: "deferred".into(),
                not_before: Some(t("2026-11-27T07:00:00Z")),
                is_digest: false,
            }),
        };
        assert_eq!(
            decide_release(&state, &ask(), t("2026-11-26T09:00:00Z")),
            Ok(Release::Due { brought_forward: true, seal: false })
        );
    }

    #[test]
    fn given_a_sent_notification_when_it_is_sent_now_then_notification_not_waiting() {
        let at = t("2026-11-26T09:00:00Z");
        let sent = ReleaseState {
            notification: Some(ntf("mem_1", "sent")),
            target: Some(Waiting { status: "sent".into(), not_before: None, is_digest: false }),
        };
        let refusal =
            Refusal::new("notification_not_waiting", "notification ntf_1 is sent: nothing waits to be sent");
        assert_eq!(decide_release(&sent, &ask(), at), Err(refusal));
        // A digested message whose digest is gone: nothing waits either.
        let digested = ReleaseState { notification: Some(ntf("mem_1", "digested")), target: None };
        assert_eq!(
            decide_release(&digested, &ask(), at).map_err(|r| r.code),
            Err("notification_not_waiting")
        );
    }

    fn create_template(body: &str, sample: &[(&str, &str)]) -> CreateTemplate {
        CreateTemplate {
            metadata: EventMetadata::example(),
            template_id: "tpl_receipt".into(),
            channel: "email".into(),
            locale: "en".into(),
            subject: Some("Receipt".into()),
            body: body.into(),
            html: None,
            sample_variables: sample.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn given_a_template_that_renders_when_it_is_created_then_it_is_published() {
        let c = parse_template(&create_template("Paid {{ amount }}", &[("amount", "1")])).expect("valid");
        assert_eq!(decide_template(&c), Ok(&Template { version: 0, ..template("Paid {{ amount }}") }));
    }

    #[test]
    fn given_a_template_that_does_not_render_when_it_is_created_then_template_invalid() {
        let c = parse_template(&create_template("Paid {{ amount }}", &[])).expect("valid");
        let refused = decide_template(&c).expect_err("no sample");
        assert_eq!(refused.code, "template_invalid");
        assert!(refused.reason.contains("amount"), "{}", refused.reason);
    }
}
