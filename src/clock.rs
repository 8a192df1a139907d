//! Wall-clock time as stored (Unix milliseconds) and as shown (RFC 3339, UTC).

use time::OffsetDateTime;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 text, as pages and the CLI show times.
pub fn rfc3339(ms: i64) -> String {
    from_ms(ms).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
