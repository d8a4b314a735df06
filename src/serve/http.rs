//! The explorer on the network: a small axum server, read-only, serving the page embedded in the binary and
//! the explorer's answers. Every request is checked; a bad one gets a 4xx with a line saying why.

use super::{BadRequest, Explorer};
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// Model calls run one at a time on at most this many blocking threads; the rest wait their turn.
const WORKERS: usize = 2;

#[derive(Clone)]
struct App {
    explorer: Arc<Mutex<Explorer>>,
    /// Host headers accepted (empty: any), so a web page elsewhere cannot reach a loopback server through a
    /// rebound DNS name.
    hosts: Arc<Vec<String>>,
}

/// The bytes of every file the page loads, for measuring its weight.
pub fn page_bytes() -> usize {
    INDEX.len() + SCRIPT.len() + STYLE.len()
}

/// Connections served at once; more wait in the system's queue until one ends.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request's headers within this, or the connection is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection (one request: keep-alive is off) may take in all.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server lets requests in progress finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds `host:port` (port 0: any free port), before any slow work, so a taken port is reported at once.
pub fn bind(host: IpAddr, port: u16) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind((host, port)).map_err(|e| {
        Error::Config(format!(
            "cannot listen on {}: {e}; pick another --port (or --port 0 for any free one)",
            SocketAddr::new(host, port)
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
    Ok(listener)
}

/// Serves `explorer` on `listener` until Ctrl-C or SIGTERM; `ready` is told the address once it listens.
///
/// Each connection carries one request (no keep-alive), must send its headers within [`HEADER_TIMEOUT`] and
/// finish within [`CONNECTION_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are served at once: clients that
/// open connections and send nothing cannot lock others out or keep the server from stopping.
pub fn serve(
    explorer: Explorer,
    listener: std::net::TcpListener,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(WORKERS)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the server: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
        let hosts = if addr.ip().is_loopback() {
            let p = addr.port();
            ["127.0.0.1", "localhost", "[::1]"]
                .iter()
                .flat_map(|h| [format!("{h}:{p}"), h.to_string()])
                .collect()
        } else {
            Vec::new()
        };
        let app = App {
            explorer: Arc::new(Mutex::new(explorer)),
            hosts: Arc::new(hosts),
        };
        let router = Router::new()
            .route(
                "/",
                get(|| async { page(INDEX, "text/html; charset=utf-8") }),
            )
            .route(
                "/app.js",
                get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route(
                "/style.css",
                get(|| async { page(STYLE, "text/css; charset=utf-8") }),
            )
            .route("/api/info", get(info))
            .route("/api/points", get(points))
            .route("/api/item/{i}", get(item))
            .route("/api/reconstruction/{i}", get(reconstruction))
            .route("/api/code/{i}", get(code))
            .route("/api/decode", get(decode))
            .fallback(not_found)
            .method_not_allowed_fallback(read_only)
            .layer(middleware::from_fn_with_state(app.clone(), guard))
            .with_state(app);
        ready(addr);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        let stopping = stop();
        tokio::pin!(stopping);
        loop {
            let slot = tokio::select! {
                _ = &mut stopping => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore stays open"),
            };
            let stream = tokio::select! {
                _ = &mut stopping => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of descriptors, or a connection reset before it was accepted: try again shortly.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let service = hyper_util::service::TowerToHyperService::new(router.clone());
            connections.spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
                drop(slot);
            });
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
        // Requests in progress get a moment to finish; clients that are not sending anything are dropped.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
async fn stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn page(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    let mut why = why.into();
    why.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why,
    )
        .into_response()
}

/// Checks the Host header and that nothing but a bare GET arrives, and sets the headers every answer carries.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if !app.hosts.is_empty() {
        let mut given = req.headers().get_all(header::HOST).iter();
        let host = given
            .next()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase());
        let ok = |h: &str| app.hosts.iter().any(|a| a == h);
        if given.next().is_some() || !ok(&host) || authority.is_some_and(|a| !ok(&a)) {
            return refuse(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this server answers to {} only",
                    app.hosts.first().map_or("", |h| h.as_str())
                ),
            );
        }
    }
    // Read-only: no endpoint takes a body.
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "requests carry no body: every endpoint is a GET",
        );
    }
    if req.uri().path().len() + req.uri().query().map_or(0, str::len) > 8192 {
        return refuse(StatusCode::URI_TOO_LONG, "the address is over 8192 bytes");
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn not_found(req: Request) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", super::clip(req.uri().path())),
    )
}

async fn read_only() -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "the explorer is read-only: only GET is answered",
    )
}

/// A refused request: its status and the line saying why.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, self.1)
    }
}

impl From<BadRequest> for Refusal {
    fn from(b: BadRequest) -> Self {
        Refusal(StatusCode::BAD_REQUEST, b.0)
    }
}

type Answer = std::result::Result<Response, Refusal>;

/// Runs `work` on the explorer off the async threads, one model call at a time.
async fn with<T: Send + 'static>(
    app: &App,
    work: impl FnOnce(&Explorer) -> std::result::Result<T, BadRequest> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    let explorer = app.explorer.clone();
    let done = tokio::task::spawn_blocking(move || {
        let e = explorer.lock().unwrap_or_else(|p| p.into_inner());
        work(&e)
    })
    .await;
    match done {
        Ok(r) => Ok(r?),
        Err(_) => Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed inside the server".into(),
        )),
    }
}

fn png(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], bytes).into_response()
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

type Q =
    std::result::Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;
type P = std::result::Result<Path<String>, axum::extract::rejection::PathRejection>;

/// The query's parameters, refusing any but `allowed`.
fn query(q: Q, allowed: &[&str]) -> std::result::Result<HashMap<String, String>, Refusal> {
    let Query(pairs) = q.map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut q = HashMap::new();
    for (k, v) in pairs {
        if q.contains_key(&k) {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("parameter '{}' is given twice", super::clip(&k)),
            ));
        }
        q.insert(k, v);
    }
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown parameter '{}' (this endpoint takes: {})",
                super::clip(k),
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    Ok(q)
}

fn path(p: P) -> std::result::Result<String, Refusal> {
    p.map(|Path(s)| s)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn info(State(app): State<App>, q: Q) -> Answer {
    query(q, &[])?;
    Ok(json(with(&app, |e| Ok(e.info())).await?))
}

async fn points(State(app): State<App>, q: Q) -> Answer {
    query(q, &[])?;
    Ok(json(with(&app, |e| Ok(e.points())).await?))
}

async fn item(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    query(q, &[])?;
    Ok(png(with(&app, move |e| e.item_png(&i)).await?))
}

async fn reconstruction(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    query(q, &[])?;
    Ok(png(with(&app, move |e| e.reconstruction_png(&i)).await?))
}

async fn code(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    query(q, &[])?;
    Ok(json(with(&app, move |e| e.code(&i)).await?))
}

async fn decode(State(app): State<App>, q: Q) -> Answer {
    let q = query(q, &["z", "class"])?;
    let work = move |e: &Explorer| {
        e.decode_png(
            q.get("z").map(String::as_str),
            q.get("class").map(String::as_str),
        )
    };
    Ok(png(with(&app, work).await?))
}
