//! The service: what `run`, `status`, `connect test` and `serve` share. It
//! turns the config into live connections (connectors, rules, budget) over
//! one state directory, runs a connection's cycle, and keeps a record of
//! every run.
//!
//! A cycle is: marketing → Salesforce (where both-sides changes meet the
//! resolver), then Salesforce → marketing, then marketing activities →
//! Salesforce Tasks ([`activity`]), then a record of the run (counts, calls per vendor, API usage, budget state).
//! One cycle per connection at a time: a second request waits for the first.
//!
//! # Layout
//! - this module: [`Service`], [`Connection`], [`RunRecord`], [`ConnectionStatus`].
//! - [`serve`]: the scheduler, the HTTP admin API and graceful shutdown.
//! - [`activity`]: marketing activities → Salesforce Tasks (after the other
//!   passes of a forced or outbound cycle), a record's recent activities, and
//!   the actions (send a campaign, add to an automation).

pub mod activity;
pub mod serve;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, ConnectionConfig, RuleConfig, Schedule};
use crate::connectors::activecampaign::{ActiveCampaignConfig, ActiveCampaignConnector};
use crate::connectors::salesforce::{SalesforceAuth, SalesforceConfig, SalesforceConnector};
use crate::connectors::{Connector, ConnectorError};
use crate::engine::budget::{Budget, BudgetState};
use crate::engine::store::{EngineStore, RecordErrorEntry};
use crate::engine::sync::{ConnectionSpec, PassReport, SyncError, WriteBack};
use crate::engine::{Pass, PluginRules, inbound, sync};
use crate::plugins::registry::Registry;
use crate::plugins::{Limits, Role, Runtime, watch};
use crate::state::{State, StateError, keys, trees};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("{0}")]
    Other(String),
}

/// One configured connection, live.
pub struct Connection {
    pub name: String,
    pub config: ConnectionConfig,
    pub spec: ConnectionSpec,
    pub rules: PluginRules,
    pub salesforce: SalesforceConnector,
    pub marketing: Box<dyn Connector>,
    /// The ActiveCampaign account's activities, campaigns and automations
    /// (`activity`); `None` for other marketing platforms.
    pub ac: Option<Arc<ActiveCampaignConnector>>,
    pub budget: Budget,
    /// Held for the length of a cycle: one cycle per connection at a time.
    running: tokio::sync::Mutex<()>,
}

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
    pub stop: Option<&'a AtomicBool>,
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
    pub activities: activity::ActivityReport,
    /// API calls this run made, per vendor.
    pub calls: BTreeMap<String, u64>,
    /// Salesforce's daily usage as last reported.
    pub api_used: Option<u64>,
    pub api_limit: Option<u64>,
    pub budget: BudgetState,
    /// Why the run stopped, if it failed as a whole.
    pub error: Option<String>,
}

/// `crmsync status` for one connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    pub connection: String,
    pub marketing: String,
    pub schedule: String,
    pub last_run: Option<RunRecord>,
    pub next_run: Option<DateTime<Utc>>,
    pub runs: usize,
    pub links: usize,
    pub pending_writes: usize,
    pub errors: usize,
    pub recent_errors: Vec<RecordErrorEntry>,
}

pub struct Service {
    pub config: Config,
    pub state: State,
    pub registry: Arc<Registry>,
    pub store: EngineStore,
    pub connections: BTreeMap<String, Arc<Connection>>,
}

impl Service {
    /// Opens the state directory and builds every connection: secrets are
    /// resolved, and each role's configured plugin is installed and activated
    /// if the connection has no active version of that role yet.
    pub fn open(config: Config, data_dir: &Path) -> Result<Service, ServiceError> {
        let state = State::open(data_dir)?;
        let runtime = Runtime::new(Some(&state.cache_dir()), Limits::default())
            .map_err(|e| ServiceError::Other(e.to_string()))?;
        let registry =
            Arc::new(Registry::open(state.clone(), runtime).map_err(|e| ServiceError::Other(e.to_string()))?);
        let mut connections = BTreeMap::new();
        for (name, cc) in &config.connections {
            let conn = build(&config, name, cc, &registry)?;
            connections.insert(name.clone(), Arc::new(conn));
        }
        let store = EngineStore::new(state.clone());
        Ok(Service { config, state, registry, store, connections })
    }

    pub fn connection(&self, name: &str) -> Result<&Arc<Connection>, ServiceError> {
        self.connections.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            ServiceError::Other(format!("no connection named {name:?} (configured: {})", known.join(", ")))
        })
    }

    /// Runs one cycle of a connection and stores its record (dry runs are not stored).
    pub async fn run(&self, conn: &Connection, opts: RunOptions<'_>) -> Result<RunRecord, ServiceError> {
        let _one_at_a_time = conn.running.lock().await;
        let started_at = Utc::now();
        let run_id = format!("{}-{}", conn.name, started_at.format("%Y%m%dT%H%M%S%.3fZ"));
        let span = tracing::info_span!("run", connection = %conn.name, run = %run_id, dry_run = opts.dry_run);
        let _enter = span.enter();
        let marketing_calls = || conn.marketing.calls() + conn.ac.as_ref().map_or(0, |ac| ac.calls());
        let calls_before = (conn.salesforce.calls(), marketing_calls());
        let pass = Pass {
            spec: &conn.spec,
            store: &self.store,
            rules: &conn.rules,
            salesforce: &conn.salesforce,
            marketing: conn.marketing.as_ref(),
            run_id: run_id.clone(),
            dry_run: opts.dry_run,
            budget: Some(&conn.budget),
            stop: opts.stop,
            force: opts.force,
        };
        let mut outbound = PassReport::default();
        let mut inbound = PassReport::default();
        let result: Result<(), SyncError> = async {
            // Marketing → Salesforce first: a record changed on both sides meets
            // the resolver there (with Salesforce's current version) before the
            // outbound pass could carry Salesforce's side over the contact's edit.
            inbound = inbound::to_salesforce(&pass).await?;
            if opts.outbound {
                outbound = sync::to_marketing(&pass).await?;
            }
            if opts.reconcile {
                outbound.add(sync::reconcile(&pass).await?);
            }
            Ok(())
        }
        .await;
        let mut activities = activity::ActivityReport::default();
        let mut activity_error = None;
        if let (Ok(()), Some(ac), true) = (
            &result,
            &conn.ac,
            conn.config.activities.tasks && !opts.dry_run && (opts.force || opts.outbound),
        ) {
            let tasks = activity::TaskPass {
                connection: &conn.name,
                state: &self.state,
                store: &self.store,
                ac,
                salesforce: &conn.salesforce,
                writer: &conn.salesforce,
                budget: Some(&conn.budget),
                stop: opts.stop,
            };
            match activity::to_tasks(&tasks).await {
                Ok(report) => activities = report,
                Err(e) => activity_error = Some(format!("activities: {e}")),
            }
        }
        let usage = conn.salesforce.api_usage();
        let record = RunRecord {
            run_id,
            connection: conn.name.clone(),
            started_at,
            finished_at: Utc::now(),
            dry_run: opts.dry_run,
            outbound,
            inbound,
            activities,
            calls: BTreeMap::from([
                ("salesforce".to_string(), conn.salesforce.calls() - calls_before.0),
                (conn.config.marketing.clone(), marketing_calls() - calls_before.1),
            ]),
            api_used: usage.map(|u| u.used),
            api_limit: usage.map(|u| u.limit),
            budget: conn.budget.check(usage),
            error: result.as_ref().err().map(ToString::to_string).or(activity_error),
        };
        if !opts.dry_run {
            self.put_run(&record)?;
        }
        if let Some(e) = &record.error {
            tracing::error!(error = %e, "run failed");
        }
        Ok(record)
    }

    fn put_run(&self, record: &RunRecord) -> Result<(), StateError> {
        let tree = self.state.db().open_tree(trees::RUNS)?;
        let key = keys::run(&record.connection, record.started_at.timestamp_millis());
        tree.insert(
            key,
            serde_json::to_vec(record)
                .map_err(|e| StateError::Corrupt { tree: trees::RUNS, why: e.to_string() })?,
        )?;
        self.state.flush()
    }

    /// The connection's runs, newest first.
    pub fn runs(&self, connection: &str, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let tree = self.state.db().open_tree(trees::RUNS)?;
        tree.scan_prefix(keys::connection_prefix(connection))
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v)
                    .map_err(|e| StateError::Corrupt { tree: trees::RUNS, why: e.to_string() })
            })
            .collect()
    }

    /// The connection's schedule: the one set through the admin API, else the config's.
    pub fn schedule(&self, name: &str) -> Schedule {
        let saved = self
            .state
            .db()
            .open_tree(trees::SCHEDULES)
            .ok()
            .and_then(|t| t.get(name.as_bytes()).ok().flatten())
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        saved.unwrap_or_else(|| self.connections.get(name).map(|c| c.config.schedule).unwrap_or_default())
    }

    /// Replaces the connection's schedule (kept across restarts).
    pub fn set_schedule(&self, name: &str, schedule: Schedule) -> Result<(), StateError> {
        self.state
            .db()
            .open_tree(trees::SCHEDULES)?
            .insert(name.as_bytes(), schedule.to_string().as_bytes())?;
        self.state.flush()
    }

    pub fn status(&self) -> Result<Vec<ConnectionStatus>, StateError> {
        let mut out = Vec::new();
        for (name, conn) in &self.connections {
            let runs =
                self.state.db().open_tree(trees::RUNS)?.scan_prefix(keys::connection_prefix(name)).count();
            let last_run = self.runs(name, 1)?.into_iter().next();
            let mut errors = self.store.errors(name)?;
            errors.sort_by_key(|e| std::cmp::Reverse(e.at));
            out.push(ConnectionStatus {
                connection: name.clone(),
                marketing: conn.config.marketing.clone(),
                schedule: self.schedule(name).to_string(),
                next_run: self.schedule(name).next_after(Utc::now()),
                last_run,
                runs,
                links: self.store.links(name)?.len(),
                pending_writes: self.store.pending(name)?.len(),
                errors: errors.len(),
                recent_errors: errors.into_iter().take(10).collect(),
            });
        }
        Ok(out)
    }

    /// Checks both vendors' credentials: `Ok` per vendor, or the vendor's error.
    pub async fn connect_test(&self, conn: &Connection) -> Vec<(String, Result<(), ConnectorError>)> {
        vec![
            ("Salesforce".to_string(), conn.salesforce.connect().await),
            (conn.config.marketing.clone(), marketing_connect(conn).await),
        ]
    }
}

async fn marketing_connect(conn: &Connection) -> Result<(), ConnectorError> {
    // The one marketing connector built today; a cheap read proves the token.
    conn.marketing.list_ids(&conn.spec.marketing_object, None, 1).await.map(|_| ())
}

fn build(
    config: &Config,
    name: &str,
    cc: &ConnectionConfig,
    registry: &Arc<Registry>,
) -> Result<Connection, ServiceError> {
    let key = |k: &str| format!("connections.{name}.{k}");
    let sf = &cc.salesforce;
    let auth = match (&sf.refresh_token, &sf.username, &sf.password) {
        (Some(token), _, _) => {
            SalesforceAuth::RefreshToken { refresh_token: token.resolve(&key("salesforce.refresh_token"))? }
        }
        (None, Some(username), Some(password)) => SalesforceAuth::Password {
            username: username.clone(),
            password: password.resolve(&key("salesforce.password"))?,
        },
        _ => {
            return Err(
                ConfigError::new(key("salesforce"), "set refresh_token, or username and password").into()
            );
        }
    };
    let mut sfc = SalesforceConfig::new(sf.login_url.clone(), sf.client_id.clone(), auth);
    sfc.client_secret =
        sf.client_secret.as_ref().map(|s| s.resolve(&key("salesforce.client_secret"))).transpose()?;
    sfc.bulk_threshold = sf.bulk_threshold;
    sfc.bulk_poll = Duration::from_millis(sf.bulk_poll_ms);
    sfc.http = cc.http.options();
    let salesforce = SalesforceConnector::new(sfc)?;
    let ac = cc.activecampaign.as_ref().ok_or_else(|| ConfigError::new(key("activecampaign"), "missing"))?;
    let mut acc = ActiveCampaignConfig::new(
        ac.api_url.clone(),
        ac.api_token.resolve(&key("activecampaign.api_token"))?,
    );
    acc.requests_per_second = (ac.requests_per_second > 0.0).then_some(ac.requests_per_second);
    acc.import_poll = Duration::from_millis(ac.import_poll_ms);
    acc.http = cc.http.options();
    // Two clients of one account: they share its rate limiter (by API URL).
    let ac = Some(Arc::new(ActiveCampaignConnector::new(acc.clone())?));
    let marketing: Box<dyn Connector> = Box::new(ActiveCampaignConnector::new(acc)?);

    let mut configs = HashMap::new();
    let mut inbound_tag = None;
    for (role, rule) in [
        (Role::Selector, &cc.rules.selector),
        (Role::Mapper, &cc.rules.mapper),
        (Role::Resolver, &cc.rules.resolver),
    ] {
        let Some(rule) = rule else { continue };
        let json =
            rule_config_json(rule).map_err(|m| ConfigError::new(key(&format!("rules.{role}.config")), m))?;
        if role == Role::Selector {
            inbound_tag = json.pointer("/inbound/tag").and_then(|t| t.as_str()).map(str::to_string);
        }
        configs.insert(role, json.to_string());
        if let Some(path) = &rule.plugin
            && registry.current(name, role).is_none()
        {
            let path = config.path(path);
            bootstrap(registry, name, role, &path)
                .map_err(|m| ConfigError::new(key(&format!("rules.{role}.plugin")), m))?;
        }
    }
    let spec = ConnectionSpec {
        objects: cc.objects.clone(),
        page_size: cc.page_size,
        created_tag: cc.created_tag.clone(),
        pushed_tag: cc.pushed_tag.clone(),
        write_back: cc.write_back.as_ref().map(|w| WriteBack {
            status_field: w.status_field.clone(),
            id_field: w.id_field.clone(),
            account_status_field: w.account_status_field.clone(),
            account_id_field: w.account_id_field.clone(),
        }),
        inbound_tag,
        lead_company: Some(cc.lead_company.clone()).filter(|c| !c.is_empty()),
        inbound_batch: cc.inbound.batch_records,
        inbound_window: cc.inbound_window(),
        deletes: cc.deletes,
        ..ConnectionSpec::new(name)
    };
    Ok(Connection {
        name: name.to_string(),
        config: cc.clone(),
        spec,
        rules: PluginRules::new(registry.clone(), configs),
        salesforce,
        marketing,
        ac,
        budget: Budget::new(cc.budget),
        running: tokio::sync::Mutex::new(()),
    })
}

fn rule_config_json(rule: &RuleConfig) -> Result<serde_json::Value, String> {
    match &rule.config {
        None => Ok(serde_json::json!({})),
        Some(v) => serde_json::to_value(v).map_err(|e| e.to_string()),
    }
}

/// Installs a configured plugin file and activates it for one role.
fn bootstrap(registry: &Registry, connection: &str, role: Role, path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let applied = watch::install_file(registry, path)?;
    registry.activate(connection, role, &applied.to_string()).map_err(|e| e.to_string())?;
    tracing::info!(connection, %role, plugin = %applied, "plugin activated from the config");
    Ok(())
}

/// The usage figure for display: "1234/15000 (8 %)".
pub fn usage_text(used: Option<u64>, limit: Option<u64>) -> String {
    match (used, limit) {
        (Some(u), Some(l)) if l > 0 => format!("{u}/{l} ({:.0} %)", u as f64 * 100.0 / l as f64),
        _ => "not reported yet".into(),
    }
}
