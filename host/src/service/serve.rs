//! `crmsync serve`: per connection, a scheduler task (the Salesforce →
//! marketing job on its schedule, marketing → Salesforce polled every
//! `inbound.poll_seconds` with the batching rule), and the HTTP admin API.
//!
//! Shutdown (SIGTERM or Ctrl-C): the admin API stops accepting, each running
//! pass finishes the page in hand (queued and flushed), the scheduler tasks
//! end, and the state is flushed to disk before the process exits.
//!
//! # Admin API
//! The routes, their roles and the OpenAPI document come from one table in
//! [`super::api`]; the handlers for connections, runs, errors, schedules,
//! pause and resume, plugin activation and metrics are here.

// Handlers answer errors as ready responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Mutex, Notify, oneshot};

use super::api::{Tokens, problem};
use super::{Connection, Service, ServiceError};
use crate::config::Schedule;
use crmsync_core::{Connector, SalesforceApi, Store};
use crmsync_engine::cycle::{RunOptions, RunRecord};
use crmsync_runtime::Role;

/// A connection's scheduler state, shared with the admin API.
struct Job {
    conn: Arc<Connection>,
    schedule: Mutex<Schedule>,
    /// Wakes the task: a run-now request or a schedule change.
    wake: Notify,
    /// Run-now requests waiting for their run's record.
    waiting: Mutex<Vec<oneshot::Sender<RunRecord>>>,
    run_now: AtomicBool,
}

#[derive(Clone)]
pub(super) struct App {
    pub service: Arc<Service>,
    jobs: Arc<HashMap<String, Arc<Job>>>,
    pub tokens: Arc<Tokens>,
    /// Set when shutdown begins: `/ready` answers 503 from then on.
    stopping: Arc<AtomicBool>,
}

/// Runs the service until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let resolve =
        |r: &Option<crmsync_core::SecretRef>, key: &str| r.as_ref().map(|r| r.resolve(key)).transpose();
    let tokens = Arc::new(Tokens {
        admin: resolve(&service.config.service.admin_token, "service.admin_token")?,
        standard: resolve(&service.config.service.standard_token, "service.standard_token")?,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut jobs = HashMap::new();
    for (name, conn) in &service.connections {
        let schedule = service.schedule(name);
        jobs.insert(
            name.clone(),
            Arc::new(Job {
                conn: conn.clone(),
                schedule: Mutex::new(schedule),
                wake: Notify::new(),
                waiting: Mutex::new(Vec::new()),
                run_now: AtomicBool::new(false),
            }),
        );
    }
    let jobs = Arc::new(jobs);
    let mut tasks = Vec::new();
    for job in jobs.values() {
        tasks.push(tokio::spawn(supervise(service.clone(), job.clone(), stop.clone())));
    }
    let app = App { service: service.clone(), jobs: jobs.clone(), tokens, stopping: stop.clone() };
    for conn in service.connections.values() {
        service.refresh_counts(conn);
    }
    let router = super::api::router(app);
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin API listening");
    let stopping = stop.clone();
    let jobs_for_stop = jobs.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing the batches in flight");
        stopping.store(true, Ordering::SeqCst);
        for job in jobs_for_stop.values() {
            job.wake.notify_one();
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(graceful)
        .await
        .map_err(|e| ServiceError::Other(format!("admin API: {e}")))?;
    for task in tasks {
        let _ = task.await;
    }
    service.state.flush()?;
    tracing::info!("state flushed; stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Keeps a connection's scheduler running: a worker that dies (a panic
/// anywhere in it) is reported and restarted, never silently gone.
async fn supervise(service: Arc<Service>, job: Arc<Job>, stop: Arc<AtomicBool>) {
    loop {
        let worker = tokio::spawn(schedule_loop(service.clone(), job.clone(), stop.clone()));
        match worker.await {
            Ok(()) => return,
            Err(e) if stop.load(Ordering::SeqCst) => {
                tracing::error!(connection = %job.conn.name, error = %e, "the scheduler ended during shutdown");
                return;
            }
            Err(e) => {
                tracing::error!(connection = %job.conn.name, error = %e, "the scheduler failed; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One run, with a panic in it turned into a failed run record (stored, and
/// answered to whoever waits for it).
async fn guarded_run(
    service: &Service,
    conn: &Connection,
    opts: RunOptions<'_>,
) -> Result<RunRecord, ServiceError> {
    use futures_util::FutureExt;
    let started = Utc::now();
    match std::panic::AssertUnwindSafe(service.run(conn, opts)).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown cause".into());
            let run_id = format!("{}-{}", conn.name, started.format("%Y%m%dT%H%M%S%.3fZ"));
            let record = RunRecord::failed(&conn.name, run_id, started, format!("the run panicked: {why}"));
            tracing::error!(connection = %conn.name, error = %why, "a run panicked; the service goes on");
            if let Ok(json) = serde_json::to_value(&record) {
                let _ = crmsync_core::Store::put_run(&service.store, &conn.name, started, &json);
            }
            Ok(record)
        }
    }
}

async fn schedule_loop(service: Arc<Service>, job: Arc<Job>, stop: Arc<AtomicBool>) {
    let poll = Duration::from_secs(job.conn.config.inbound.poll_seconds.max(1));
    let mut next_outbound = job.schedule.lock().await.next_after(Utc::now());
    let mut next_poll = tokio::time::Instant::now() + poll;
    // The activity pass on its own schedule ("daily at" in the org's time
    // zone), else with every job.
    let activity_schedule = job.conn.config.activity_schedule();
    let tz = match activity_schedule {
        Some(_) => {
            let configured = job.conn.config.time_zone.as_deref().and_then(|tz| tz.parse().ok());
            crmsync_engine::cycle::org_time_zone(configured, job.conn.salesforce.as_ref(), &job.conn.name)
                .await
        }
        None => chrono_tz::UTC,
    };
    let mut next_activity = activity_schedule.and_then(|s| s.next_after_in(Utc::now(), tz));
    let mut last_reconcile = None;
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let until = |at: Option<chrono::DateTime<Utc>>| {
            at.map(|at| (at - Utc::now()).to_std().unwrap_or_default()).unwrap_or(Duration::MAX)
        };
        let until_outbound = until(next_outbound).min(until(next_activity));
        let wake_at =
            next_poll.min(tokio::time::Instant::now() + until_outbound.min(Duration::from_secs(86_400)));
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = job.wake.notified() => {}
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let schedule = *job.schedule.lock().await;
        let requested = job.run_now.swap(false, Ordering::SeqCst);
        let outbound_due = next_outbound.is_some_and(|at| at <= Utc::now());
        let activity_due = next_activity.is_some_and(|at| at <= Utc::now());
        let poll_due = tokio::time::Instant::now() >= next_poll;
        // A draft waits for activation (polled, so an activation applies at once).
        let draft = !requested && !service.is_active(&job.conn.name);
        if draft {
            next_poll = tokio::time::Instant::now() + poll;
        }
        if !draft && (requested || outbound_due || poll_due || activity_due) {
            let opts = RunOptions {
                dry_run: false,
                // The outbound job sends waiting inbound batches first, so it never
                // carries Salesforce's values over contact edits still queued.
                force: requested || outbound_due || activity_due,
                outbound: requested || outbound_due,
                // Drift reconciliation with the first outbound job of each day.
                reconcile: (requested || outbound_due) && last_reconcile != Some(Utc::now().date_naive()),
                activities: activity_schedule.is_none() || requested || activity_due,
                stop: Some(&stop),
                progress: None,
            };
            if opts.reconcile {
                last_reconcile = Some(Utc::now().date_naive());
            }
            match guarded_run(&service, &job.conn, opts).await {
                Ok(record) => {
                    for waiter in job.waiting.lock().await.drain(..) {
                        let _ = waiter.send(record.clone());
                    }
                }
                Err(e) => tracing::error!(connection = %job.conn.name, error = %e, "run failed"),
            }
            next_poll = tokio::time::Instant::now() + poll;
        }
        // The next job time always follows the current schedule, so a change takes effect at once.
        next_outbound = schedule.next_after(Utc::now());
        if activity_due {
            next_activity = activity_schedule.and_then(|s| s.next_after_in(Utc::now(), tz));
        }
    }
}

/// Ready while the service runs its schedules; 503 once shutdown began.
pub(super) async fn ready(State(app): State<App>) -> Response {
    if app.stopping.load(Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    Json(json!({"status": "ready", "connections": app.jobs.len()})).into_response()
}

fn job<'a>(app: &'a App, name: &str) -> Result<&'a Arc<Job>, Response> {
    app.jobs.get(name).ok_or_else(|| problem(StatusCode::NOT_FOUND, format!("no connection named {name:?}")))
}

pub(super) async fn connections(State(app): State<App>) -> Response {
    match app.service.status() {
        Ok(mut status) => {
            for s in &mut status {
                if let Some(job) = app.jobs.get(&s.connection) {
                    let schedule = *job.schedule.lock().await;
                    s.schedule = schedule.to_string();
                    s.next_run = schedule.next_after(Utc::now());
                }
            }
            Json(status).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /connections/{name}/runs?limit=&offset=`.
#[derive(Deserialize)]
pub(super) struct RunsQuery {
    #[serde(default = "default_runs_page")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

fn default_runs_page() -> usize {
    50
}

/// The most runs one page holds.
const MAX_RUNS_PAGE: usize = 500;

/// Stored runs, newest first, paged: `total` stored, and the runs since the
/// process started by outcome.
pub(super) async fn runs(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Response {
    let job = match job(&app, &name) {
        Ok(j) => j,
        Err(r) => return r,
    };
    if q.limit == 0 || q.limit > MAX_RUNS_PAGE {
        return problem(StatusCode::BAD_REQUEST, format!("limit must be between 1 and {MAX_RUNS_PAGE}"));
    }
    let (runs, total) =
        match (app.service.runs(&name, q.offset + q.limit), app.service.store.count_runs(&name)) {
            (Ok(runs), Ok(total)) => (runs, total),
            (Err(e), _) | (_, Err(e)) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    let page: Vec<_> = runs.into_iter().skip(q.offset).collect();
    let since_start = job.conn.run_stats.counts().by_outcome;
    Json(json!({"total": total, "offset": q.offset, "limit": q.limit, "since_start": since_start, "runs": page}))
        .into_response()
}

/// `GET /connections/{name}/errors?limit=&offset=&object=&code=&record=`.
#[derive(Deserialize)]
pub(super) struct ErrorQuery {
    #[serde(default = "default_error_page")]
    limit: usize,
    #[serde(default)]
    offset: usize,
    object: Option<String>,
    code: Option<String>,
    record: Option<String>,
}

fn default_error_page() -> usize {
    100
}

/// The most errors one page holds.
const MAX_ERROR_PAGE: usize = 1000;

/// Per-record errors, newest first, filtered and paged: `total` is how many
/// match, `errors` the page.
pub(super) async fn errors(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<ErrorQuery>,
) -> Response {
    if let Err(r) = job(&app, &name) {
        return r;
    }
    if q.limit == 0 || q.limit > MAX_ERROR_PAGE {
        return problem(StatusCode::BAD_REQUEST, format!("limit must be between 1 and {MAX_ERROR_PAGE}"));
    }
    let mut errors = match app.service.store.errors(&name) {
        Ok(errors) => errors,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let keep = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    errors.retain(|e| keep(&q.object, &e.object) && keep(&q.code, &e.code) && keep(&q.record, &e.record));
    errors.sort_by_key(|e| std::cmp::Reverse(e.at));
    let total = errors.len();
    let page: Vec<_> = errors.into_iter().skip(q.offset).take(q.limit).collect();
    Json(json!({"total": total, "offset": q.offset, "limit": q.limit, "errors": page})).into_response()
}

#[derive(Deserialize)]
pub(super) struct RunQuery {
    #[serde(default)]
    wait: bool,
}

pub(super) async fn run_now(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let job = match job(&app, &name) {
        Ok(j) => j.clone(),
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    if q.wait {
        job.waiting.lock().await.push(tx);
    }
    job.run_now.store(true, Ordering::SeqCst);
    job.wake.notify_one();
    if !q.wait {
        return (StatusCode::ACCEPTED, Json(json!({"status": "queued"}))).into_response();
    }
    match rx.await {
        Ok(record) => Json(record).into_response(),
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down"),
    }
}

#[derive(Deserialize)]
pub(super) struct DryRunQuery {
    /// Planned writes shown per direction; the totals count them all.
    #[serde(default = "default_dry_run_limit")]
    limit: usize,
}

fn default_dry_run_limit() -> usize {
    50
}

/// Runs the cycle as a dry run (reads both sides, writes nothing, stores
/// nothing) and answers what it would write: the run record with each
/// direction's `planned` cut to `limit`, and `planned_total` counting them all.
pub(super) async fn dry_run(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(q): Query<DryRunQuery>,
) -> Response {
    let job = match job(&app, &name) {
        Ok(j) => j.clone(),
        Err(r) => return r,
    };
    let opts = RunOptions {
        dry_run: true,
        force: true,
        outbound: true,
        reconcile: false,
        activities: false,
        stop: None,
        progress: None,
    };
    let mut record = match app.service.run(&job.conn, opts).await {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let totals = json!({
        "outbound": {"records": record.outbound.planned.len(),
                     "fields": record.outbound.planned.iter().map(|w| w.fields.len()).sum::<usize>()},
        "inbound": {"records": record.inbound.planned.len(),
                    "fields": record.inbound.planned.iter().map(|w| w.fields.len()).sum::<usize>()},
    });
    let planned = |writes: &mut Vec<crmsync_engine::PlannedWrite>| {
        let shown: Vec<_> = std::mem::take(writes)
            .into_iter()
            .take(q.limit)
            .map(|w| {
                let fields: Vec<_> = w
                    .fields
                    .iter()
                    .map(|(f, old, new)| json!({"field": f, "old": old, "new": new}))
                    .collect();
                json!({"sf_id": w.sf_id, "key": w.key, "fields": fields})
            })
            .collect();
        shown
    };
    let (outbound, inbound) = (planned(&mut record.outbound.planned), planned(&mut record.inbound.planned));
    let mut answer = serde_json::to_value(&record).unwrap_or_default();
    answer["outbound"]["planned"] = json!(outbound);
    answer["inbound"]["planned"] = json!(inbound);
    answer["planned_total"] = totals;
    Json(answer).into_response()
}

#[derive(Deserialize)]
pub(super) struct ScheduleBody {
    schedule: String,
}

pub(super) async fn set_schedule(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<ScheduleBody>,
) -> Response {
    let job = match job(&app, &name) {
        Ok(j) => j.clone(),
        Err(r) => return r,
    };
    let schedule: Schedule = match body.schedule.parse() {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("schedule: {e}")),
    };
    if let Err(e) = app.service.set_schedule(&name, schedule) {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    *job.schedule.lock().await = schedule;
    job.wake.notify_one();
    Json(json!({"schedule": schedule.to_string(), "next_run": schedule.next_after(Utc::now())}))
        .into_response()
}

/// `POST /connections/{name}/pause` (and `/deactivate`): scheduled runs stop,
/// kept across restarts — the state a draft connection starts in.
pub(super) async fn pause(State(app): State<App>, Path(name): Path<String>) -> Response {
    set_active(app, name, false).await
}

/// `POST /connections/{name}/resume` (and `/activate`): scheduled runs start again.
pub(super) async fn resume(State(app): State<App>, Path(name): Path<String>) -> Response {
    set_active(app, name, true).await
}

async fn set_active(app: App, name: String, active: bool) -> Response {
    let job = match job(&app, &name) {
        Ok(j) => j.clone(),
        Err(r) => return r,
    };
    if let Err(e) = app.service.set_active(&name, active) {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    job.wake.notify_one();
    Json(json!({"connection": name, "active": active, "paused": !active})).into_response()
}

#[derive(Deserialize)]
pub(super) struct ActivateBody {
    plugin: String,
}

fn role(text: &str) -> Result<Role, Response> {
    text.parse().map_err(|_| {
        problem(StatusCode::NOT_FOUND, format!("{text:?} is not a role (selector, mapper, resolver)"))
    })
}

pub(super) async fn activate(
    State(app): State<App>,
    Path((name, role_text)): Path<(String, String)>,
    Json(body): Json<ActivateBody>,
) -> Response {
    let role = match (job(&app, &name), role(&role_text)) {
        (Ok(_), Ok(r)) => r,
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match app.service.registry.activate(&name, role, &body.plugin) {
        Ok(id) => Json(json!({"active": id.to_string()})).into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(super) async fn rollback(
    State(app): State<App>,
    Path((name, role_text)): Path<(String, String)>,
) -> Response {
    let role = match (job(&app, &name), role(&role_text)) {
        (Ok(_), Ok(r)) => r,
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match app.service.registry.rollback(&name, role) {
        Ok(id) => Json(json!({"active": id.to_string()})).into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Prometheus text from what the process keeps in memory (run counts, the
/// stored counts as of the last run, progress, calls, plugin stats): a
/// scrape reads no link, queued write or error.
pub(super) async fn metrics(State(app): State<App>) -> Response {
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let mut conns: Vec<&Arc<Connection>> = app.jobs.values().map(|j| &j.conn).collect();
    conns.sort_by(|a, b| a.name.cmp(&b.name));
    let label = |c: &Connection| format!("connection=\"{}\"", c.name);
    let per = |f: &dyn Fn(&Connection) -> f64| -> Vec<(String, f64)> {
        conns.iter().map(|c| (label(c), f(c))).collect()
    };
    let runs: Vec<(&Connection, super::run_stats::RunCounts)> =
        conns.iter().map(|c| (c.as_ref(), c.run_stats.counts())).collect();
    let stored = |f: fn(&super::run_stats::Stored) -> usize| -> Vec<(String, f64)> {
        runs.iter().filter_map(|(c, r)| Some((label(c), f(r.stored.as_ref()?) as f64))).collect()
    };
    line(
        "crmsync_links",
        "Records linked across both sides (as of the last run).",
        "gauge",
        stored(|s| s.links),
    );
    line(
        "crmsync_pending_writes",
        "Writes waiting in the outbox (as of the last run).",
        "gauge",
        stored(|s| s.pending_writes),
    );
    line(
        "crmsync_record_errors",
        "Per-record errors kept for the operator (as of the last run).",
        "gauge",
        stored(|s| s.errors),
    );
    line(
        "crmsync_runs_total",
        "Runs since start by outcome: ok, failed, stopped (shutdown first), paused (API budget).",
        "counter",
        runs.iter()
            .flat_map(|(c, r)| {
                r.by_outcome
                    .iter()
                    .map(move |(o, n)| (format!("connection=\"{}\",outcome=\"{o}\"", c.name), *n as f64))
            })
            .collect(),
    );
    line(
        "crmsync_last_success_timestamp_seconds",
        "When the last run that ended ok finished (Unix time; absent before one).",
        "gauge",
        runs.iter().filter_map(|(c, r)| Some((label(c), r.last_success?.timestamp() as f64))).collect(),
    );
    line(
        "crmsync_connection_active",
        "1 when the connection runs on its schedule, 0 when paused or a draft.",
        "gauge",
        per(&|c| f64::from(u8::from(app.service.is_active(&c.name)))),
    );
    let quota: Vec<(String, f64)> = conns
        .iter()
        .filter_map(|c| Some((label(c), app.service.task_quota(c).ok()??)))
        .map(|(l, q)| (l, q.used as f64 / q.limit.max(1) as f64))
        .collect();
    line(
        "crmsync_monthly_task_quota_ratio",
        "Tasks (records written) this month against the platform's monthly quota: ≥ 0.8 warns, ≥ 1 pauses.",
        "gauge",
        quota,
    );
    let budget: Vec<(String, f64)> = conns
        .iter()
        .filter_map(|c| Some((label(c), c.budget.remaining(c.salesforce.api_usage()?) as f64)))
        .collect();
    line(
        "crmsync_api_budget_remaining_calls",
        "Salesforce calls the connection's share of the daily limit still allows (absent before Salesforce reported usage).",
        "gauge",
        budget,
    );
    let running: Vec<(String, crmsync_engine::ProgressSnapshot)> = conns
        .iter()
        .filter_map(|c| {
            let p = c.progress.snapshot()?;
            Some((
                format!("connection=\"{}\",direction=\"{}\",object=\"{}\"", c.name, p.direction, p.object),
                p,
            ))
        })
        .collect();
    line(
        "crmsync_sync_progress_read_records",
        "Records the running pass has read of its object (absent between runs).",
        "gauge",
        running.iter().map(|(l, p)| (l.clone(), p.read as f64)).collect(),
    );
    line(
        "crmsync_sync_progress_total_records",
        "What the running pass will read of its object, as the vendor's listing says (absent when unknown).",
        "gauge",
        running.iter().filter_map(|(l, p)| Some((l.clone(), p.total? as f64))).collect(),
    );
    let mut calls = Vec::new();
    let mut usage = Vec::new();
    for c in &conns {
        let sides: [(&str, &dyn Connector); 2] = [
            ("salesforce", c.salesforce.as_ref()),
            (c.config.marketing.as_str(), c.marketing.as_ref() as &dyn Connector),
        ];
        for (vendor, connector) in sides {
            for (endpoint, n) in connector.calls_by_endpoint() {
                calls.push((
                    format!("connection=\"{}\",vendor=\"{vendor}\",endpoint=\"{endpoint}\"", c.name),
                    n as f64,
                ));
            }
        }
        if let Some(u) = c.salesforce.api_usage() {
            usage.push((label(c), u.used as f64 / u.limit.max(1) as f64));
        }
    }
    line(
        "crmsync_api_calls_total",
        "API requests sent since start, retries included, by vendor and endpoint class.",
        "counter",
        calls,
    );
    line(
        "crmsync_salesforce_api_usage_ratio",
        "Salesforce daily API usage as last reported.",
        "gauge",
        usage,
    );
    let plugins: Vec<(String, crmsync_runtime::rules::RoleStats)> = conns
        .iter()
        .flat_map(|c| {
            c.rules
                .stats()
                .into_iter()
                .map(move |(role, s)| (format!("connection=\"{}\",role=\"{role}\"", c.name), s))
        })
        .collect();
    line(
        "crmsync_plugin_calls_total",
        "Plugin calls (one per batch) since start.",
        "counter",
        plugins.iter().map(|(l, s)| (l.clone(), s.calls as f64)).collect(),
    );
    line(
        "crmsync_plugin_records_total",
        "Records passed to plugins since start.",
        "counter",
        plugins.iter().map(|(l, s)| (l.clone(), s.records as f64)).collect(),
    );
    line(
        "crmsync_plugin_call_seconds_total",
        "Time spent in plugin calls since start.",
        "counter",
        plugins.iter().map(|(l, s)| (l.clone(), s.seconds)).collect(),
    );
    line(
        "crmsync_plugin_failures_total",
        "Records a plugin failed on (trap, deadline, memory, contract) since start; rejections by the rule are not counted.",
        "counter",
        plugins.iter().map(|(l, s)| (l.clone(), s.failures as f64)).collect(),
    );
    let _ = writeln!(
        out,
        "# HELP crmsync_run_duration_seconds How long runs took since start.\n# TYPE crmsync_run_duration_seconds histogram"
    );
    for (c, r) in &runs {
        let c = &c.name;
        let mut cumulative = 0;
        for (i, n) in r.buckets.iter().enumerate() {
            cumulative += n;
            let le = super::run_stats::DURATION_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "crmsync_run_duration_seconds_bucket{{connection=\"{c}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "crmsync_run_duration_seconds_sum{{connection=\"{c}\"}} {}", r.seconds);
        let _ = writeln!(out, "crmsync_run_duration_seconds_count{{connection=\"{c}\"}} {}", r.total());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
