//! Timestamps must be GMT+8 whatever zone the process runs in; this test binary runs alone in
//! its process, so it can set `TZ` before anything reads it.

use chrono::{Duration, Utc};
use loanwire_top::time::{timestamp_now, TopDateTime};

#[test]
fn timestamps_are_gmt8_under_a_non_chinese_time_zone() {
    // SAFETY of intent: single-threaded at this point of the only test in this binary.
    std::env::set_var("TZ", "America/Los_Angeles");
    let before = Utc::now();
    let stamp = timestamp_now();
    let after = Utc::now();

    let expected_low = (before + Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let expected_high = (after + Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(
        stamp == expected_low || stamp == expected_high,
        "{stamp} is not UTC+8 ({expected_low})"
    );
    let parsed = TopDateTime::parse(&stamp).unwrap();
    assert!((parsed.utc() - before).num_seconds().abs() <= 1);
    // A local (Los Angeles) reading of the same instant would be 15 or 16 hours behind.
    let local = chrono::Local::now().format("%Y-%m-%d %H").to_string();
    assert_ne!(
        local,
        stamp[..13],
        "the stamp must not follow the local zone"
    );
}
