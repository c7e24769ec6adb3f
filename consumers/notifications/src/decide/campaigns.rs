//! Campaign rules: what a campaign may say, and when each of its messages is due — at a local
//! time in each recipient's own zone, spread so no minute carries more than the throttle.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use studyspot_ids::{CampaignId, RecipientId, TemplateId};
use studyspot_schemas::{
    EventMetadata,
    notifications::{
        CATEGORIES, CHANNELS, CampaignCancelled, CampaignCreated, CampaignLaunched, CreateCampaign,
        SendNotification,
    },
};

use super::{
    Malformed, Refusal, blank, one_of, parse, parse_opt,
    templates::{self, Parts},
};

pub const KINDS: [&str; 5] = ["broadcast", "targeted", "automated", "transactional", "marketing"];

/// The wall-clock format of `send_at_local`.
const LOCAL_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"];

pub fn parse_local(value: &str) -> Result<NaiveDateTime, Malformed> {
    LOCAL_FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(value, f).ok()).ok_or_else(|| {
        Malformed(format!("send_at_local {value:?} is not a local time like 2026-12-01T09:00"))
    })
}

pub fn validate(c: &CreateCampaign) -> Result<(), Malformed> {
    blank(&[
        ("campaign_id", &c.campaign_id),
        ("name", &c.name),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    one_of("kind", &c.kind, &KINDS)?;
    one_of("category", &c.category, &CATEGORIES)?;
    if !c.channel.is_empty() {
        one_of("channel", &c.channel, &CHANNELS)?;
    }
    match &c.template_id {
        Some(t) => blank(&[("template_id", t)])?,
        None => blank(&[("body", &c.body)])?,
    }
    if let Some(local) = &c.send_at_local {
        parse_local(local)?;
        if c.send_at.is_some() {
            return Err(Malformed("send_at_local and send_at exclude each other".into()));
        }
    }
    if c.throttle_per_minute.is_some_and(|t| t < 1) {
        return Err(Malformed("throttle_per_minute must be at least 1".into()));
    }
    match (&c.kind[..], &c.trigger) {
        ("automated", None) => Err(Malformed("an automated campaign needs a trigger".into())),
        ("automated", Some(t)) if t.trim().is_empty() => Err(Malformed("trigger is empty".into())),
        ("automated", Some(_)) => Ok(()),
        (_, Some(_)) => Err(Malformed("only an automated campaign has a trigger".into())),
        _ => Ok(()),
    }
}

/// A campaign as its launch and cancel read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub campaign_id: CampaignId,
    /// One of [`KINDS`]: an automated one answers events instead of going to a segment.
    pub kind: String,
    pub category: String,
    pub channel: String,
    pub template_id: Option<TemplateId>,
    pub subject: Option<String>,
    pub body: String,
    pub variables: HashMap<String, String>,
    pub locale: Option<String>,
    pub send_at_local: Option<NaiveDateTime>,
    pub send_at: Option<DateTime<Utc>>,
    pub throttle_per_minute: Option<i32>,
    /// draft, launched or cancelled.
    pub status: String,
}

impl Campaign {
    /// Whether its launch goes to the members of its segment (what the handler loads for it).
    pub fn launches_to_segment(&self) -> bool {
        self.status == "draft" && self.kind != "automated"
    }
}

/// A member of a campaign's segment, in their own time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub recipient_id: RecipientId,
    pub zone: Tz,
}

/// A `CreateCampaign`, parsed (checked by [`validate`] first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    pub campaign_id: CampaignId,
    pub kind: String,
    pub category: String,
    pub template_id: Option<TemplateId>,
    pub subject: Option<String>,
    pub body: String,
    pub variables: HashMap<String, String>,
}

pub fn parse_create(c: &CreateCampaign) -> Result<NewCampaign, Malformed> {
    validate(c)?;
    Ok(NewCampaign {
        campaign_id: parse("campaign_id", &c.campaign_id)?,
        kind: c.kind.clone(),
        category: c.category.clone(),
        template_id: parse_opt("template_id", c.template_id.as_deref())?,
        subject: c.subject.clone(),
        body: c.body.clone(),
        variables: c.variables.clone(),
    })
}

/// The campaign a `LaunchCampaign` or `CancelCampaign` names, parsed.
pub fn parse_named(campaign_id: &str) -> Result<CampaignId, Malformed> {
    parse("campaign_id", campaign_id)
}

/// A new campaign (`exists`: its id is taken in the organization). Its own text must render with
/// its variables and each recipient's id, as it will; `trigger_variables` are what its trigger's
/// event gives (an automated campaign's).
pub fn decide_create(
    exists: bool,
    c: &NewCampaign,
    trigger_variables: &[&str],
    metadata: &EventMetadata,
) -> Result<CampaignCreated, Refusal> {
    if c.template_id.is_none() {
        let mut sample = c.variables.clone();
        sample.entry("recipient_id".into()).or_insert_with(|| "mem_sample".into());
        for name in trigger_variables {
            sample.entry((*name).to_owned()).or_insert_with(|| (*name).to_owned());
        }
        let parts = Parts { subject: c.subject.as_deref(), body: &c.body, html: None };
        if let Err(e) = templates::render(&parts, &sample) {
            return Err(Refusal::new(templates::refusal_code(&e, "template_invalid"), e.to_string()));
        }
    }
    if exists {
        return Err(exists_refusal(&c.campaign_id));
    }
    Ok(CampaignCreated {
        metadata: metadata.clone(),
        campaign_id: c.campaign_id.to_string(),
        kind: c.kind.clone(),
        category: c.category.clone(),
    })
}

/// The refusal of a campaign whose id is taken; also what a create told when the write found it
/// taken after all.
pub fn exists_refusal(campaign_id: &CampaignId) -> Refusal {
    Refusal::new("campaign_exists", format!("campaign {campaign_id} already exists"))
}

fn not_found(campaign_id: &CampaignId) -> Refusal {
    Refusal::new("campaign_not_found", format!("campaign {campaign_id} does not exist"))
}

/// What a launch brings about, in order: one send per member of the segment, then the launch.
/// Their metadata is the launching command's until the handler numbers them as follow-ons.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchEvent {
    Send(Box<SendNotification>),
    Launched(CampaignLaunched),
}

/// A notification id derived from a name: the same name, the same id.
pub fn id_for(prefix: &str, name: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple())
}

/// Launching `campaign_id` (`campaign`, when it exists) in `organization_id` at `at`, to
/// `members` (the segment's now; the handler loads them when [`Campaign::launches_to_segment`]).
/// A draft goes out once; an automated one is launched to nobody (it answers events); a segment
/// that matches nobody is refused, and the campaign stays a draft.
pub fn decide_launch(
    campaign: Option<&Campaign>,
    members: &[Member],
    campaign_id: &CampaignId,
    organization_id: &str,
    metadata: &EventMetadata,
    at: DateTime<Utc>,
) -> Result<Vec<LaunchEvent>, Refusal> {
    let Some(campaign) = campaign else { return Err(not_found(campaign_id)) };
    if campaign.status != "draft" {
        let reason = format!("campaign {campaign_id} is {}, not a draft", campaign.status);
        return Err(Refusal::new("campaign_not_draft", reason));
    }
    let launched = |recipients, due: &[DateTime<Utc>]| {
        LaunchEvent::Launched(CampaignLaunched {
            metadata: metadata.clone(),
            campaign_id: campaign_id.to_string(),
            recipients,
            first_send_at: due.iter().min().map(DateTime::timestamp_millis),
            last_send_at: due.iter().max().map(DateTime::timestamp_millis),
        })
    };
    if campaign.kind == "automated" {
        return Ok(vec![launched(0, &[])]);
    }
    if members.is_empty() {
        // Launched to nobody it would read "launched" and send nothing; a draft can go out later,
        // when members match.
        let reason = format!(
            "campaign {campaign_id} has no recipients: no member matches its segment now; it stays a draft"
        );
        return Err(Refusal::new("campaign_has_no_recipients", reason));
    }
    let due: Vec<DateTime<Utc>> =
        members.iter().map(|m| due_for(campaign.send_at_local, campaign.send_at, m.zone, at)).collect();
    let due = throttle(&due, campaign.throttle_per_minute);
    let mut events: Vec<LaunchEvent> = members
        .iter()
        .zip(&due)
        .map(|(member, send_at)| {
            let mut variables = campaign.variables.clone();
            variables.entry("recipient_id".into()).or_insert_with(|| member.recipient_id.to_string());
            LaunchEvent::Send(Box::new(SendNotification {
                metadata: metadata.clone(),
                notification_id: id_for(
                    "ntf",
                    &format!("{organization_id}/{}/{}", campaign.campaign_id, member.recipient_id),
                ),
                recipient_id: member.recipient_id.to_string(),
                channel: campaign.channel.clone(),
                category: campaign.category.clone(),
                subject: campaign.subject.clone(),
                body: campaign.body.clone(),
                template_id: campaign.template_id.as_ref().map(ToString::to_string),
                variables,
                locale: campaign.locale.clone(),
                critical: false,
                transaction_id: None,
                send_at: (*send_at > at).then(|| send_at.timestamp_millis()),
                campaign_id: Some(campaign.campaign_id.to_string()),
                digest_key: None,
                digest_window_secs: None,
                digest_at_local: None,
            }))
        })
        .collect();
    events.push(launched(i32::try_from(members.len()).unwrap_or(i32::MAX), &due));
    Ok(events)
}

/// Cancelling `campaign_id` (`campaign`, when it exists): refused when there is none or it is
/// already cancelled. What is already waiting stops (the handler suppresses it), what is on its
/// way is suppressed when it arrives.
pub fn decide_cancel(
    campaign: Option<&Campaign>,
    campaign_id: &CampaignId,
    metadata: &EventMetadata,
) -> Result<CampaignCancelled, Refusal> {
    let Some(campaign) = campaign else { return Err(not_found(campaign_id)) };
    if campaign.status == "cancelled" {
        return Err(Refusal::new(
            "campaign_cancelled",
            format!("campaign {campaign_id} is already cancelled"),
        ));
    }
    Ok(CampaignCancelled { metadata: metadata.clone(), campaign_id: campaign_id.to_string() })
}

/// When a recipient in `zone` is due: the local time in their zone (the instant after a DST gap,
/// the earlier of a repeated hour), the fixed instant, or the launch; never before the launch.
pub fn due_for(
    local: Option<NaiveDateTime>,
    send_at: Option<DateTime<Utc>>,
    zone: Tz,
    launched_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let wanted = match (local, send_at) {
        (Some(local), _) => in_zone(local, zone),
        (None, Some(at)) => at,
        (None, None) => launched_at,
    };
    wanted.max(launched_at)
}

/// The instant of a local wall-clock time in `zone`: the first after a DST gap, the earlier of a
/// repeated hour.
pub fn in_zone(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        // Inside a spring-forward gap: the first instant after it.
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| zone.from_local_datetime(&(local + Duration::minutes(m))).earliest())
            .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc)),
    }
}

/// Spreads due times so that no 60-second window holds more than `per_minute` of them; each keeps
/// its place in time order and is never moved earlier. Returns the times in the order given.
pub fn throttle(due: &[DateTime<Utc>], per_minute: Option<i32>) -> Vec<DateTime<Utc>> {
    let Some(limit) = per_minute.and_then(|p| usize::try_from(p).ok()).filter(|p| *p > 0) else {
        return due.to_vec();
    };
    let mut order: Vec<usize> = (0..due.len()).collect();
    order.sort_by_key(|i| (due[*i], *i));
    let mut window: VecDeque<DateTime<Utc>> = VecDeque::with_capacity(limit);
    let mut out = due.to_vec();
    for i in order {
        let mut at = due[i];
        if window.len() == limit {
            let oldest = window.pop_front().unwrap_or(at);
            at = at.max(oldest + Duration::seconds(60));
        }
        window.push_back(at);
        out[i] = at;
    }
    out
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::{EventMetadata, notifications::Segment};

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn campaign() -> CreateCampaign {
        CreateCampaign {
            metadata: EventMetadata::example(),
            campaign_id: "cmp_1".into(),
            name: "Exam season".into(),
            kind: "marketing".into(),
            category: "marketing".into(),
            channel: String::new(),
            template_id: None,
            subject: Some("Late opening".into()),
            body: "We are open until midnight".into(),
            variables: Default::default(),
            locale: None,
            segment: Segment::default(),
            send_at_local: Some("2026-12-01T09:00".into()),
            send_at: None,
            throttle_per_minute: Some(100),
            trigger: None,
        }
    }

    #[test]
    fn a_campaign_says_what_is_wrong_with_it() {
        assert_eq!(validate(&campaign()), Ok(()));
        let mut c = campaign();
        c.kind = "spam".into();
        assert!(validate(&c).expect_err("kind").0.contains("kind"));
        let mut c = campaign();
        c.send_at_local = Some("tomorrow at nine".into());
        assert!(validate(&c).expect_err("local").0.contains("send_at_local"));
        let mut c = campaign();
        c.send_at = Some(0);
        assert!(validate(&c).is_err(), "both schedules");
        let mut c = campaign();
        c.throttle_per_minute = Some(0);
        assert!(validate(&c).is_err());
        let mut c = campaign();
        c.kind = "automated".into();
        assert!(validate(&c).expect_err("no trigger").0.contains("trigger"));
        c.trigger = Some("studyspot.billing.PaymentSucceeded".into());
        assert_eq!(validate(&c), Ok(()));
        let mut c = campaign();
        c.trigger = Some("studyspot.billing.PaymentSucceeded".into());
        assert!(validate(&c).is_err(), "a broadcast has no trigger");
    }

    fn stored(kind: &str, status: &str) -> Campaign {
        Campaign {
            campaign_id: "cmp_1".parse().expect("id"),
            kind: kind.into(),
            category: "marketing".into(),
            channel: "email".into(),
            template_id: None,
            subject: Some("Late opening".into()),
            body: "We are open until midnight".into(),
            variables: Default::default(),
            locale: None,
            send_at_local: None,
            send_at: None,
            throttle_per_minute: None,
            status: status.into(),
        }
    }

    fn cmp_1() -> CampaignId {
        "cmp_1".parse().expect("id")
    }

    fn member(id: &str) -> Member {
        Member { recipient_id: id.parse().expect("id"), zone: Tz::UTC }
    }

    fn launch(campaign: Option<&Campaign>, members: &[Member]) -> Result<Vec<LaunchEvent>, Refusal> {
        decide_launch(
            campaign,
            members,
            &cmp_1(),
            "org_1",
            &EventMetadata::example(),
            t("2026-11-30T12:00:00Z"),
        )
    }

    #[test]
    fn given_a_free_id_when_a_campaign_is_created_then_campaign_created() {
        let c = parse_create(&campaign()).expect("valid");
        assert_eq!(
            decide_create(false, &c, &[], &EventMetadata::example()),
            Ok(CampaignCreated {
                metadata: EventMetadata::example(),
                campaign_id: "cmp_1".into(),
                kind: "marketing".into(),
                category: "marketing".into(),
            })
        );
    }

    #[test]
    fn given_a_taken_id_when_a_campaign_is_created_then_campaign_exists() {
        let c = parse_create(&campaign()).expect("valid");
        assert_eq!(
            decide_create(true, &c, &[], &EventMetadata::example()),
            Err(Refusal::new("campaign_exists", "campaign cmp_1 already exists"))
        );
    }

    #[test]
    fn given_text_naming_an_unknown_variable_when_a_campaign_is_created_then_template_invalid() {
        let mut c = campaign();
        c.body = "Hi {{ nickname }}, your {{ recipient_id }}".into();
        let c = parse_create(&c).expect("valid");
        let refused = decide_create(false, &c, &[], &EventMetadata::example()).expect_err("nickname");
        assert_eq!(refused.code, "template_invalid");
        // What its trigger's event gives renders.
        assert!(decide_create(false, &c, &["nickname"], &EventMetadata::example()).is_ok());
    }

    #[test]
    fn given_a_draft_when_it_is_launched_then_one_send_per_member_and_campaign_launched() {
        let events = launch(Some(&stored("marketing", "draft")), &[member("mem_1")]).expect("launched");
        let [LaunchEvent::Send(send), LaunchEvent::Launched(launched)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(send.recipient_id, "mem_1");
        assert_eq!(send.notification_id, id_for("ntf", "org_1/cmp_1/mem_1"));
        assert_eq!(send.campaign_id.as_deref(), Some("cmp_1"));
        assert_eq!(send.variables.get("recipient_id").map(String::as_str), Some("mem_1"));
        assert_eq!(send.send_at, None, "due at once");
        assert_eq!(
            launched,
            &CampaignLaunched {
                metadata: EventMetadata::example(),
                campaign_id: "cmp_1".into(),
                recipients: 1,
                first_send_at: Some(t("2026-11-30T12:00:00Z").timestamp_millis()),
                last_send_at: Some(t("2026-11-30T12:00:00Z").timestamp_millis()),
            }
        );
    }

    #[test]
    fn given_an_automated_draft_when_it_is_launched_then_it_is_launched_to_nobody() {
        assert_eq!(
            launch(Some(&stored("automated", "draft")), &[]),
            Ok(vec![LaunchEvent::Launched(CampaignLaunched {
                metadata: EventMetadata::example(),
                campaign_id: "cmp_1".into(),
                recipients: 0,
                first_send_at: None,
                last_send_at: None,
            })])
        );
    }

    #[test]
    fn given_no_campaign_when_it_is_launched_or_cancelled_then_campaign_not_found() {
        let refusal = Refusal::new("campaign_not_found", "campaign cmp_1 does not exist");
        assert_eq!(launch(None, &[member("mem_1")]), Err(refusal.clone()));
        assert_eq!(decide_cancel(None, &cmp_1(), &EventMetadata::example()), Err(refusal));
    }

    #[test]
    fn given_a_launched_campaign_when_it_is_launched_again_then_campaign_not_draft() {
        assert_eq!(
            launch(Some(&stored("marketing", "launched")), &[member("mem_1")]),
            Err(Refusal::new("campaign_not_draft", "campaign cmp_1 is launched, not a draft"))
        );
    }

    #[test]
    fn given_a_segment_matching_nobody_when_it_is_launched_then_campaign_has_no_recipients() {
        let refused = launch(Some(&stored("marketing", "draft")), &[]).expect_err("nobody");
        assert_eq!(refused.code, "campaign_has_no_recipients");
        assert!(refused.reason.contains("it stays a draft"), "{}", refused.reason);
    }

    #[test]
    fn given_a_launched_campaign_when_it_is_cancelled_then_campaign_cancelled() {
        assert_eq!(
            decide_cancel(Some(&stored("marketing", "launched")), &cmp_1(), &EventMetadata::example()),
            Ok(CampaignCancelled { metadata: EventMetadata::example(), campaign_id: "cmp_1".into() })
        );
    }

    #[test]
    fn given_a_cancelled_campaign_when_it_is_cancelled_again_then_it_is_refused() {
        assert_eq!(
            decide_cancel(Some(&stored("marketing", "cancelled")), &cmp_1(), &EventMetadata::example()),
            Err(Refusal::new("campaign_cancelled", "campaign cmp_1 is already cancelled"))
        );
    }

    #[test]
    fn nine_in_the_morning_is_nine_wherever_the_recipient_lives() {
        let local = parse_local("2026-12-01T09:00").ok();
        let launch = t("2026-11-30T12:00:00Z");
        assert_eq!(due_for(local, None, chrono_tz::Europe::Berlin, launch), t("2026-12-01T08:00:00Z"));
        assert_eq!(due_for(local, None, chrono_tz::America::New_York, launch), t("2026-12-01T14:00:00Z"));
        assert_eq!(due_for(local, None, chrono_tz::Asia::Tokyo, launch), t("2026-12-01T00:00:00Z"));
        // Already past in Kiritimati (UTC+14) when launched late: at once.
        let late = t("2026-11-30T20:00:00Z");
        assert_eq!(due_for(local, None, chrono_tz::Pacific::Kiritimati, late), late);
        assert_eq!(
            due_for(None, Some(t("2026-12-24T18:00:00Z")), Tz::UTC, launch),
            t("2026-12-24T18:00:00Z")
        );
        assert_eq!(due_for(None, None, Tz::UTC, launch), launch);
    }

    #[test]
    fn a_local_time_that_dst_skips_or_repeats_still_has_one_instant() {
        let launch = t("2027-01-01T00:00:00Z");
        // 02:30 does not exist in Berlin on 28 March 2027: the first instant after the gap, 03:00 CEST.
        let gap = parse_local("2027-03-28T02:30").ok();
        assert_eq!(due_for(gap, None, chrono_tz::Europe::Berlin, launch), t("2027-03-28T01:00:00Z"));
        // 02:30 happens twice on 31 October 2027: the first time (CEST).
        let twice = parse_local("2027-10-31T02:30").ok();
        assert_eq!(due_for(twice, None, chrono_tz::Europe::Berlin, launch), t("2027-10-31T00:30:00Z"));
    }

    #[test]
    fn throttling_keeps_every_minute_under_the_limit_and_moves_nothing_earlier() {
        let start = t("2026-12-01T08:00:00Z");
        let due = vec![start; 250];
        let spread = throttle(&due, Some(100));
        assert_eq!(spread.iter().filter(|at| **at == start).count(), 100);
        assert_eq!(spread.iter().filter(|at| **at == start + Duration::seconds(60)).count(), 100);
        assert_eq!(spread.iter().filter(|at| **at == start + Duration::seconds(120)).count(), 50);
        // Later recipients (another zone) are not pushed by earlier ones once the window moved on.
        let mixed = vec![start, start, start, start + Duration::hours(1)];
        assert_eq!(throttle(&mixed, Some(2))[3], start + Duration::hours(1));
        assert_eq!(throttle(&mixed, Some(2))[2], start + Duration::seconds(60));
        assert_eq!(throttle(&due, None), due);
        // Any 60-second window holds at most the limit.
        let mut sorted = spread.clone();
        sorted.sort();
        for (i, at) in sorted.iter().enumerate() {
            let within = sorted[i..].iter().take_while(|b| **b < *at + Duration::seconds(60)).count();
            assert!(within <= 100, "{within} in the minute from {at}");
        }
    }
}
