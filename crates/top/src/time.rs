//! TOP times: `yyyy-MM-dd HH:mm:ss` in GMT+8 (Asia/Shanghai, which has kept no daylight saving
//! since 1991, so a fixed offset is exact), whatever the local time zone; epoch milliseconds are
//! accepted too.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// GMT+8, the zone of every TOP time.
pub const GMT8: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => unreachable!(),
};

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// An instant, read and written as TOP writes it. Sub-second precision is dropped on parsing
/// the text form, kept from epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopDateTime(DateTime<Utc>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time of the form yyyy-MM-dd HH:mm:ss (GMT+8) or epoch milliseconds")]
pub struct InvalidTime(pub String);

impl TopDateTime {
    pub fn now() -> Self {
        TopDateTime(Utc::now())
    }

    pub fn from_utc(t: DateTime<Utc>) -> Self {
        TopDateTime(t)
    }

    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }

    pub fn from_epoch_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(TopDateTime)
    }

    pub fn epoch_millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Parses `yyyy-MM-dd HH:mm:ss` as GMT+8, or a string of digits as epoch milliseconds.
    pub fn parse(s: &str) -> Result<Self, InvalidTime> {
        let t = s.trim();
        let bad = || InvalidTime(s.to_string());
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            let ms: i64 = t.parse().map_err(|_| bad())?;
            return TopDateTime::from_epoch_millis(ms).ok_or_else(bad);
        }
        let naive = NaiveDateTime::parse_from_str(t, FORMAT).map_err(|_| bad())?;
        GMT8.from_local_datetime(&naive)
            .single()
            .map(|d| TopDateTime(d.with_timezone(&Utc)))
            .ok_or_else(bad)
    }

    /// `yyyy-MM-dd HH:mm:ss` in GMT+8.
    pub fn format(self) -> String {
        self.0.with_timezone(&GMT8).format(FORMAT).to_string()
    }
}

impl fmt::Display for TopDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

impl FromStr for TopDateTime {
    type Err = InvalidTime;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopDateTime::parse(s)
    }
}

impl Serialize for TopDateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

impl<'de> Deserialize<'de> for TopDateTime {
    /// Text in either form, or a JSON number of epoch milliseconds (what some SDKs write).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Millis(ms) => TopDateTime::from_epoch_millis(ms)
                .ok_or_else(|| serde::de::Error::custom(InvalidTime(ms.to_string()))),
            Raw::Text(s) => TopDateTime::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The `timestamp` system parameter for a call made now.
pub fn timestamp_now() -> String {
    TopDateTime::now().format()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_read_as_gmt8() {
        let t = TopDateTime::parse("2016-01-01 12:00:00").unwrap();
        assert_eq!(t.utc().to_rfc3339(), "2016-01-01T04:00:00+00:00");
        assert_eq!(t.format(), "2016-01-01 12:00:00");
    }

    #[test]
    fn epoch_millis_are_accepted() {
        let t = TopDateTime::parse("1451620800000").unwrap();
        assert_eq!(t.format(), "2016-01-01 12:00:00");
        assert_eq!(t.epoch_millis(), 1_451_620_800_000);
    }

    #[test]
    fn garbage_is_refused() {
        for s in [
            "",
            "2016-13-01 00:00:00",
            "2016-01-01T12:00:00",
            "yesterday",
            "99999999999999999999999",
        ] {
            assert!(TopDateTime::parse(s).is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn json_accepts_text_and_millis() {
        let a: TopDateTime = serde_json::from_str("\"2024-01-01 00:00:00\"").unwrap();
        let b: TopDateTime = serde_json::from_str("1704038400000").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"2024-01-01 00:00:00\""
        );
    }
}
