//! The server shared by all mocks: bound listener and shutdown, the journal
//! and fault-injection middleware, and the running-mock handle [`MockServer`].
//!
//! Each mock contributes an axum [`Router`] with its API routes and an [`Api`]
//! implementation (error shape, reset); this module wraps the router in the
//! middleware that journals every call and applies [`crate::Fault`]s, merges
//! the admin routes (`/__admin/...`, see [`crate::admin`]) and serves it on a
//! [`MockListener`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::MockError;
use crate::expect::{verdict, Expectation, Outcome};
use crate::faults::{Fault, FaultKind, FaultSet};
use crate::journal::{Journal, RecordedRequest};
use crate::net::{ConnInfo, MockListener};
use crate::tls::TestCa;

/// Largest request body a mock reads.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What each mocked API adds to the shared server.
pub(crate) trait Api: Send + Sync + 'static {
    /// Short name: `openai`, `gemini`, `graph`, `stripe`.
    fn name(&self) -> &'static str;

    /// An error response in the API's own wire format.
    fn error(&self, status: StatusCode, message: &str) -> Response;

    /// A 429 in the API's format with the headers its clients read.
    fn rate_limited(&self, retry_after: Duration) -> Response {
        let mut response = self.error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests, please retry later.",
        );
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response
    }

    /// The answer to a request no route of this mock serves: the API's own
    /// error shape (so the SDK raises its usual error type) with a message
    /// naming the call as not mocked, never a bare 404 that an SDK misreads
    /// as "this object does not exist".
    fn not_mocked(&self, method: &Method, path: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            &not_mocked_message(self.name(), method, path),
        )
    }

    /// Forgets all state (created objects, counters) and reloads the seed.
    fn reset(&self);

    /// Called once when serving starts, with a receiver that turns `true` on
    /// shutdown (long-lived handlers such as WebSockets watch it).
    fn started(&self, _shutdown: watch::Receiver<bool>) {}
}

/// The message of [`Api::not_mocked`]: which call, and where to look.
pub(crate) fn not_mocked_message(mock: &str, method: &Method, path: &str) -> String {
    format!(
        "{method} {path} is not mocked by tekup-mocks: the {mock} mock does not serve this \
         endpoint (mocks/README.md lists what each mock serves)"
    )
}

/// State shared by the middleware, the admin API and the handle.
pub(crate) struct Shared {
    pub(crate) api: Arc<dyn Api>,
    pub(crate) journal: Journal,
    pub(crate) faults: FaultSet,
    pub(crate) expectations: Mutex<Vec<Expectation>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) tls: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("api", &self.api.name())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn outcomes(&self) -> Vec<Outcome> {
        let journal = self.journal.entries();
        self.expectations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|e| e.check(&journal))
            .collect()
    }

    pub(crate) fn reset(&self) {
        self.journal.clear();
        self.faults.clear();
        self.expectations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.api.reset();
    }

    /// Resolves when the server starts shutting down.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The externally visible origin of a request (`http://127.0.0.1:4010`),
/// from the `Host` header; inserted by the middleware for handlers that must
/// write absolute links (Graph's `@odata.nextLink`).
#[derive(Debug, Clone)]
pub(crate) struct Origin(pub(crate) String);

/// Where and how a mock listens. Defaults: `127.0.0.1:0`, plain HTTP.
#[derive(Debug, Default)]
pub(crate) struct ServeOptions {
    pub(crate) listener: Option<TcpListener>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServeOptions {
    pub(crate) fn with_tls(&mut self, ca: &TestCa) -> Result<(), MockError> {
        self.tls = Some(ca.server_config()?);
        Ok(())
    }
}

/// A running mock. Dropping it stops the server (unless [`MockServer::keep`]
/// was called); the typed mocks ([`crate::OpenAi`], ...) dereference to it.
///
/// Dropping it also checks its [`Expectation`]s, as wiremock's `MockServer`
/// does: an unmet one panics with the same report as
/// [`MockServer::verify`], so a test that forgets to call `verify()` cannot
/// pass silently. The check is skipped while the thread is already panicking
/// (the test has failed anyway, and a panic in a panic aborts) and for a
/// kept server, whose expectations are the admin API's business.
#[derive(Debug)]
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    keep: bool,
    verify_on_drop: bool,
}

impl MockServer {
    pub(crate) async fn serve(
        api: Arc<dyn Api>,
        routes: Router,
        options: ServeOptions,
    ) -> Result<Self, MockError> {
        let name = api.name();
        let listener = match options.listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| MockError::Bind {
                    mock: name,
                    addr: "127.0.0.1:0".into(),
                    source,
                })?,
        };
        let tls = options.tls.map(tokio_rustls::TlsAcceptor::from);
        let is_tls = tls.is_some();
        let listener = MockListener::new(listener, tls).map_err(|source| MockError::Bind {
            mock: name,
            addr: "bound listener".into(),
            source,
        })?;
        let addr =
            axum::serve::Listener::local_addr(&listener).map_err(|source| MockError::Bind {
                mock: name,
                addr: "bound listener".into(),
                source,
            })?;
        let (stop, shutdown) = watch::channel(false);
        api.started(shutdown.clone());
        let shared = Arc::new(Shared {
            api,
            journal: Journal::default(),
            faults: FaultSet::default(),
            expectations: Mutex::default(),
            shutdown,
            tls: is_tls,
        });
        let fallback = {
            let api = shared.api.clone();
            move |method: Method, uri: Uri| {
                let api = api.clone();
                async move { api.not_mocked(&method, uri.path()) }
            }
        };
        let app = Router::new()
            .merge(routes)
            .fallback(fallback.clone())
            .method_not_allowed_fallback(fallback)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                journal_and_faults,
            ))
            .merge(crate::admin::router(shared.clone()));
        let mut rx = shared.shutdown.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnInfo>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(mock = name, "server stopped with an error: {e}");
            }
        });
        tracing::debug!(mock = name, %addr, tls = is_tls, "mock listening");
        Ok(Self {
            shared,
            addr,
            stop,
            task: Some(task),
            keep: false,
            verify_on_drop: true,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:43817` (`https://localhost:...` with TLS).
    #[must_use]
    pub fn uri(&self) -> String {
        if self.shared.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// The bound socket address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Which API this mock serves (`openai`, `gemini`, `graph`, `stripe`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.shared.api.name()
    }

    /// All journaled requests, oldest first.
    #[must_use]
    pub fn journal(&self) -> Vec<RecordedRequest> {
        self.shared.journal.entries()
    }

    /// Journaled requests matching `expectation`'s matchers.
    #[must_use]
    pub fn received(&self, expectation: &Expectation) -> Vec<RecordedRequest> {
        self.shared.journal.matching(|r| expectation.matches(r))
    }

    /// Adds a fault (applied before those added later).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.push(fault);
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Registers an expectation, checked by [`MockServer::verify`].
    pub fn expect(&self, expectation: Expectation) {
        self.shared
            .expectations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(expectation);
    }

    /// Checks every registered expectation against the journal.
    ///
    /// # Errors
    /// [`MockError::Verification`] listing each unmet expectation.
    pub fn verify(&self) -> Result<(), MockError> {
        verdict(&self.shared.outcomes())
    }

    /// Clears journal, faults, expectations and the mock's state.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Leaves the server running when the handle is dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// No expectation check on drop: for the standalone binary, whose
    /// expectations are registered and verified by clients over the admin API.
    pub(crate) fn skip_verify_on_drop(&mut self) {
        self.verify_on_drop = false;
    }

    /// Stops the server and waits (bounded) for open connections to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if self.verify_on_drop && !std::thread::panicking() {
            if let Err(e) = self.verify() {
                panic!(
                    "the {} mock was dropped with unmet expectations \
                     (call verify() to check them where it suits the test): {e}",
                    self.name()
                );
            }
        }
    }
}

/// Journals the call, applies the first fault in scope, records the outcome.
async fn journal_and_faults(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/__admin/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return shared
                .api
                .error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.")
        }
    };
    let seq = shared
        .journal
        .record(&parts.method, &parts.uri, &parts.headers, bytes.clone());
    let scheme = if shared.tls { "https" } else { "http" };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    parts
        .extensions
        .insert(Origin(format!("{scheme}://{host}")));
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.clone());
    let fault = shared
        .faults
        .take(parts.method.as_str(), parts.uri.path(), &parts.headers);
    let request = Request::from_parts(parts, Body::from(bytes));
    let fault_name = fault.as_ref().map(FaultKind::name);
    if fault_name.is_some() {
        // Recorded now: a stalled call may be dropped by its client before it ends.
        shared.journal.complete(seq, None, fault_name);
    }

    let response = match fault {
        None => next.run(request).await,
        Some(FaultKind::Latency { delay }) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => next.run(request).await,
                () = shared.stopped() => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        Some(FaultKind::Stall { duration }) => {
            let sleep = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => next.run(request).await,
                () = shared.stopped() => {
                    shared.journal.complete(seq, None, fault_name);
                    return failing_body(Response::builder(), Bytes::new());
                }
            }
        }
        Some(FaultKind::Status { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match body {
                Some(body) => (status, axum::Json(body)).into_response(),
                None => shared.api.error(
                    status,
                    "The server had an error while processing your request (injected fault).",
                ),
            }
        }
        Some(FaultKind::RateLimit { retry_after }) => shared.api.rate_limited(retry_after),
        Some(FaultKind::Malformed) => {
            let response = next.run(request).await;
            let (mut parts, body) = response.into_parts();
            let full = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .unwrap_or_default();
            let mut broken = full[..full.len() / 2].to_vec();
            broken.extend_from_slice(b"\x00<<malformed by tekup-mocks>>{\"");
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(broken.len()));
            Response::from_parts(parts, Body::from(broken))
        }
        Some(FaultKind::Truncated) => {
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            let full = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .unwrap_or_default();
            let status = parts.status;
            let mut builder = Response::builder().status(status);
            for (k, v) in &parts.headers {
                builder = builder.header(k, v);
            }
            builder = builder.header(header::CONTENT_LENGTH, full.len());
            shared
                .journal
                .complete(seq, Some(status.as_u16()), fault_name);
            return failing_body(builder, full.slice(..full.len() / 2));
        }
        Some(FaultKind::Reset) => {
            if let Some(conn) = conn {
                conn.ctl.reset();
            }
            shared.journal.complete(seq, None, fault_name);
            return failing_body(Response::builder(), Bytes::new());
        }
    };
    shared
        .journal
        .complete(seq, Some(response.status().as_u16()), fault_name);
    response
}

/// A response whose body yields `prefix` and then fails, which makes hyper
/// abort the connection mid-body. Between the two the stream is pending once,
/// so that hyper flushes the head and the prefix to the socket first.
fn failing_body(builder: axum::http::response::Builder, prefix: Bytes) -> Response {
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let prefix = prefix.clone();
        async move {
            match step {
                0 => Some((Ok(prefix), 1)),
                1 => {
                    tokio::task::yield_now().await;
                    tokio::task::yield_now().await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::BrokenPipe,
                            "body cut by fault injection",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Header map helper for handlers: a header as `&str`.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
