//! A small HTTP/1.1 endpoint for `/metrics` (Prometheus text format) and
//! `/health`. One request per connection; at most [`MAX_CLIENTS`] at once,
//! further connections wait in the listen backlog; a connection that has
//! not sent its request and taken its answer within [`REQUEST_TIMEOUT`],
//! or whose request head is larger than [`MAX_REQUEST_BYTES`], is dropped.
//! Idle connections can hold the slots for that long, so serve it on a
//! private address (it has no authentication either).

use std::sync::Arc;
use std::time::Duration;

use libp2p::metrics::Registry;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Scrapers served at once (our choice: Prometheus scrapes with one
/// connection; a few allow a second scraper and a person with curl).
pub const MAX_CLIENTS: usize = 16;
/// Largest request head read.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a client may take to send its request and take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Our metrics (from the `metrics` facade's Prometheus recorder) followed by
/// libp2p's (from its `prometheus-client` registry), as one Prometheus
/// text-format page. The OpenMetrics `# EOF` terminator is left out so the
/// page stays valid text format.
pub fn render(prometheus: Option<&PrometheusHandle>, registry: &Registry) -> String {
    let mut page = prometheus.map(PrometheusHandle::render).unwrap_or_default();
    if !page.is_empty() && !page.ends_with('\n') {
        page.push('\n');
    }
    let mut libp2p = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut libp2p, registry).is_ok() {
        for line in libp2p.lines() {
            // `# UNIT` lines are OpenMetrics only.
            if !line.starts_with("# UNIT") {
                page.push_str(line);
                page.push('\n');
            }
        }
    }
    page
}

/// Serves until the task is dropped.
pub async fn serve<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of
                // spinning.
                tracing::warn!(target: "multidriver_rendezvous", "metrics accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(&mut stream, &*render)).await;
        });
    }
}

/// Reads one request and writes its answer.
async fn answer(stream: &mut tokio::net::TcpStream, render: &(dyn Fn() -> String + Sync)) {
    let Ok(Some((method, path))) = read_head(stream).await else {
        return;
    };
    let text = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        ("GET", "/health") => ("200 OK", text, "ok\n".to_owned()),
        ("GET", _) => (
            "404 Not Found",
            text,
            "not found: try /metrics or /health\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            text,
            "only GET is served\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads a request head: its method and path (query dropped), or `None`
/// when it is too large or the connection ends first.
async fn read_head(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    Ok(match (parts.next(), parts.next()) {
        (Some(method), Some(path)) => Some((
            method.to_owned(),
            path.split('?').next().unwrap_or(path).to_owned(),
        )),
        _ => None,
    })
}
