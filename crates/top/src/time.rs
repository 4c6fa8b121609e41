//! TOP times: `yyyy-MM-dd HH:mm:ss` in GMT+8 (Asia/Shanghai, which has kept no daylight saving
//! since 1991, so a fixed offset is exact), whatever the local time zone; epoch milliseconds are
//! accepted too.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
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
        let naive = match parse_exact(t.as_bytes()) {
            Some(n) => n,
            None => NaiveDateTime::parse_from_str(t, FORMAT).map_err(|_| bad())?,
        };
        GMT8.from_local_datetime(&naive)
            .single()
            .map(|d| TopDateTime(d.with_timezone(&Utc)))
            .ok_or_else(bad)
    }

    /// `yyyy-MM-dd HH:mm:ss` in GMT+8.
    pub fn format(self) -> String {
        let t = self.0.with_timezone(&GMT8);
        if !(0..=9999).contains(&t.year()) {
            return t.format(FORMAT).to_string();
        }
        // Written digit by digit: chrono's `format` reads the pattern again on every call, and
        // `format!` goes through a formatter per field; every call's times are formatted for
        // its fingerprint, its event and its inbox record.
        let mut out = *b"0000-00-00 00:00:00";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, t.year() as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        String::from_utf8(out.to_vec()).expect("ASCII digits")
    }
}

/// Milliseconds since the epoch, now: the one clock reading a call is stamped with.
pub fn now_ms() -> i64 {
    TopDateTime::now().epoch_millis()
}

/// Epoch milliseconds as a TOP time (`yyyy-MM-dd HH:mm:ss`, GMT+8); empty when out of range.
pub fn format_ms(ms: i64) -> String {
    TopDateTime::from_epoch_millis(ms)
        .map(|t| t.format())
        .unwrap_or_default()
}

/// `yyyy-MM-dd HH:mm:ss` with every field at its place, the form every TOP client writes; any
/// other shape is left to chrono's parser.
fn parse_exact(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?.and_hms_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    )
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
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TopDateTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time as yyyy-MM-dd HH:mm:ss (GMT+8) or epoch milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TopDateTime, E> {
                TopDateTime::parse(s).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<TopDateTime, E> {
                TopDateTime::from_epoch_millis(ms)
                    .ok_or_else(|| E::custom(InvalidTime(ms.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<TopDateTime, E> {
                let ms = i64::try_from(ms).map_err(|_| E::custom(InvalidTime(ms.to_string())))?;
                self.visit_i64(ms)
            }
        }
        d.deserialize_any(Visitor)
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

    proptest::proptest! {
        /// The hand-written fast paths agree with chrono's own parser and formatter.
        #[test]
        fn fast_paths_agree_with_chrono(
            secs in -62_000_000_000i64..253_402_000_000i64,
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
        ) {
            let t = TopDateTime::from_epoch_millis(secs * 1000).unwrap();
            let by_chrono = t.utc().with_timezone(&GMT8).format(FORMAT).to_string();
            proptest::prop_assert_eq!(t.format(), by_chrono.clone());
            proptest::prop_assert_eq!(
                parse_exact(by_chrono.as_bytes()),
                NaiveDateTime::parse_from_str(&by_chrono, FORMAT).ok()
            );
            proptest::prop_assert_eq!(
                parse_exact(text.as_bytes()),
                NaiveDateTime::parse_from_str(&text, FORMAT).ok()
            );
        }
    }
}
