//! The service: what `run`, `status`, `connect test` and `serve` share. It
//! turns the config into live connections — the Salesforce connector, the
//! marketing connector from the vendor table, the rules, the budget — over
//! one state directory, runs a connection's cycle through the engine, and
//! keeps a record of every run.
//!
//! One cycle per connection at a time: a second request waits for the first.
//!
//! # Layout
//! - this module: [`Service`], [`Connection`], [`ConnectionStatus`].
//! - [`serve`]: the scheduler, graceful shutdown and most admin API handlers.
//! - [`api`]: the admin API's route table (router, roles, OpenAPI document,
//!   access log) and the dashboard page (`dashboard.html`).
//! - [`records`]: the admin API's record lookup.
//! - [`preview`]: a candidate plugin version beside the active one on recent records.
//! - [`activity_api`]: the admin API routes for activities and actions.
//! - [`lease`]: which running `serve` holds a data directory.
//! - [`plugin_api`]: the admin API's plugin upload and list routes.
//! - [`run_stats`]: runs by outcome and duration since start, for `/metrics`.

pub mod activity_api;
pub mod api;
pub mod lease;
pub mod plugin_api;
pub mod preview;
pub mod records;
pub mod run_stats;
pub mod serve;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crmsync_connectors::salesforce::SalesforceConnector;
use crmsync_connectors::vendors::BuildContext;
use crmsync_core::store::RecordErrorEntry;
use crmsync_core::{ConfigError, Connector, ConnectorError, MarketingApi, Store, StoreError};
use crmsync_engine::activity::Marketing;
use crmsync_engine::budget::Budget;
use crmsync_engine::cycle::{self, RunOptions, RunRecord};
use crmsync_engine::spec::WriteBack;
use crmsync_engine::{ConnectionSpec, Progress, ProgressSnapshot, SyncError};
use crmsync_runtime::registry::{Registry, RegistryError};
use crmsync_runtime::{Limits, PluginRules, Role, Runtime, watch};
use crmsync_store::{SledStore, State};
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigErrors, ConnectionConfig, RuleConfig, Schedule};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    State(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("{0}")]
    Other(String),
}

impl From<ConfigError> for ServiceError {
    fn from(e: ConfigError) -> Self {
        ServiceError::Config(e.into())
    }
}

/// One configured connection, live.
pub struct Connection {
    pub name: String,
    pub config: ConnectionConfig,
    pub spec: ConnectionSpec,
    pub rules: PluginRules,
    pub salesforce: Arc<SalesforceConnector>,
    pub marketing: Arc<dyn MarketingApi>,
    pub budget: Budget,
    /// Held for the length of a cycle: one cycle per connection at a time.
    running: tokio::sync::Mutex<()>,
    /// Where the running cycle is (status, metrics, the terminal's bar).
    pub progress: Progress,
    /// Its runs since start, by outcome and duration (metrics).
    pub run_stats: run_stats::RunStats,
}

impl Connection {
    /// The marketing side as the activity features need it.
    pub fn marketing<'a>(&'a self, store: &'a dyn Store) -> Marketing<'a> {
        Marketing { connection: &self.name, store, api: self.marketing.as_ref() }
    }
}

/// `crmsync status` for one connection (also `GET /connections`).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// `false`: a draft, saved but not running.
    pub active: bool,
    /// The platform's monthly task quota this month, if it has one.
    pub tasks: Option<TaskQuota>,
    /// Where the cycle running now is (`None` between runs).
    pub progress: Option<ProgressSnapshot>,
}

/// Where a connection stands against its platform's monthly task quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskQuota {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub used: u64,
    pub limit: u64,
    pub state: QuotaState,
    /// The start of next month, when the count starts again.
    pub resumes: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaState {
    Ok,
    /// 80 % or more used.
    Warning,
    /// All used: runs wait for next month.
    Paused,
}

impl TaskQuota {
    pub fn new(month: String, used: u64, limit: u64, now: DateTime<Utc>) -> TaskQuota {
        let state = if used >= limit {
            QuotaState::Paused
        } else if used.saturating_mul(5) >= limit.saturating_mul(4) {
            QuotaState::Warning
        } else {
            QuotaState::Ok
        };
        TaskQuota { month, used, limit, state, resumes: next_month(now) }
    }
}

/// Midnight UTC on the first day of the month after `now`'s.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(now)
}

pub struct Service {
    pub config: Config,
    pub state: State,
    pub registry: Arc<Registry>,
    pub store: SledStore,
    pub connections: BTreeMap<String, Arc<Connection>>,
}

impl Service {
    /// Opens the state directory and builds every connection: secrets are
    /// resolved, and each role's plugin (the configured file, else the
    /// default rule built into crmsync) is installed and activated if the
    /// connection has no active version of that role yet.
    pub fn open(config: Config, data_dir: &Path) -> Result<Service, ServiceError> {
        let state = State::open(data_dir)?;
        let runtime = Runtime::new(Some(&state.cache_dir()), Limits::default())
            .map_err(|e| ServiceError::Other(e.to_string()))?;
        let registry =
            Arc::new(Registry::open(state.clone(), runtime).map_err(|e| ServiceError::Other(e.to_string()))?);
        // Every connection is built (and every problem found) before any plugin is installed.
        let mut built = Vec::new();
        let mut problems = Vec::new();
        for (name, cc) in &config.connections {
            match build(name, cc, &registry) {
                Ok(conn) => built.push(conn),
                Err(e) => problems.push(e),
            }
            problems.extend(missing_plugin_files(&config, name, cc));
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems).into());
        }
        let mut connections = BTreeMap::new();
        for conn in built {
            bootstrap_rules(&config, &conn, &registry)?;
            // A role config the active version's schema refuses stops the start, named.
            for role in Role::ALL {
                if let Err(e) = registry.check_active(&conn.name, role) {
                    problems.push(ConfigError::new(
                        format!("connections.{}.rules.{role}.config", conn.name),
                        e.to_string(),
                    ));
                }
            }
            connections.insert(conn.name.clone(), Arc::new(conn));
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems).into());
        }
        let store = state.store();
        Ok(Service { config, state, registry, store, connections })
    }

    /// Every problem `open` would refuse the config for, found without a
    /// state directory or a network call: plugin files that do not exist
    /// and, with `secrets`, what building each connection finds (its
    /// secrets resolved, its vendor section and rule configs read).
    pub fn check(config: &Config, secrets: bool) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        for (name, cc) in &config.connections {
            if secrets && let Err(e) = configure(name, cc) {
                problems.push(e);
            }
            problems.extend(missing_plugin_files(config, name, cc));
            problems.extend(refused_rule_configs(config, name, cc));
        }
        problems
    }

    pub fn connection(&self, name: &str) -> Result<&Arc<Connection>, ServiceError> {
        self.connections.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            ServiceError::Other(format!("no connection named {name:?} (configured: {})", known.join(", ")))
        })
    }

    /// Whether the connection runs: as activated or saved as a draft through
    /// the CLI or the admin API, else as configured (`active`, default true).
    pub fn is_active(&self, name: &str) -> bool {
        let saved = self.state.activation(name).ok().flatten();
        saved.unwrap_or_else(|| self.connections.get(name).is_none_or(|c| c.config.active))
    }

    /// Activates a connection, or saves it as a draft (kept across restarts).
    pub fn set_active(&self, name: &str, active: bool) -> Result<(), ServiceError> {
        self.connection(name)?;
        self.state.set_activation(name, active)?;
        tracing::info!(connection = %name, active, "connection activation changed");
        Ok(())
    }

    /// The connection's monthly task quota this month, if its platform has one.
    pub fn task_quota(&self, conn: &Connection) -> Result<Option<TaskQuota>, StoreError> {
        let Some(limit) = conn.marketing.monthly_tasks() else { return Ok(None) };
        let now = Utc::now();
        let month = now.format("%Y-%m").to_string();
        let used = self.state.tasks(&conn.name, &month)?;
        Ok(Some(TaskQuota::new(month, used, limit, now)))
    }

    /// Counts a run's writes against the monthly task quota; logs the 80 %
    /// warning and the pause once, when the count crosses them.
    fn count_tasks(&self, conn: &Connection, record: &RunRecord) -> Result<(), StoreError> {
        let Some(limit) = conn.marketing.monthly_tasks() else { return Ok(()) };
        let tasks = record.outbound.created
            + record.outbound.updated
            + record.inbound.created
            + record.inbound.updated;
        if tasks == 0 {
            return Ok(());
        }
        let month = record.started_at.format("%Y-%m").to_string();
        let total = self.state.add_tasks(&conn.name, &month, tasks as u64)?;
        let before = total.saturating_sub(tasks as u64);
        let warn_at = limit.saturating_mul(4).div_ceil(5);
        if before < limit && total >= limit {
            let resumes = TaskQuota::new(month, total, limit, record.started_at).resumes;
            tracing::warn!(connection = %conn.name, used = total, limit, %resumes, "the monthly task quota is spent: the connection pauses until next month");
        } else if before < warn_at && total >= warn_at {
            tracing::warn!(connection = %conn.name, used = total, limit, "80 % of the monthly task quota is used");
        }
        Ok(())
    }

    /// Runs one cycle of a connection and stores its record (dry runs are
    /// neither stored nor counted).
    pub async fn run(&self, conn: &Connection, opts: RunOptions<'_>) -> Result<RunRecord, ServiceError> {
        let record = self.run_cycle(conn, opts).await?;
        if !opts.dry_run {
            conn.run_stats.record(&record);
            self.refresh_counts(conn);
        }
        Ok(record)
    }

    /// Reads the connection's stored counts into its in-memory stats (for
    /// `/metrics`); a state error leaves the previous counts.
    pub fn refresh_counts(&self, conn: &Connection) {
        let name = &conn.name;
        let counts = (|| {
            Ok::<_, StoreError>(run_stats::Stored {
                links: self.store.count_links(name)?,
                pending_writes: self.store.count_pending(name)?,
                errors: self.store.count_errors(name)?,
            })
        })();
        match counts {
            Ok(c) => conn.run_stats.set_stored(c),
            Err(e) => tracing::warn!(connection = %name, error = %e, "could not count the stored records"),
        }
    }

    async fn run_cycle(&self, conn: &Connection, opts: RunOptions<'_>) -> Result<RunRecord, ServiceError> {
        let _one_at_a_time = conn.running.lock().await;
        let run_id = format!("{}-{}", conn.name, Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        if !self.is_active(&conn.name) {
            return Ok(RunRecord::failed(
                &conn.name,
                run_id,
                Utc::now(),
                format!(
                    "the connection is paused (or a draft): resume it with `crmsync connection resume {}` or the admin API",
                    conn.name
                ),
            ));
        }
        if let Err(e) = check_formula_fields(conn).await {
            let record = RunRecord::failed(&conn.name, run_id, Utc::now(), e.to_string());
            if !opts.dry_run {
                let json = serde_json::to_value(&record).map_err(|e| ServiceError::Other(e.to_string()))?;
                self.store.put_run(&record.connection, record.started_at, &json)?;
            }
            return Ok(record);
        }
        if let Some(q) = self.task_quota(conn)?
            && q.state == QuotaState::Paused
            && !opts.dry_run
        {
            let record = RunRecord::failed(
                &conn.name,
                run_id,
                Utc::now(),
                format!(
                    "paused: this month's task quota is spent ({}/{} tasks); the connection resumes on {}",
                    q.used,
                    q.limit,
                    q.resumes.format("%Y-%m-%d")
                ),
            );
            let json = serde_json::to_value(&record).map_err(|e| ServiceError::Other(e.to_string()))?;
            self.store.put_run(&record.connection, record.started_at, &json)?;
            return Ok(record);
        }
        let span = tracing::info_span!("run", connection = %conn.name, run = %run_id, dry_run = opts.dry_run);
        let live = cycle::Connection {
            spec: &conn.spec,
            store: &self.store,
            rules: &conn.rules,
            salesforce: conn.salesforce.as_ref(),
            marketing: conn.marketing.as_ref(),
            budget: &conn.budget,
            marketing_name: &conn.config.marketing,
            time_zone: conn.config.time_zone.as_deref().and_then(|tz| tz.parse().ok()),
        };
        // The caller says whether this run is the activity job (serve's own
        // schedule for it); the connection whether it has one at all.
        let opts = RunOptions {
            activities: opts.activities && conn.config.activity_tasks(),
            progress: Some(&conn.progress),
            ..opts
        };
        let mut record = tracing::Instrument::instrument(cycle::run(&live, run_id, opts), span).await;
        record.plugin_log = conn.rules.take_log(&conn.name, &record.run_id);
        if !opts.dry_run {
            let json = serde_json::to_value(&record).map_err(|e| ServiceError::Other(e.to_string()))?;
            self.store.put_run(&record.connection, record.started_at, &json)?;
            self.count_tasks(conn, &record)?;
        }
        if let Some(e) = &record.error {
            tracing::error!(connection = %conn.name, error = %e, "run failed");
        }
        Ok(record)
    }

    /// The connection's runs, newest first.
    pub fn runs(&self, connection: &str, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.store
            .runs(connection, limit)?
            .into_iter()
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| StoreError::Corrupt { tree: "runs", why: e.to_string() })
            })
            .collect()
    }

    /// The connection's schedule: the one set through the admin API, else the config's.
    pub fn schedule(&self, name: &str) -> Schedule {
        let saved = self.state.schedule(name).ok().flatten().and_then(|s| s.parse().ok());
        saved.unwrap_or_else(|| self.connections.get(name).map(|c| c.config.schedule()).unwrap_or_default())
    }

    /// Replaces the connection's schedule (kept across restarts).
    pub fn set_schedule(&self, name: &str, schedule: Schedule) -> Result<(), StoreError> {
        self.state.set_schedule(name, &schedule.to_string())
    }

    pub fn status(&self) -> Result<Vec<ConnectionStatus>, StoreError> {
        let mut out = Vec::new();
        for (name, conn) in &self.connections {
            let mut errors = self.store.errors(name)?;
            errors.sort_by_key(|e| std::cmp::Reverse(e.at));
            out.push(ConnectionStatus {
                connection: name.clone(),
                marketing: conn.config.marketing.clone(),
                schedule: self.schedule(name).to_string(),
                next_run: self.schedule(name).next_after(Utc::now()),
                last_run: self.runs(name, 1)?.into_iter().next(),
                runs: self.store.count_runs(name)?,
                links: self.store.count_links(name)?,
                pending_writes: self.store.count_pending(name)?,
                errors: errors.len(),
                recent_errors: errors.into_iter().take(10).collect(),
                active: self.is_active(name),
                tasks: self.task_quota(conn)?,
                progress: conn.progress.snapshot(),
            });
        }
        Ok(out)
    }

    /// Checks both vendors' credentials: `Ok` per vendor, or the vendor's error.
    pub async fn connect_test(&self, conn: &Connection) -> Vec<(String, Result<(), ConnectorError>)> {
        vec![
            ("Salesforce".to_string(), conn.salesforce.connect().await),
            (conn.marketing.vendor().to_string(), conn.marketing.connect().await),
        ]
    }
}

/// A connection from its (checked) config: connectors, spec, rules, budget.
fn build(name: &str, cc: &ConnectionConfig, registry: &Arc<Registry>) -> Result<Connection, ConfigError> {
    let Configured { salesforce, marketing, spec, rule_configs } = configure(name, cc)?;
    registry.set_role_configs(name, &rule_configs);
    registry.set_require_preview(name, cc.rules.require_preview);
    Ok(Connection {
        name: name.to_string(),
        config: cc.clone(),
        spec,
        rules: PluginRules::new(registry.clone(), rule_configs),
        salesforce,
        marketing,
        budget: Budget::new(cc.budget),
        running: tokio::sync::Mutex::new(()),
        progress: Progress::default(),
        run_stats: run_stats::RunStats::default(),
    })
}

/// The role configs a connection's plugins run with (JSON text per role), for
/// commands that check a version against them without starting the service:
/// as the service computes them, or — when the connection's secrets are not
/// at hand — as written in crmsync.toml.
pub fn role_configs(name: &str, cc: &ConnectionConfig) -> HashMap<Role, String> {
    if let Ok(configured) = configure(name, cc) {
        return configured.rule_configs;
    }
    Role::ALL
        .into_iter()
        .filter_map(|role| {
            let json =
                rule_config_json(rule(cc, role)).ok()?.unwrap_or_else(|| default_rule_config(cc, role));
            Some((role, json.to_string()))
        })
        .collect()
}

/// What a connection is made of before it meets the plugin registry.
struct Configured {
    salesforce: Arc<SalesforceConnector>,
    marketing: Arc<dyn MarketingApi>,
    spec: ConnectionSpec,
    rule_configs: HashMap<Role, String>,
}

/// Connectors (secrets resolved, no call made), spec and rule configs from a connection's config.
fn configure(name: &str, cc: &ConnectionConfig) -> Result<Configured, ConfigError> {
    let key = |k: &str| format!("connections.{name}.{k}");
    let http = cc.http.options(&key("http"))?;
    let salesforce = Arc::new(cc.salesforce.build(&key("salesforce"), http.clone())?);
    let vendor = cc.vendor().ok_or_else(|| ConfigError::new(key("marketing"), "not a marketing platform"))?;
    let section = cc.vendor_section().ok_or_else(|| {
        ConfigError::new(key(vendor.name), format!("missing: marketing is {}", vendor.name))
    })?;
    let marketing = (vendor.build)(section, &key(vendor.name), &BuildContext { http })?;
    let mut configs = HashMap::new();
    for role in Role::ALL {
        let json = rule_config_json(rule(cc, role))
            .map_err(|m| ConfigError::new(key(&format!("rules.{role}.config")), m))?
            .unwrap_or_else(|| default_rule_config(cc, role));
        let json = match role {
            Role::Selector => inbound_opt_in(json, marketing.creates_in_salesforce(), &key(vendor.name))?,
            Role::Mapper => {
                check_identifiers(
                    &json,
                    marketing.identifier_fields(),
                    vendor.display,
                    &key("rules.mapper"),
                )?;
                json
            }
            Role::Resolver => json,
        };
        configs.insert(role, json.to_string());
    }
    let mut spec = ConnectionSpec::for_marketing(name, marketing.as_ref());
    spec.objects = cc.objects.clone();
    spec.page_size = cc.page_size;
    spec.created_tag = cc.tag(&cc.created_tag, "created-from-salesforce");
    spec.pushed_tag = cc.tag(&cc.pushed_tag, "added-to-salesforce");
    spec.write_back = cc.write_back.as_ref().map(|w| WriteBack {
        status_field: w.status_field.clone(),
        id_field: w.id_field.clone(),
        account_status_field: w.account_status_field.clone(),
        account_id_field: w.account_id_field.clone(),
    });
    spec.flag_tag = cc.inbound.flag_tag.clone().filter(|t| !t.is_empty());
    spec.lead_company = Some(cc.lead_company.clone()).filter(|c| !c.is_empty());
    spec.inbound_batch = cc.inbound.batch_records;
    spec.inbound_window = cc.inbound_window();
    spec.deletes = cc.deletes;
    spec.task_retention = cc.activities.retention_days.map(|d| chrono::Duration::days(d.into()));
    if let Some(field) = &cc.opt_out_field {
        spec.opt_out_field = Some(field.clone()).filter(|f| !f.is_empty());
    }
    Ok(Configured { salesforce, marketing, spec, rule_configs: configs })
}

/// The selector's config under the platform's own opt-in for creating
/// Salesforce records from people created there: on, it gains an `inbound`
/// rule matching everyone (as Leads) unless it has its own; off, an
/// `inbound` rule is a contradiction, refused naming both keys.
fn inbound_opt_in(
    mut selector: serde_json::Value,
    opt_in: Option<bool>,
    section: &str,
) -> Result<serde_json::Value, ConfigError> {
    let has_rule = selector.get("inbound").is_some_and(|i| !i.is_null());
    match opt_in {
        None => Ok(selector),
        Some(true) if has_rule => Ok(selector),
        Some(true) => {
            if let Some(obj) = selector.as_object_mut() {
                obj.insert("inbound".into(), serde_json::json!({"rule": {"all": []}}));
            }
            Ok(selector)
        }
        Some(false) if has_rule => Err(ConfigError::new(
            format!("{section}.create_in_salesforce"),
            "is off, but rules.selector.config.inbound creates Salesforce records from the marketing side: turn create_in_salesforce on, or drop the inbound rule",
        )),
        Some(false) => Ok(selector),
    }
}

/// Refuses a mapping (the default rule's config) that writes to a formula
/// field: Salesforce computes those (describe says `calculated`), so no
/// value can ever land there. Read one-way (`direction = "to-marketing"`) it
/// is fine. Checked against the (cached) describe before each run.
async fn check_formula_fields(conn: &Connection) -> Result<(), ConfigError> {
    let Some(raw) = conn.config.rules.mapper.as_ref().and_then(|r| r.config.as_ref()) else { return Ok(()) };
    let Ok(mapper) = serde_json::to_value(raw) else { return Ok(()) };
    let fields = mapper.get("fields").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    let text =
        |f: &serde_json::Value, k: &str| f.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
    for (i, f) in fields.iter().enumerate() {
        let (Some(field), direction) = (text(f, "salesforce"), text(f, "direction")) else { continue };
        if direction.as_deref() == Some("to-marketing") || field.contains('.') {
            continue;
        }
        let objects: Vec<String> = match f.get("objects").and_then(serde_json::Value::as_array) {
            Some(list) => list.iter().filter_map(|o| o.as_str().map(str::to_string)).collect(),
            None => vec!["Lead".into(), "Contact".into()],
        };
        for object in objects.iter().filter(|o| conn.config.objects.contains(o)) {
            // A describe that fails here fails the run itself a moment later.
            let Ok(d) = conn.salesforce.describe(object).await else { continue };
            if d.field(&field).is_some_and(|x| x.calculated) {
                return Err(ConfigError::new(
                    format!("connections.{}.rules.mapper.config.fields[{i}].salesforce", conn.name),
                    format!(
                        "{object}.{field} is a formula field: Salesforce computes it, so nothing can be written to it; map it with direction = \"to-marketing\", or not at all"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a mapping (the default rule's config: `defaults`, `fields`)
/// that sends none of the platform's identifier fields to it. The default
/// mappings send Salesforce's Email to the platform's email field.
fn check_identifiers(
    mapper: &serde_json::Value,
    identifiers: &[&str],
    display: &str,
    key: &str,
) -> Result<(), ConfigError> {
    if identifiers.is_empty() {
        return Ok(());
    }
    let defaults = mapper.get("defaults").and_then(serde_json::Value::as_bool).unwrap_or(true);
    let fields = mapper.get("fields").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    let text = |f: &serde_json::Value, k: &str| {
        f.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_string()
    };
    let email_overridden = fields.iter().any(|f| text(f, "salesforce").eq_ignore_ascii_case("Email"));
    let sends = |f: &&serde_json::Value| text(f, "direction") != "to-salesforce";
    let custom = fields.iter().filter(sends).any(|f| {
        let m = text(f, "marketing");
        identifiers.iter().any(|i| i.eq_ignore_ascii_case(&m))
    });
    if (defaults && !email_overridden) || custom {
        return Ok(());
    }
    Err(ConfigError::new(
        format!("{key}.config.fields"),
        format!(
            "a {display} mapping must send {}: map a Salesforce field to one of them",
            identifiers.join(" or ")
        ),
    ))
}

fn rule(cc: &ConnectionConfig, role: Role) -> Option<&RuleConfig> {
    match role {
        Role::Selector => cc.rules.selector.as_ref(),
        Role::Mapper => cc.rules.mapper.as_ref(),
        Role::Resolver => cc.rules.resolver.as_ref(),
    }
}

fn rule_config_json(rule: Option<&RuleConfig>) -> Result<Option<serde_json::Value>, String> {
    match rule.and_then(|r| r.config.as_ref()) {
        None => Ok(None),
        Some(v) => serde_json::to_value(v).map(Some).map_err(|e| e.to_string()),
    }
}

/// A role's config when the file gives none, for the default rules: every
/// configured object syncs; the mapping is the platform's default one.
fn default_rule_config(cc: &ConnectionConfig, role: Role) -> serde_json::Value {
    match role {
        Role::Selector => {
            let objects: serde_json::Map<String, serde_json::Value> =
                cc.objects.iter().map(|o| (o.clone(), serde_json::json!({"mode": "all"}))).collect();
            serde_json::json!({ "objects": objects })
        }
        Role::Mapper => serde_json::json!({ "marketing": cc.marketing }),
        Role::Resolver => serde_json::json!({}),
    }
}

/// Configured plugin files that do not exist (all of them, before anything is installed).
fn missing_plugin_files(config: &Config, name: &str, cc: &ConnectionConfig) -> Vec<ConfigError> {
    Role::ALL
        .into_iter()
        .filter_map(|role| {
            let path = config.path(rule(cc, role)?.plugin.as_ref()?);
            let key = format!("connections.{name}.rules.{role}.plugin");
            (!path.exists()).then(|| ConfigError::new(key, format!("{} does not exist", path.display())))
        })
        .collect()
}

/// Each role config the schema of the rule it names refuses: the configured
/// file's (`<stem>.schema.json` beside it), else the default rule's. What a
/// start would refuse, found offline (a version activated since may differ).
fn refused_rule_configs(config: &Config, name: &str, cc: &ConnectionConfig) -> Vec<ConfigError> {
    if cc.vendor().is_none() {
        return Vec::new(); // the default configs follow the platform, already reported
    }
    let configs = role_configs(name, cc);
    Role::ALL
        .into_iter()
        .filter_map(|role| {
            let schema = match rule(cc, role).and_then(|r| r.plugin.as_ref()) {
                Some(path) => watch::schema_beside(&config.path(path), None).ok()??.to_string(),
                None => crate::defaults::for_role(role).schema.to_string(),
            };
            let errors = crmsync_runtime::registry::check_config(&schema, configs.get(&role)?).err()?;
            Some(ConfigError::new(format!("connections.{name}.rules.{role}.config"), errors))
        })
        .collect()
}

/// Installs and activates each role's plugin unless the connection has one
/// active: the configured file, else the default rule built into crmsync.
fn bootstrap_rules(config: &Config, conn: &Connection, registry: &Registry) -> Result<(), ServiceError> {
    for role in Role::ALL {
        if registry.current(&conn.name, role).is_some() {
            continue;
        }
        let key = format!("connections.{}.rules.{role}.plugin", conn.name);
        let installed = match rule(&conn.config, role).and_then(|r| r.plugin.as_ref()) {
            Some(path) => {
                watch::install_file(registry, &config.path(path)).map_err(|m| ConfigError::new(&key, m))?
            }
            None => {
                crate::defaults::for_role(role).install(registry).map_err(|m| ConfigError::new(&key, m))?
            }
        };
        registry.activate(&conn.name, role, &installed.to_string()).map_err(|e| match e {
            // A config the version's schema refuses is the config's problem, not the plugin's.
            RegistryError::ConfigRefused { plugin, errors, .. } => ConfigError::new(
                format!("connections.{}.rules.{role}.config", conn.name),
                format!("{plugin} refuses it: {errors}"),
            ),
            e => ConfigError::new(&key, e.to_string()),
        })?;
        tracing::info!(connection = %conn.name, %role, plugin = %installed, "plugin activated");
    }
    Ok(())
}

/// The usage figure for display: "1234/15000 (8 %)".
pub fn usage_text(used: Option<u64>, limit: Option<u64>) -> String {
    match (used, limit) {
        (Some(u), Some(l)) if l > 0 => format!("{u}/{l} ({:.0} %)", u as f64 * 100.0 / l as f64),
        _ => "not reported yet".into(),
    }
}

#[cfg(test)]
mod quota_tests {
    use super::*;

    #[test]
    fn the_quota_warns_at_80_percent_pauses_at_100_and_resumes_next_month() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = at("2026-12-15T10:00:00Z");
        assert_eq!(TaskQuota::new("2026-12".into(), 79_999, 100_000, now).state, QuotaState::Ok);
        assert_eq!(TaskQuota::new("2026-12".into(), 80_000, 100_000, now).state, QuotaState::Warning);
        let spent = TaskQuota::new("2026-12".into(), 100_000, 100_000, now);
        assert_eq!(spent.state, QuotaState::Paused);
        assert_eq!(spent.resumes, at("2027-01-01T00:00:00Z"));
        assert_eq!(next_month(at("2026-02-28T23:59:59Z")), at("2026-03-01T00:00:00Z"));
    }
}
