//! What every connector shares on the wire: the reqwest client (timeouts,
//! HTTPS through rustls with the webpki roots plus an optional extra CA),
//! retry of transient failures with exponential backoff and full jitter
//! (backon), `Retry-After`, an optional shared rate limiter, a hook that sees
//! every response's headers, and the classification of failures into
//! [`ConnectorError`]. Nothing here logs a URL, a body or a credential: log
//! lines carry the vendor, the call name, the attempt and the status only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::ConnectorError;
use crate::ratelimit::Limiter;

/// Timeouts and retry policy of one connector's HTTP client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Whole-request deadline of one attempt (connect, send, read the body).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for transient failures only.
    pub max_retries: usize,
    /// First backoff step; each retry doubles it up to `max_delay`. The wait
    /// is drawn uniformly from `[0, step]` (full jitter).
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited out: the error goes back
    /// to the caller (the engine reschedules the batch).
    pub max_retry_after: Duration,
    /// Certificates trusted besides the webpki roots (a corporate proxy's CA).
    pub extra_ca: Option<ExtraCa>,
}

/// Extra trusted certificates, read from a PEM file.
#[derive(Debug, Clone)]
pub struct ExtraCa {
    pub path: std::path::PathBuf,
    certs: Arc<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl ExtraCa {
    /// Reads every certificate of a PEM file; the error says what is wrong.
    pub fn load(path: &std::path::Path) -> Result<ExtraCa, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        Ok(ExtraCa { path: path.to_path_buf(), certs: Arc::new(certs) })
    }
}

/// The TLS settings of every connector: TLS 1.2+ through rustls with the
/// aws-lc-rs provider (post-quantum key exchange preferred), the webpki roots
/// (built in: no system store needed), and the extra CA when given.
fn tls_config(extra: Option<&ExtraCa>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra.map(|x| x.certs.iter()).into_iter().flatten() {
        roots.add(cert.clone()).map_err(|e| format!("an extra CA certificate cannot be used: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// A client with the connectors' TLS settings and no retry policy, for
/// crmsync's own calls (the CLI asking a running service's admin API).
/// `reqwest::Client::new()` would panic outside tests: reqwest is built
/// without a TLS provider of its own.
pub fn plain_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(None)?)
        .timeout(timeout)
        .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.without_url().to_string())
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_retries: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            extra_ca: None,
        }
    }
}

/// A whole response, read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// How far before a change scan began (its first answer's `Date`) the next
/// scan keeps records: a vendor's `Date` and its records' stamps may come
/// from different machines, and an answer is dated after it was read; when
/// the `Date` is missing, crmsync's own clock stands in.
pub const DATE_SLACK: chrono::Duration = chrono::Duration::seconds(5);

impl Reply {
    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self, vendor: &'static str) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| ConnectorError::BadResponse {
            vendor,
            message: format!("{} answer is not the expected JSON: {e}", self.status.as_u16()),
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Date` header: the vendor's clock when it answered, to the second.
    /// A change scan's watermark is the `Date` of its first answer less
    /// [`DATE_SLACK`].
    pub fn date(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.headers.get(reqwest::header::DATE)?.to_str().ok()?;
        chrono::DateTime::parse_from_rfc2822(raw.trim()).ok().map(|t| t.with_timezone(&chrono::Utc))
    }

    /// `Retry-After` in seconds or as an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        let raw = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(secs) = raw.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
    }
}

/// Checks a base URL at config load: it parses, and says `http` or `https`.
pub fn check_url(url: &str, key: &str) -> Result<(), crmsync_core::ConfigError> {
    let refuse = |why: String| crmsync_core::ConfigError::new(key, why);
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        refuse(format!(
            "{url:?} is not a URL ({e}); write it with its scheme, e.g. \"https://{}\"",
            url.trim()
        ))
    })?;
    match parsed.scheme() {
        "https" | "http" if parsed.host_str().is_some() => Ok(()),
        "https" | "http" => Err(refuse(format!("{url:?} has no host"))),
        other => Err(refuse(format!(
            "{url:?}: the scheme must be https (or http for a local sandbox), not {other}"
        ))),
    }
}

/// Maps a non-success reply to the vendor's error (each vendor reads its own
/// error body); see [`status_error`] for the shared part.
pub type Classify = fn(&Reply) -> ConnectorError;

/// Sees the headers of every response (e.g. Salesforce `Sforce-Limit-Info`).
pub type Observe = Arc<dyn Fn(&HeaderMap) + Send + Sync>;

/// One vendor's HTTP client with its retry policy.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    vendor: &'static str,
    opts: HttpOptions,
    classify: Classify,
    limiter: Option<Arc<Limiter>>,
    /// Caps the requests in flight (a vendor's simultaneous-connection
    /// limit); a permit is held for one attempt, never during a backoff.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    observe: Option<Observe>,
    /// Requests sent (every attempt counts: the vendor counts them too).
    calls: Arc<AtomicU64>,
    /// The same by the name each call is sent under.
    by_endpoint: Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>>,
}

impl Http {
    pub fn new(vendor: &'static str, opts: HttpOptions, classify: Classify) -> Result<Http, ConnectorError> {
        let tls =
            tls_config(opts.extra_ca.as_ref()).map_err(|message| ConnectorError::Tls { vendor, message })?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Network { vendor, message: e.without_url().to_string() })?;
        Ok(Http {
            client,
            vendor,
            opts,
            classify,
            limiter: None,
            in_flight: None,
            observe: None,
            calls: Arc::default(),
            by_endpoint: Arc::default(),
        })
    }

    /// Every attempt first waits for a permit of this (shared) limiter.
    pub fn with_limiter(mut self, limiter: Arc<Limiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Every attempt first takes a permit of this (shared) semaphore and
    /// holds it until the response body is read.
    pub fn with_concurrency(mut self, permits: Arc<tokio::sync::Semaphore>) -> Self {
        self.in_flight = Some(permits);
        self
    }

    pub fn with_observer(mut self, observe: Observe) -> Self {
        self.observe = Some(observe);
        self
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn vendor(&self) -> &'static str {
        self.vendor
    }

    /// Requests sent so far, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Requests sent so far by the name each was sent under (`what`).
    pub fn calls_by_endpoint(&self) -> Vec<(&'static str, u64)> {
        let by = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        by.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Sends the request `build` makes (anew for every attempt), retrying
    /// transient failures; a success status gives the reply, anything else
    /// the classified error. `what` names the call in spans and logs.
    pub async fn send(
        &self,
        what: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let attempt = AtomicU32::new(0);
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.opts.min_delay)
            .with_max_delay(self.opts.max_delay)
            .with_max_times(self.opts.max_retries);
        let max_retry_after = self.opts.max_retry_after;
        let span = tracing::debug_span!("http", vendor = self.vendor, call = what);
        (|| async {
            let n = attempt.fetch_add(1, Ordering::Relaxed) + 1;
            self.attempt(what, &build).instrument(tracing::trace_span!("attempt", n)).await
        })
        .retry(policy)
        .sleep(tokio::time::sleep)
        .when(ConnectorError::is_transient)
        .adjust(|e, step| backoff_delay(e, step, max_retry_after))
        .notify(|e, wait| {
            tracing::warn!(
                vendor = self.vendor,
                call = what,
                error = kind(e),
                wait_ms = wait.as_millis() as u64,
                "retrying"
            )
        })
        .instrument(span)
        .await
    }

    async fn attempt(
        &self,
        what: &'static str,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let _permit = match &self.in_flight {
            Some(s) => Some(s.clone().acquire_owned().await.map_err(|_| ConnectorError::Network {
                vendor: self.vendor,
                message: "the connection pool is closed".into(),
            })?),
            None => None,
        };
        let vendor = self.vendor;
        self.calls.fetch_add(1, Ordering::Relaxed);
        *self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner()).entry(what).or_default() += 1;
        let response = build(&self.client).send().await.map_err(|e| transport_error(vendor, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(observe) = &self.observe {
            observe(&headers);
        }
        let body = response.bytes().await.map_err(|e| transport_error(vendor, e))?.into();
        let reply = Reply { status, headers, body };
        if status.is_success() { Ok(reply) } else { Err((self.classify)(&reply)) }
    }
}

/// The wait before the next attempt: `Retry-After` when the vendor sent one
/// (giving up past `max_retry_after`), else a uniform draw from `[0, step]`.
fn backoff_delay(e: &ConnectorError, step: Option<Duration>, max_retry_after: Duration) -> Option<Duration> {
    let step = step?;
    match e {
        ConnectorError::RateLimited { retry_after: Some(after), .. } => {
            (*after <= max_retry_after).then_some(*after)
        }
        _ => Some(step.mul_f64(rand::random::<f64>())),
    }
}

/// A short, data-free name of an error for log lines.
fn kind(e: &ConnectorError) -> &'static str {
    match e {
        ConnectorError::RateLimited { .. } => "rate_limited",
        ConnectorError::Server { .. } => "server",
        ConnectorError::Timeout { .. } => "timeout",
        ConnectorError::Network { .. } => "network",
        ConnectorError::Auth { .. } => "auth",
        ConnectorError::QuotaExceeded { .. } => "quota",
        ConnectorError::Rejected { .. } => "rejected",
        ConnectorError::BadResponse { .. } => "bad_response",
        ConnectorError::Unsupported { .. } => "unsupported",
        ConnectorError::Tls { .. } => "tls",
    }
}

fn transport_error(vendor: &'static str, e: reqwest::Error) -> ConnectorError {
    let e = e.without_url();
    if e.is_timeout() {
        return ConnectorError::Timeout { vendor };
    }
    if e.is_decode() {
        return ConnectorError::BadResponse { vendor, message: e.to_string() };
    }
    // The causes say what went wrong ("error sending request" alone does not).
    let mut message = e.to_string();
    let mut tls = false;
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        tls |= cause.downcast_ref::<rustls::Error>().is_some()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    // hyper boxes the handshake error on the way up; its text still says what it is.
    let lower = message.to_lowercase();
    tls |= ["invalid peer certificate", "tls handshake", "certificate verify", "unknownissuer"]
        .iter()
        .any(|m| lower.contains(m));
    if tls { ConnectorError::Tls { vendor, message } } else { ConnectorError::Network { vendor, message } }
}

/// The status-based part every vendor shares: 429 (with `Retry-After`), 5xx,
/// 408, 401; other statuses are rejections. `message` is the vendor's own.
pub fn status_error(vendor: &'static str, reply: &Reply, message: String) -> ConnectorError {
    let status = reply.status.as_u16();
    match status {
        429 => ConnectorError::RateLimited { vendor, retry_after: reply.retry_after() },
        408 => ConnectorError::Timeout { vendor },
        401 => ConnectorError::Auth { vendor, message },
        s if s >= 500 => ConnectorError::Server { vendor, status, message },
        _ => ConnectorError::Rejected { vendor, status, message },
    }
}

/// A per-record rejection (HTTP 400, 404, 422) becomes that record's error,
/// read from the vendor's message by `parse`; anything else fails the batch.
pub fn per_record(
    e: crate::ConnectorError,
    parse: impl FnOnce(&str) -> crate::VendorError,
) -> Result<crate::WriteResult, crate::ConnectorError> {
    match e {
        crate::ConnectorError::Rejected { status: 400 | 404 | 422, message, .. } => Ok(Err(parse(&message))),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_over_backoff_and_caps() {
        let limited =
            |s| ConnectorError::RateLimited { vendor: "x", retry_after: Some(Duration::from_secs(s)) };
        let cap = Duration::from_secs(60);
        let step = Some(Duration::from_millis(100));
        assert_eq!(backoff_delay(&limited(7), step, cap), Some(Duration::from_secs(7)));
        assert_eq!(backoff_delay(&limited(600), step, cap), None);
        assert_eq!(backoff_delay(&limited(7), None, cap), None);
        let server = ConnectorError::Server { vendor: "x", status: 503, message: String::new() };
        for _ in 0..100 {
            let d = backoff_delay(&server, step, cap).expect("a delay");
            assert!(d <= Duration::from_millis(100));
        }
    }
}
