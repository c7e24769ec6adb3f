//! Label matchers as Alertmanager has them: `=`, `!=`, `=~`, `!~`; a regex matches the whole
//! value; a missing label is the empty string.

use regex::Regex;
use serde::{Deserialize, Serialize};
use studyspot_schemas::alerts::Matcher as MatcherRecord;

use super::{Labels, Malformed, Refusal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Self {
        Self { name: name.into(), op, value: value.into() }
    }

    /// A matcher from its record: an unknown operator is malformed, a regex that does not compile
    /// is refused (`invalid_matcher`).
    pub fn from_record(m: &MatcherRecord) -> Result<Result<Self, Refusal>, Malformed> {
        let op = match m.op.as_str() {
            "=" => Op::Equal,
            "!=" => Op::NotEqual,
            "=~" => Op::Regex,
            "!~" => Op::NotRegex,
            other => return Err(Malformed(format!("matcher op {other:?} is not one of =, !=, =~, !~"))),
        };
        if !super::samples::valid_label_name(&m.name) {
            return Err(Malformed(format!("matcher label {:?} is not a valid label name", m.name)));
        }
        let matcher = Self { name: m.name.clone(), op, value: m.value.clone() };
        if matches!(op, Op::Regex | Op::NotRegex)
            && let Err(e) = anchored(&m.value)
        {
            return Ok(Err(Refusal::new(
                "invalid_matcher",
                format!("{} {} {:?}: {e}", m.name, m.op, m.value),
            )));
        }
        Ok(Ok(matcher))
    }

    pub fn to_record(&self) -> MatcherRecord {
        let op = match self.op {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        };
        MatcherRecord { name: self.name.clone(), op: op.into(), value: self.value.clone() }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match self.op {
            Op::Equal => value == self.value,
            Op::NotEqual => value != self.value,
            // Validated when the matcher was accepted; an unreadable one matches nothing.
            Op::Regex => anchored(&self.value).is_ok_and(|r| r.is_match(value)),
            Op::NotRegex => anchored(&self.value).is_ok_and(|r| !r.is_match(value)),
        }
    }
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Every matcher holds (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Matchers from records: the first malformed or refused one decides.
pub fn from_records(records: &[MatcherRecord]) -> Result<Result<Vec<Matcher>, Refusal>, Malformed> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        match Matcher::from_record(r)? {
            Ok(m) => out.push(m),
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn the_four_operators_and_missing_labels() {
        let l = labels(&[("severity", "warning"), ("venue", "ven_12")]);
        assert!(Matcher::new("severity", Op::Equal, "warning").matches(&l));
        assert!(Matcher::new("severity", Op::NotEqual, "critical").matches(&l));
        assert!(Matcher::new("venue", Op::Regex, "ven_[0-9]+").matches(&l));
        assert!(!Matcher::new("venue", Op::Regex, "ven_1").matches(&l), "a regex matches the whole value");
        assert!(Matcher::new("venue", Op::NotRegex, "ven_9.*").matches(&l));
        assert!(Matcher::new("team", Op::Equal, "").matches(&l), "a missing label is empty");
        assert!(!Matcher::new("team", Op::Regex, ".+").matches(&l));
    }

    #[test]
    fn a_bad_regex_is_refused_and_a_bad_operator_is_malformed() {
        let bad = MatcherRecord { name: "venue".into(), op: "=~".into(), value: "(".into() };
        assert!(matches!(Matcher::from_record(&bad), Ok(Err(r)) if r.code == "invalid_matcher"));
        let op = MatcherRecord { name: "venue".into(), op: "~".into(), value: "x".into() };
        assert!(Matcher::from_record(&op).is_err());
    }
}
