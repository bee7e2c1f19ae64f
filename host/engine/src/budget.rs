//! The API budget: the share of Salesforce's daily allocation a connection
//! may spend, read from the `Sforce-Limit-Info` header the connector keeps.
//!
//! - below `warn` (80 %): everything goes;
//! - from `warn`: a warning, once per crossing; creates and opt-outs are
//!   written before deferrable updates (always the order);
//! - from `pause` (95 %): Salesforce reads and deferrable writes stop; queued
//!   creates and opt-outs may still use what is left of the share, never more;
//! - the pause holds until usage falls below `resume` (75 %) — when the
//!   vendor's rolling window frees calls.

use std::sync::atomic::{AtomicBool, Ordering};

use crmsync_core::ApiUsage;

/// The share of Salesforce's daily API allocation a connection may use
/// (config `budget = { share = 0.5 }`), and the levels it acts at.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Fraction of the org's daily allocation (0 < share ≤ 1).
    #[serde(default = "one")]
    pub share: f64,
    #[serde(default = "warn_at")]
    pub warn: f64,
    #[serde(default = "pause_at")]
    pub pause: f64,
    #[serde(default = "resume_at")]
    pub resume: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { share: one(), warn: warn_at(), pause: pause_at(), resume: resume_at() }
    }
}
fn one() -> f64 {
    1.0
}
fn warn_at() -> f64 {
    0.80
}
fn pause_at() -> f64 {
    0.95
}
fn resume_at() -> f64 {
    0.75
}

impl BudgetConfig {
    /// The problems with these levels, as (key suffix, message).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if !(self.share > 0.0 && self.share <= 1.0) {
            out.push(("budget.share", "must be above 0 and at most 1"));
        }
        if !(0.0 < self.resume && self.resume < self.pause && self.warn <= self.pause && self.pause <= 1.0) {
            out.push(("budget", "needs 0 < resume < pause ≤ 1 and warn ≤ pause"));
        }
        out
    }
}

/// What the budget allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetState {
    Ok,
    Warn,
    /// Only priority writes (creates, opt-outs) may go.
    Paused,
    /// The share is spent: no Salesforce call at all.
    Spent,
}

/// One connection's budget, with the pause's hysteresis.
#[derive(Debug)]
pub struct Budget {
    cfg: BudgetConfig,
    paused: AtomicBool,
    warned: AtomicBool,
}

impl Budget {
    pub fn new(cfg: BudgetConfig) -> Self {
        Budget { cfg, paused: AtomicBool::new(false), warned: AtomicBool::new(false) }
    }

    /// Calls this connection may still make before its share is spent.
    pub fn remaining(&self, usage: ApiUsage) -> u64 {
        self.allowance(usage).saturating_sub(usage.used)
    }

    fn allowance(&self, usage: ApiUsage) -> u64 {
        (usage.limit as f64 * self.cfg.share).floor() as u64
    }

    /// The state for the latest usage the vendor reported (`None`: nothing
    /// reported yet, so nothing is known to be spent).
    pub fn check(&self, usage: Option<ApiUsage>) -> BudgetState {
        let Some(usage) = usage.filter(|u| u.limit > 0) else { return BudgetState::Ok };
        let allowance = self.allowance(usage).max(1) as f64;
        let fraction = usage.used as f64 / allowance;
        if usage.used >= self.allowance(usage) {
            self.paused.store(true, Ordering::Relaxed);
            return BudgetState::Spent;
        }
        let paused = if fraction >= self.cfg.pause {
            true
        } else if fraction < self.cfg.resume {
            false
        } else {
            self.paused.load(Ordering::Relaxed)
        };
        if paused != self.paused.swap(paused, Ordering::Relaxed) {
            if paused {
                tracing::warn!(used = usage.used, limit = usage.limit, "Salesforce API budget: paused");
            } else {
                tracing::info!(used = usage.used, limit = usage.limit, "Salesforce API budget: resumed");
            }
        }
        if paused {
            return BudgetState::Paused;
        }
        if fraction >= self.cfg.warn {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    used = usage.used,
                    limit = usage.limit,
                    "Salesforce API budget: past the warning level"
                );
            }
            BudgetState::Warn
        } else {
            self.warned.store(false, Ordering::Relaxed);
            BudgetState::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(used: u64) -> Option<ApiUsage> {
        Some(ApiUsage { used, limit: 1000 })
    }

    #[test]
    fn warns_pauses_and_resumes_with_hysteresis() {
        let b = Budget::new(BudgetConfig { share: 0.5, ..Default::default() });
        assert_eq!(b.check(None), BudgetState::Ok);
        assert_eq!(b.check(usage(399)), BudgetState::Ok);
        assert_eq!(b.check(usage(400)), BudgetState::Warn); // 80 % of 500
        assert_eq!(b.check(usage(475)), BudgetState::Paused); // 95 %
        assert_eq!(b.check(usage(400)), BudgetState::Paused, "holds until below 75 %");
        assert_eq!(b.check(usage(374)), BudgetState::Ok);
        assert_eq!(b.check(usage(500)), BudgetState::Spent);
        assert_eq!(b.remaining(ApiUsage { used: 480, limit: 1000 }), 20);
    }
}
