//! `GET /metrics` over HTTP/1.1 with hyper (already built for reqwest, so no new crate):
//! the latest rendering, OpenMetrics unless the scraper asks only for the 0.0.4 text format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::encode::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use super::sampler::{Latest, Sampler};
use crate::config::Config;
use crate::workspace::Workspace;

/// At most this many connections at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;

/// Binds `addr`, or says why not in words.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    use std::io::ErrorKind;
    std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the port is in use (another exporter or program listens there; choose \
             another port with --listen or [metrics] listen)"
        ),
        ErrorKind::AddrNotAvailable => format!("cannot listen on {addr}: this machine has no such address"),
        ErrorKind::PermissionDenied => {
            format!("cannot listen on {addr}: permission denied (ports below 1024 need root; use 9464)")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    })
}

/// Which format a request's `Accept` header asks for: OpenMetrics unless it names only
/// `text/plain` (Prometheus's 0.0.4 text format).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    let types: Vec<&str> =
        accept.split(',').map(|t| t.split(';').next().unwrap_or("").trim()).filter(|t| !t.is_empty()).collect();
    if types.iter().any(|t| t.eq_ignore_ascii_case("application/openmetrics-text")) {
        return true;
    }
    !types.iter().any(|t| t.eq_ignore_ascii_case("text/plain"))
}

/// The answer to one request.
pub fn respond(method: &Method, path: &str, accept: Option<&str>, latest: &Latest) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap_or_default()
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {}
        "/" => return plain(StatusCode::OK, "opsconsole exporter: the metrics are at /metrics\n"),
        _ => return plain(StatusCode::NOT_FOUND, "not found: the metrics are at /metrics\n"),
    }
    let Some(e) = latest.get() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the first sample is being taken; try again in a moment\n");
    };
    let (body, ct) = if wants_openmetrics(accept) {
        (e.openmetrics.clone(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (e.text.clone(), TEXT_CONTENT_TYPE)
    };
    let body = if method == Method::HEAD { Bytes::new() } else { body };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .body(Full::new(body))
        .unwrap_or_default()
}

/// Serves `/metrics` from `latest` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, latest: Latest) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("metrics: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
                let r = respond(req.method(), req.uri().path(), accept, &latest);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            // A scraper keeps its connection open between scrapes; a silent one is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(300), conn).await;
            drop(permit);
        });
    }
}

/// Samples and serves on `listener` until the task is dropped: the first sample is taken
/// before the first request is answered.
pub async fn run(ws: Workspace, cfg: Config, listener: std::net::TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let latest = Latest::default();
    let mut sampler = Sampler::new(ws, cfg);
    let (sampler, first) = tokio::task::spawn_blocking(move || {
        let (_, e) = sampler.sample();
        (sampler, e)
    })
    .await
    .map_err(std::io::Error::other)?;
    latest.set(first);
    let sampling = tokio::spawn({
        let latest = latest.clone();
        async move {
            // The first tick fires at once: skip it, the first sample was just taken.
            let every = Duration::from_millis(sampler.config().metrics.sample_ms);
            tokio::time::sleep(every).await;
            sampler.run(latest).await
        }
    });
    serve(listener, latest).await;
    sampling.abort();
    Ok(())
}

/// Serves the exporter on its own thread (and runtime) beside a daemon or the console, so
/// neither's loop ever waits on it. The thread ends with the process.
pub fn spawn_thread(ws: Workspace, cfg: Config, listener: std::net::TcpListener) -> std::io::Result<()> {
    on_own_thread(move || async move {
        if let Err(e) = run(ws, cfg, listener).await {
            tracing::error!("metrics: {e}");
        }
    })
}

/// Runs the future `make` builds on a thread named `metrics` with a runtime of its own
/// (built there, so the future may hold the thread's tokio types).
pub(super) fn on_own_thread<F, Fut>(make: F) -> std::io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new().name("metrics".into()).spawn(
        move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(make()),
            Err(e) => tracing::error!("metrics: cannot start a runtime: {e}"),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(None));
        assert!(wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")));
    }

    #[test]
    fn responses() {
        let latest = Latest::default();
        let r = respond(&Method::GET, "/metrics", None, &latest);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        latest.set(super::super::Exposition {
            openmetrics: Bytes::from_static(b"a 1\n# EOF\n"),
            text: Bytes::from_static(b"a 1\n"),
        });
        let r = respond(&Method::GET, "/metrics", None, &latest);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        let r = respond(&Method::GET, "/metrics", Some("text/plain"), &latest);
        assert_eq!(r.headers()[header::CONTENT_TYPE], TEXT_CONTENT_TYPE);
        assert_eq!(respond(&Method::POST, "/metrics", None, &latest).status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(respond(&Method::GET, "/secrets", None, &latest).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn port_in_use_is_said_in_words() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = bind(held.local_addr().unwrap()).unwrap_err();
        assert!(e.contains("port is in use"), "{e}");
    }
}
