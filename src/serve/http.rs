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

/// Serves `explorer` on `host:port` (port 0: any free port) until Ctrl-C or SIGTERM; `ready` is told the
/// address once the server listens.
pub fn serve(
    explorer: Explorer,
    host: IpAddr,
    port: u16,
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
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| {
                Error::Config(format!(
                    "cannot listen on {}: {e}; pick another --port (or --port 0 for any free one)",
                    SocketAddr::new(host, port)
                ))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
        let hosts = if host.is_loopback() {
            let p = addr.port();
            vec![
                format!("127.0.0.1:{p}"),
                format!("localhost:{p}"),
                format!("[::1]:{p}"),
            ]
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
        axum::serve(listener, router)
            .with_graceful_shutdown(stop())
            .await
            .map_err(|e| Error::Config(format!("the server stopped: {e}")))
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
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !app.hosts.iter().any(|h| h == host) {
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
    let path: String = req.uri().path().chars().take(80).collect();
    refuse(StatusCode::NOT_FOUND, format!("no such page: {path}"))
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
    std::result::Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;
type P = std::result::Result<Path<String>, axum::extract::rejection::PathRejection>;

/// The query's parameters, refusing any but `allowed`.
fn query(q: Q, allowed: &[&str]) -> std::result::Result<HashMap<String, String>, Refusal> {
    let Query(q) = q.map_err(|e| Refusal(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown parameter '{}' (this endpoint takes: {})",
                k.chars().take(24).collect::<String>(),
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
