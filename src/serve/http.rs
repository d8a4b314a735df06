//! The explorer on the network: a small axum server serving the page embedded in the binary and the
//! explorer's answers. It changes nothing but which checkpoint it shows (`POST /api/reload`). Every request is
//! checked; a bad one gets a 4xx with a line saying why.

use super::BadRequest;
use super::hosts::{Allowed, Host};
use super::live::{Live, Shown};
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    live: Arc<Live>,
    /// Held by each model call, so they run one at a time.
    turn: Arc<Mutex<()>>,
    /// Host headers accepted, so a web page elsewhere cannot reach the server through a rebound DNS name.
    hosts: Arc<Allowed>,
}

/// The address a connection was made to, for the Host check.
#[derive(Clone, Copy)]
struct Local(IpAddr);

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
        use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, InvalidInput, PermissionDenied};
        // The advice follows the cause: the address is not this machine's, or the port is not ours to take.
        let fix = match e.kind() {
            // A link-local IPv6 address (fe80::…) needs its interface, which an address alone does not name.
            InvalidInput => format!(
                "--host {host} cannot be listened on as given; give another address of this machine (127.0.0.1: this machine only, 0.0.0.0: every interface)"
            ),
            AddrNotAvailable => format!(
                "--host {host} is not an address of this machine; give one of its own (127.0.0.1: this machine only, 0.0.0.0: every interface)"
            ),
            PermissionDenied if port < 1024 => {
                "ports below 1024 need administrator rights; pick another --port (or --port 0 for any free one)".into()
            }
            AddrInUse => "pick another --port (or --port 0 for any free one)".into(),
            _ => "pick another --port (or --port 0 for any free one), or another --host".into(),
        };
        Error::Config(format!(
            "cannot listen on {}: {e}; {fix}",
            SocketAddr::new(host, port)
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("cannot listen: {e}")))?;
    Ok(listener)
}

/// Serves `live` on `listener` until Ctrl-C or SIGTERM, answering to this machine's names and addresses and
/// to `extra_hosts`; `ready` is told the address once it listens.
///
/// Each connection carries one request (no keep-alive), must send its headers within `HEADER_TIMEOUT` and
/// finish within `CONNECTION_TIMEOUT`, and at most `MAX_CONNECTIONS` are served at once: clients that
/// open connections and send nothing cannot lock others out or keep the server from stopping.
pub fn serve(
    live: Live,
    extra_hosts: &[(Host, Option<u16>)],
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
        let router = routes(App {
            live: Arc::new(live),
            turn: Arc::new(Mutex::new(())),
            hosts: Arc::new(Allowed::for_bind(addr, extra_hosts)),
        });
        ready(addr);
        accept(listener, router).await;
        Ok(())
    })
}

/// The page's files and the explorer's endpoints, behind the [`guard`].
fn routes(app: App) -> Router {
    Router::new()
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
        .route("/api/sample", get(sample))
        .route("/api/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(read_only)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Serves connections on `listener` until Ctrl-C or SIGTERM, within the limits [`serve`] describes.
async fn accept(listener: tokio::net::TcpListener, router: Router) {
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
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        // Each request learns which address its connection was made to, for the Host check.
        let tower = hyper_util::service::TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |mut req| {
            req.extensions_mut().insert(Local(local.ip()));
            hyper::service::Service::call(&tower, req)
        });
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

/// Checks where a request comes from and that it carries no body, and sets the headers every answer carries.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let mut res = match refusal(&app, &req) {
        Some(r) => r.into_response(),
        None => next.run(req).await,
    };
    let h = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        // Another origin's page may not even embed an answer (as an <img>, say, to learn from its load or
        // error event whether an image index exists).
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// Why a request is refused before any endpoint sees it, if it is.
fn refusal(app: &App, req: &Request) -> Option<Refusal> {
    let local = req.extensions().get::<Local>().map(|l| l.0);
    if let Some(r) = wrong_host(&app.hosts, req, local) {
        return Some(r);
    }
    if let Some(why) = cross_origin(&app.hosts, req, local) {
        return Some(Refusal(StatusCode::FORBIDDEN, why));
    }
    // No endpoint takes a body (the one POST, a reload, has none).
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return Some(Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "requests carry no body: every endpoint is a GET but POST /api/reload, which takes none".into(),
        ));
    }
    if req.uri().path().len() + req.uri().query().map_or(0, str::len) > 8192 {
        return Some(Refusal(
            StatusCode::URI_TOO_LONG,
            "the address is over 8192 bytes".into(),
        ));
    }
    None
}

/// Why the Host a request names (its header, and an absolute address's authority) is not this server's.
fn wrong_host(hosts: &Allowed, req: &Request, local: Option<IpAddr>) -> Option<Refusal> {
    let mut given = req.headers().get_all(header::HOST).iter();
    let first = given.next();
    if given.next().is_some() {
        return Some(Refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "a request names one Host, not several".into(),
        ));
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    let host = match (first, authority) {
        (Some(h), _) => h.to_str().unwrap_or(""),
        (None, Some(a)) => a,
        // HTTP/1.0 has no Host header; browsers, the clients a rebinding attack uses, always send one.
        (None, None) if req.version() <= Version::HTTP_10 => return None,
        (None, None) => {
            return Some(Refusal(
                StatusCode::BAD_REQUEST,
                "an HTTP/1.1 request names its Host".into(),
            ));
        }
    };
    let admitted = |h: &str| hosts.admits(h, local);
    let wrong = [Some(host), authority]
        .into_iter()
        .flatten()
        .find(|h| !admitted(h))?;
    Some(Refusal(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer to the name '{}': open the address elbo serve printed, or start it \
             with --allow-host NAME to add a name of yours",
            super::clip(wrong)
        ),
    ))
}

/// Why a request made by a page of another origin is refused: only the explorer's own page, and the user
/// opening it, may use it. Browsers say where a request comes from in `Sec-Fetch-Site` (and `Origin`); a page
/// on another site, or another port of this one, is refused, except for opening the page itself by a link.
fn cross_origin(hosts: &Allowed, req: &Request, local: Option<IpAddr>) -> Option<String> {
    let h = req.headers();
    // Browsers send each of these once; a second one is no browser's, and checking only the first would let it
    // pass, as for Host.
    for name in ["sec-fetch-site", "origin"] {
        if h.get_all(name).iter().nth(1).is_some() {
            return Some(format!("a request sends one {name} header, not several"));
        }
    }
    let value = |name: &str| h.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = value("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
        && !opens_the_page(req.method(), req.uri().path(), h)
    {
        return Some(format!(
            "a page on another origin (Sec-Fetch-Site: {}) may not use the explorer; open it at its own address",
            super::clip(site)
        ));
    }
    // Over https too: behind a reverse proxy given with --allow-host NAME:443.
    if let Some(origin) = value("origin")
        && !hosts.admits_origin(origin, local)
    {
        return Some(format!(
            "a page on another origin ({}) may not use the explorer; open it at its own address",
            super::clip(origin)
        ));
    }
    None
}

/// Whether a request is a link to the page being followed: the page alone tells nothing, and once open it
/// is its own origin.
fn opens_the_page(method: &Method, path: &str, h: &HeaderMap) -> bool {
    let is = |name: &str, want: &str| h.get(name).is_some_and(|v| v == want);
    method == Method::GET
        && path == "/"
        && is("sec-fetch-mode", "navigate")
        && is("sec-fetch-dest", "document")
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
        "the explorer is read-only: every endpoint answers GET, but /api/reload, which answers POST",
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

/// Runs `work` off the async threads; a panic in it is a 500.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, Refusal> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(_) => Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed inside the server".into(),
        )),
    }
}

/// Runs `work` on the shown explorer off the async threads, one model call at a time.
async fn with<T: Send + 'static>(
    app: &App,
    work: impl FnOnce(&Shown) -> std::result::Result<T, BadRequest> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    let (live, turn) = (app.live.clone(), app.turn.clone());
    blocking(move || {
        let _turn = turn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(work(&live.current())?)
    })
    .await
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
    let live = app.live.clone();
    Ok(json(blocking(move || Ok(live.info())).await?))
}

/// Shows the run's newest checkpoint; the page asks when `info` says one is saved.
async fn reload(State(app): State<App>, q: Q) -> Answer {
    query(q, &[])?;
    let live = app.live.clone();
    let done = blocking(move || {
        live.reload().map_err(|n| {
            let status = if n.busy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::CONFLICT
            };
            Refusal(status, n.why)
        })
    });
    Ok(json(done.await?))
}

async fn points(State(app): State<App>, q: Q) -> Answer {
    query(q, &[])?;
    Ok(json(with(&app, |s| Ok(s.explorer.points())).await?))
}

async fn item(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    query(q, &[])?;
    Ok(png(with(&app, move |s| s.explorer.item_png(&i)).await?))
}

/// A reconstruction by the shown weights; `w`, when given, must name them (the page gives it so an answer
/// by other weights is never drawn as if it were by the ones it shows).
async fn reconstruction(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    let q = query(q, &["w"])?;
    if let Some(w) = q
        .get("w")
        .filter(|w| w.len() != 32 || !w.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(BadRequest(format!(
            "w '{}' is not a weights tag (the 32 hex digits /api/info gives as weights)",
            super::clip(w)
        ))
        .into());
    }
    let work = move |s: &Shown| {
        if let Some(w) = q
            .get("w")
            .filter(|w| !w.eq_ignore_ascii_case(&s.stamp.checksum))
        {
            return Err(BadRequest(format!(
                "weights '{}' are no longer shown (now epoch {}); reload the page",
                super::clip(w),
                s.explorer.epoch()
            )));
        }
        s.explorer.reconstruction_png(&i)
    };
    Ok(png(with(&app, work).await?))
}

async fn code(State(app): State<App>, p: P, q: Q) -> Answer {
    let i = path(p)?;
    query(q, &[])?;
    Ok(json(with(&app, move |s| s.explorer.code(&i)).await?))
}

async fn sample(State(app): State<App>, q: Q) -> Answer {
    let q = query(q, &["seed"])?;
    let work = move |s: &Shown| s.explorer.prior_sample(q.get("seed").map(String::as_str));
    Ok(json(with(&app, work).await?))
}

async fn decode(State(app): State<App>, q: Q) -> Answer {
    let q = query(q, &["z", "class"])?;
    let work = move |s: &Shown| {
        s.explorer.decode_png(
            q.get("z").map(String::as_str),
            q.get("class").map(String::as_str),
        )
    };
    Ok(png(with(&app, work).await?))
}
