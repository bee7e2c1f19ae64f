//! Rate limits shared by every connection to one vendor account: a
//! process-wide registry of GCRA limiters (governor) keyed by account, so two
//! connections to one marketing account together stay under its rate limit.
//!
//! The limiters read tokio's clock, so tests with paused time see them wait
//! without sleeping.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// governor's clock over `tokio::time::Instant` (which pauses in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;
    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One account's limiter.
pub struct Limiter {
    inner: RateLimiter<NotKeyed, InMemoryState, TokioClock>,
    per_second: f64,
}

impl Limiter {
    /// `per_second` requests per second, with a burst of at most that many.
    /// The spacing is 5 % wider than the nominal rate, so network jitter
    /// between crmsync and the vendor never lands two requests inside one
    /// of the vendor's intervals.
    pub fn new(per_second: f64) -> Limiter {
        let per_second = if per_second.is_finite() && per_second > 0.0 { per_second } else { 1.0 };
        let period = Duration::from_secs_f64(1.05 / per_second);
        let burst = NonZeroU32::new(per_second.floor().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
        Limiter { inner: RateLimiter::direct_with_clock(quota, TokioClock), per_second }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Waits until one request may go.
    pub async fn acquire(&self) {
        loop {
            match self.inner.check() {
                Ok(()) => return,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await,
            }
        }
    }
}

/// The limiter of account `key` (e.g. the account's API URL), created on
/// first use; every caller with the same key gets the same limiter.
pub fn shared(key: &str, per_second: f64) -> Arc<Limiter> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
    let mut map = REGISTRY.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key.trim_end_matches('/').to_ascii_lowercase())
        .or_insert_with(|| Arc::new(Limiter::new(per_second)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_limiter_per_account_paces_every_holder() {
        let a = shared("https://acct-test.api-us1.com/", 5.0);
        let b = shared("https://ACCT-test.api-us1.com", 5.0);
        assert!(Arc::ptr_eq(&a, &b));
        let other = shared("https://other.api-us1.com", 5.0);
        assert!(!Arc::ptr_eq(&a, &other));
        let start = tokio::time::Instant::now();
        let run = |l: Arc<Limiter>| async move {
            for _ in 0..10 {
                l.acquire().await;
            }
        };
        tokio::join!(run(a.clone()), run(b.clone()));
        // 20 permits: a burst of 5, then 15 at 210 ms spacing.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(15 * 210), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(16 * 210), "{elapsed:?}");
    }
}
