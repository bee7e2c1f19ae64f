//! Brevo's rate limits: 10 requests per second for the `/v3/contacts*` family on
//! the General tier (36,000 per hour, which the per-second limit already keeps
//! to), and — a sandbox choice, Brevo's table for the rest is partial — the same
//! 10 per second, counted separately, for every other endpoint.
//!
//! Windows are whole seconds of the sandbox clock, so a frozen clock makes the
//! limit fully deterministic. Every response carries `x-sib-ratelimit-limit`,
//! `x-sib-ratelimit-remaining` and `x-sib-ratelimit-reset` (seconds until the
//! window ends); Brevo sends no `Retry-After`. Requests are counted even while
//! enforcement is off, so the headers stay meaningful.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};

/// Requests per second per family.
pub const LIMIT_PER_SECOND: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Contacts,
    Other,
}

impl Family {
    pub fn of_path(path: &str) -> Family {
        if path.starts_with("/v3/contacts") { Family::Contacts } else { Family::Other }
    }
}

/// The quota left after one request.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
    /// Whether this request fits in the window.
    pub within: bool,
}

impl Quota {
    pub fn exhausted() -> Quota {
        Quota { limit: LIMIT_PER_SECOND, remaining: 0, reset_secs: 1, within: false }
    }

    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-sib-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-sib-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-sib-ratelimit-reset", HeaderValue::from(self.reset_secs));
    }
}

/// Fixed one-second windows per family.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<Family, (i64, u64)>>,
}

impl RateLimiter {
    /// Counts one request at `now` and says what is left.
    pub fn take(&self, family: Family, now: DateTime<Utc>) -> Quota {
        let second = now.timestamp();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(family).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        let used = window.1;
        let into_window_ms = i64::from(now.timestamp_subsec_millis());
        let reset_secs = ((1000 - into_window_ms).max(1) as u64).div_ceil(1000);
        Quota {
            limit: LIMIT_PER_SECOND,
            remaining: LIMIT_PER_SECOND.saturating_sub(used),
            reset_secs,
            within: used <= LIMIT_PER_SECOND,
        }
    }

    pub fn reset(&self) {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_request_in_a_second_is_over() {
        let limiter = RateLimiter::default();
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00.500Z").unwrap().to_utc();
        let quotas: Vec<Quota> = (0..11).map(|_| limiter.take(Family::Contacts, t)).collect();
        assert!(quotas[..10].iter().all(|q| q.within));
        assert!(!quotas[10].within);
        assert_eq!(quotas[9].remaining, 0);
        assert_eq!(quotas[0].reset_secs, 1);
        // Other endpoints have their own window.
        assert!(limiter.take(Family::Other, t).within);
        // The next second starts afresh.
        let later = t + chrono::Duration::seconds(1);
        assert_eq!(limiter.take(Family::Contacts, later).remaining, 9);
    }
}
