//! Digests: a recipient's messages of one key, collected over a window, read as one message.

use super::templates::Rendered;

/// The window when a message names none: one hour.
pub const DEFAULT_WINDOW_SECS: i64 = 3600;

/// The longest window a digest may have: 31 days.
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;

/// One collected message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub subject: Option<String>,
    pub body: String,
}

pub fn window_secs(asked: Option<i64>) -> Result<i64, super::Malformed> {
    match asked {
        None => Ok(DEFAULT_WINDOW_SECS),
        Some(w) if (60..=MAX_WINDOW_SECS).contains(&w) => Ok(w),
        Some(w) => {
            Err(super::Malformed(format!("digest_window_secs {w} is not between 60 and {MAX_WINDOW_SECS}")))
        }
    }
}

/// The digest as sent: one message when it holds one, else a count in the subject and each
/// message in order, its subject as a heading.
pub fn render(items: &[Item]) -> Rendered {
    if let [only] = items {
        return Rendered { subject: only.subject.clone(), body: only.body.clone(), html: None };
    }
    let body = items
        .iter()
        .map(|i| match &i.subject {
            Some(s) => format!("• {s}\n  {}", i.body.replace('\n', "\n  ")),
            None => format!("• {}", i.body.replace('\n', "\n  ")),
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    Rendered { subject: Some(format!("{} updates", items.len())), body, html: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: Option<&str>, body: &str) -> Item {
        Item { subject: subject.map(Into::into), body: body.into() }
    }

    #[test]
    fn one_message_reads_as_itself_and_many_as_a_list() {
        let one = render(&[item(Some("Seat booked"), "Seat 12, Monday 9:00")]);
        assert_eq!(one.subject.as_deref(), Some("Seat booked"));
        assert_eq!(one.body, "Seat 12, Monday 9:00");
        let many = render(&[
            item(Some("Seat booked"), "Seat 12, Monday 9:00"),
            item(None, "Room 3 is closed today\nSorry!"),
            item(Some("Seat booked"), "Seat 4, Tuesday 14:00"),
        ]);
        assert_eq!(many.subject.as_deref(), Some("3 updates"));
        assert_eq!(
            many.body,
            "• Seat booked\n  Seat 12, Monday 9:00\n\n• Room 3 is closed today\n  Sorry!\n\n• Seat booked\n  Seat 4, Tuesday 14:00"
        );
    }

    #[test]
    fn windows_are_bounded() {
        assert_eq!(window_secs(None), Ok(3600));
        assert_eq!(window_secs(Some(86_400)), Ok(86_400));
        assert!(window_secs(Some(10)).is_err());
        assert!(window_secs(Some(MAX_WINDOW_SECS + 1)).is_err());
    }
}
