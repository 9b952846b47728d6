//! `/metrics` (Prometheus text format) and `/health`, over HTTP/1.1 served
//! by hyper. One request per connection.
//!
//! Bounds: at most [`MAX_CLIENTS`] connections at once; a request head
//! must arrive within [`HEADER_TIMEOUT`] and the whole exchange end within
//! [`REQUEST_TIMEOUT`]. The accept loop never waits for a slot: when all
//! are held, the connection that has waited longest without sending its
//! request is closed to make room, so idle clients cannot keep a health
//! check out (a client that opens connections faster than a health check
//! sends its request still can: serve it on a private address, which it
//! needs anyway, having no authentication).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use libp2p::metrics::Registry;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Connections served at once (our choice: Prometheus scrapes with one
/// connection; room for a second scraper, health checks and a person with
/// curl).
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its request and take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The content type of the Prometheus text exposition format 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Our metrics (from the `metrics` facade's Prometheus recorder) followed by
/// libp2p's (from its `prometheus-client` registry, which writes
/// OpenMetrics), as one page in the Prometheus text format: OpenMetrics'
/// counter families (`# TYPE x counter` over samples `x_total`) are renamed
/// to their samples' names, `info` families become gauges, and the
/// OpenMetrics-only `# UNIT` lines and `# EOF` are left out.
pub fn render(prometheus: Option<&PrometheusHandle>, registry: &Registry) -> String {
    let mut page = prometheus.map(PrometheusHandle::render).unwrap_or_default();
    if !page.is_empty() && !page.ends_with('\n') {
        page.push('\n');
    }
    let mut libp2p = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut libp2p, registry).is_ok() {
        page.push_str(&openmetrics_to_prometheus_text(&libp2p));
    }
    page
}

/// Rewrites an OpenMetrics text page (as prometheus-client writes it) in
/// the Prometheus text format; see [`render`].
pub fn openmetrics_to_prometheus_text(page: &str) -> String {
    // Families whose metadata names must change, by their OpenMetrics name.
    let mut renamed: Vec<(String, String)> = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                match kind {
                    "counter" if !name.ends_with("_total") => {
                        renamed.push((name.to_owned(), format!("{name}_total")));
                    }
                    "info" => renamed.push((name.to_owned(), format!("{name}_info"))),
                    _ => {}
                }
            }
        }
    }
    let mut out = String::with_capacity(page.len());
    for line in page.lines() {
        if line.starts_with("# UNIT") || line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# TYPE ")
            .map(|r| ("# TYPE ", r))
            .or_else(|| line.strip_prefix("# HELP ").map(|r| ("# HELP ", r)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = renamed
                .iter()
                .find(|(from, _)| from == name)
                .map_or(name, |(_, to)| to.as_str());
            let tail = if prefix == "# TYPE " && tail == "info" {
                "gauge"
            } else {
                tail
            };
            out.push_str(prefix);
            out.push_str(name);
            if !tail.is_empty() {
                out.push(' ');
                out.push_str(tail);
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Connection slots; see the module docs.
#[derive(Default)]
struct Slots {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    held: usize,
    next_id: u64,
    /// Connections that have not sent their request yet, oldest first.
    waiting: VecDeque<(u64, Arc<Eviction>)>,
}

/// Tells a connection its slot went to a newcomer.
#[derive(Default)]
struct Eviction {
    notify: Notify,
    happened: AtomicBool,
}

/// One connection's slot; freed on drop unless it was handed on.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    eviction: Arc<Eviction>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection: a free one, or the one of the
    /// connection waiting longest for its request, which is told to close.
    /// `None` when every slot is answering a request.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut s = self.lock();
        if s.held >= MAX_CLIENTS {
            let (_, oldest) = s.waiting.pop_front()?;
            oldest.happened.store(true, Ordering::Release);
            oldest.notify.notify_one();
            metrics::counter!("multidriver_rendezvous_http_evicted_total").increment(1);
        } else {
            s.held += 1;
        }
        let id = s.next_id;
        s.next_id += 1;
        let eviction = Arc::new(Eviction::default());
        s.waiting.push_back((id, Arc::clone(&eviction)));
        Some(Slot {
            slots: Arc::clone(self),
            id,
            eviction,
        })
    }

    /// Slots held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }
}

impl Slot {
    /// The request arrived: no longer the first to be closed for room.
    fn answering(&self) {
        self.slots.lock().waiting.retain(|(id, _)| *id != self.id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        s.waiting.retain(|(id, _)| *id != self.id);
        // An evicted connection's slot already belongs to the newcomer.
        if !self.eviction.happened.load(Ordering::Acquire) {
            s.held = s.held.saturating_sub(1);
        }
    }
}

/// Serves until the task is dropped. `render` makes the `/metrics` page;
/// `health` tells the store's state for `/health`: `Ok` is answered
/// `200 ok`, `Err` `503 unavailable`, each with the store's line.
pub async fn serve<F, H>(listener: TcpListener, render: F, health: H)
where
    F: Fn() -> String + Send + Sync + 'static,
    H: Fn() -> Result<String, String> + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let health = Arc::new(health);
    let slots = Arc::new(Slots::default());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of
                // spinning.
                tracing::warn!(target: "multidriver_rendezvous", "metrics accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = slots.admit() else {
            // Every slot is answering a request (each ends within
            // REQUEST_TIMEOUT): this one is closed unanswered.
            continue;
        };
        let render = Arc::clone(&render);
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let slot = Arc::new(slot);
            let in_service = Arc::clone(&slot);
            let service = service_fn(move |req: Request<Incoming>| {
                in_service.answering();
                let response = answer(&req, &*render, &*health);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let eviction = Arc::clone(&slot.eviction);
            tokio::select! {
                _ = connection => {}
                () = eviction.notify.notified() => {}
                () = tokio::time::sleep(REQUEST_TIMEOUT) => {}
            }
            drop(slot);
        });
    }
}

/// The answer to one request.
fn answer(
    req: &Request<Incoming>,
    render: &(dyn Fn() -> String + Sync),
    health: &(dyn Fn() -> Result<String, String> + Sync),
) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, PROMETHEUS_TEXT, render()),
        (&Method::GET, "/health") => match health() {
            Ok(store) => (StatusCode::OK, text, format!("ok\nstore: {store}\n")),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                format!("unavailable\nstore: {why}\n"),
            ),
        },
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            text,
            "not found: try /metrics or /health\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            "only GET is served\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_closes_the_longest_waiting_connection_for_a_newcomer() {
        let slots = Arc::new(Slots::default());
        let idle: Vec<Slot> = (0..MAX_CLIENTS).map(|_| slots.admit().unwrap()).collect();
        assert_eq!(slots.held(), MAX_CLIENTS);
        // The newcomer takes the oldest idle connection's slot.
        let newcomer = slots.admit().unwrap();
        assert!(idle[0].eviction.happened.load(Ordering::Acquire));
        assert!(!idle[1].eviction.happened.load(Ordering::Acquire));
        assert_eq!(slots.held(), MAX_CLIENTS);
        // Every slot answering a request: no room is made.
        newcomer.answering();
        for s in &idle[1..] {
            s.answering();
        }
        assert!(slots.admit().is_none());
        // Dropping the evicted one frees nothing; dropping another frees one.
        drop(idle);
        assert_eq!(slots.held(), 1);
        drop(newcomer);
        assert_eq!(slots.held(), 0);
    }

    #[test]
    fn openmetrics_counters_and_info_become_prometheus_text() {
        let page = "# HELP libp2p_x Things.\n# TYPE libp2p_x counter\n# UNIT libp2p_x bytes\nlibp2p_x_total 3\n\
                    # HELP libp2p_v Version.\n# TYPE libp2p_v info\nlibp2p_v_info{v=\"1\"} 1\n\
                    # TYPE libp2p_g gauge\nlibp2p_g 2\n# EOF\n";
        let text = openmetrics_to_prometheus_text(page);
        assert_eq!(
            text,
            "# HELP libp2p_x_total Things.\n# TYPE libp2p_x_total counter\nlibp2p_x_total 3\n\
             # HELP libp2p_v_info Version.\n# TYPE libp2p_v_info gauge\nlibp2p_v_info{v=\"1\"} 1\n\
             # TYPE libp2p_g gauge\nlibp2p_g 2\n"
        );
    }
}
