//! One run of a connection: marketing → Salesforce (where both-sides changes
//! meet the resolver with Salesforce's current version), then Salesforce →
//! marketing, optionally reconciliation, then marketing activities →
//! Salesforce Tasks; and the [`RunRecord`] of what it did.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use crmsync_core::{MarketingApi, Rules, SalesforceApi, Store};
use serde::{Deserialize, Serialize};

use crate::activity::{self, ActivityReport, TaskPass};
use crate::budget::{Budget, BudgetState};
use crate::{ConnectionSpec, Pass, PassReport, Progress, SyncError, inbound, outbound, reconcile};

/// How one cycle behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions<'a> {
    pub dry_run: bool,
    /// Send marketing → Salesforce batches whatever their size or age (`run --once`).
    pub force: bool,
    /// Run the Salesforce → marketing direction (the scheduled job).
    pub outbound: bool,
    /// Also compare ids on both sides and sync what polling missed.
    pub reconcile: bool,
    /// Write marketing activities as Salesforce Tasks (after a forced or outbound cycle).
    pub activities: bool,
    pub stop: Option<&'a AtomicBool>,
    /// Where readers follow the cycle (cleared when it ends).
    pub progress: Option<&'a Progress>,
}

/// What one cycle did, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub connection: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub dry_run: bool,
    pub outbound: PassReport,
    pub inbound: PassReport,
    /// Marketing activities written as Salesforce Tasks.
    #[serde(default)]
    pub activities: ActivityReport,
    /// API calls this run made, per vendor.
    pub calls: BTreeMap<String, u64>,
    /// Salesforce's daily usage as last reported.
    pub api_used: Option<u64>,
    pub api_limit: Option<u64>,
    pub budget: BudgetState,
    /// Why the run stopped, if it failed as a whole.
    pub error: Option<String>,
    /// What the rules logged and printed during the run (the last
    /// lines of each plugin version, bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_log: Vec<crmsync_core::RuleLogLine>,
}

impl RunRecord {
    /// A run that failed as a whole before it could report anything else
    /// (the service records it so the failure is visible, never silent).
    pub fn failed(connection: &str, run_id: String, started_at: DateTime<Utc>, error: String) -> RunRecord {
        RunRecord {
            run_id,
            connection: connection.to_string(),
            started_at,
            finished_at: Utc::now(),
            dry_run: false,
            outbound: PassReport::default(),
            inbound: PassReport::default(),
            activities: ActivityReport::default(),
            calls: BTreeMap::new(),
            api_used: None,
            api_limit: None,
            budget: BudgetState::Ok,
            error: Some(error),
            plugin_log: Vec::new(),
        }
    }
}

impl RunRecord {
    /// How the run ended, in one word: `failed`, `stopped` (shutdown came
    /// first; the rest waits for the next run), `paused` (the API budget
    /// held Salesforce work back) or `ok`.
    pub fn outcome(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else if self.outbound.stopped || self.inbound.stopped || self.activities.stopped {
            "stopped"
        } else if self.outbound.budget_paused || self.inbound.budget_paused || self.activities.budget_paused {
            "paused"
        } else {
            "ok"
        }
    }
}

/// A connection as a cycle needs it.
pub struct Connection<'a> {
    pub spec: &'a ConnectionSpec,
    pub store: &'a dyn Store,
    pub rules: &'a dyn Rules,
    pub salesforce: &'a dyn SalesforceApi,
    pub marketing: &'a dyn MarketingApi,
    pub budget: &'a Budget,
    /// The config name of the marketing platform (`calls` key in the record).
    pub marketing_name: &'a str,
    /// The time zone Task dates are in, when the config sets one; else the org's.
    pub time_zone: Option<chrono_tz::Tz>,
}

/// The time zone of the org's dates: the configured one, else the org's
/// own setting, else UTC (said in the log).
async fn time_zone(conn: &Connection<'_>) -> chrono_tz::Tz {
    org_time_zone(conn.time_zone, conn.salesforce, &conn.spec.name).await
}

/// The time zone Task dates and activity schedules use: the configured
/// one, else the org's (`Organization.TimeZoneSidKey`), else UTC.
pub async fn org_time_zone(
    configured: Option<chrono_tz::Tz>,
    salesforce: &dyn SalesforceApi,
    connection: &str,
) -> chrono_tz::Tz {
    if let Some(tz) = configured {
        return tz;
    }
    match salesforce.org_time_zone().await {
        Ok(Some(name)) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                tracing::warn!(connection, time_zone = %name, "unknown org time zone; Task dates in UTC");
                chrono_tz::UTC
            }
        },
        Ok(None) => chrono_tz::UTC,
        Err(e) => {
            tracing::warn!(connection, error = %e, "cannot read the org's time zone; Task dates in UTC");
            chrono_tz::UTC
        }
    }
}

/// Runs one cycle. Whole-run failures land in the record's `error`; the
/// record is returned either way (the caller stores it).
pub async fn run(conn: &Connection<'_>, run_id: String, opts: RunOptions<'_>) -> RunRecord {
    let started_at = Utc::now();
    let calls_before = (conn.salesforce.calls(), conn.marketing.calls());
    // A paused budget makes no Salesforce call, so nothing would ever tell it
    // that the vendor's rolling window freed calls: one cheap read does.
    if conn.budget.check(conn.salesforce.api_usage()) >= BudgetState::Paused
        && let Err(e) = conn.salesforce.refresh_usage().await
    {
        tracing::warn!(connection = %conn.spec.name, error = %e, "could not read the Salesforce API usage");
    }
    let pass = Pass {
        spec: conn.spec,
        store: conn.store,
        rules: conn.rules,
        salesforce: conn.salesforce,
        marketing: conn.marketing,
        run_id: run_id.clone(),
        dry_run: opts.dry_run,
        budget: Some(conn.budget),
        stop: opts.stop,
        force: opts.force,
        progress: opts.progress,
    };
    if let Some(p) = opts.progress {
        p.start(&run_id);
    }
    let mut outbound_report = PassReport::default();
    let mut inbound_report = PassReport::default();
    let result: Result<(), SyncError> = async {
        inbound_report = inbound::to_salesforce(&pass).await?;
        if opts.outbound {
            outbound_report = outbound::to_marketing(&pass).await?;
        }
        if opts.reconcile {
            outbound_report.add(reconcile::reconcile(&pass).await?);
        }
        Ok(())
    }
    .await;
    let mut error = result.err().map(|e| e.to_string());
    let mut activities = ActivityReport::default();
    let wants_tasks = opts.activities && conn.marketing.capabilities().activities;
    if error.is_none() && wants_tasks && !opts.dry_run && (opts.force || opts.outbound) {
        let tasks = TaskPass {
            connection: &conn.spec.name,
            store: conn.store,
            marketing: conn.marketing,
            salesforce: conn.salesforce,
            writer: conn.salesforce,
            budget: Some(conn.budget),
            stop: opts.stop,
            time_zone: time_zone(conn).await,
        };
        match activity::to_tasks(&tasks).await {
            Ok(report) => activities = report,
            Err(e) => error = Some(format!("activities: {e}")),
        }
        if let (None, Some(keep)) = (&error, conn.spec.task_retention)
            && let Err(e) = activity::remove_old_tasks(&tasks, keep, &mut activities).await
        {
            error = Some(format!("activity retention: {e}"));
        }
    }
    if let Some(p) = opts.progress {
        p.finish();
    }
    let usage = conn.salesforce.api_usage();
    RunRecord {
        run_id,
        connection: conn.spec.name.clone(),
        started_at,
        finished_at: Utc::now(),
        dry_run: opts.dry_run,
        outbound: outbound_report,
        inbound: inbound_report,
        activities,
        calls: BTreeMap::from([
            ("salesforce".to_string(), conn.salesforce.calls() - calls_before.0),
            (conn.marketing_name.to_string(), conn.marketing.calls() - calls_before.1),
        ]),
        api_used: usage.map(|u| u.used),
        api_limit: usage.map(|u| u.limit),
        budget: conn.budget.check(usage),
        error,
        plugin_log: Vec::new(),
    }
}
