//! The log bridge: the library's `tracing` output to logcat on Android,
//! to os_log on iOS and macOS, to standard error elsewhere, and to a
//! host's [`LogSink`] when it gives one, at a level the host sets.
//!
//! Nothing is installed until the host calls [`init_logging`]: an app that
//! has its own `tracing` subscriber keeps it.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::MobileError;
use crate::types::LogLevel;

/// The tag (Android) and subsystem (Apple) the bridge logs under.
pub const LOG_TAG: &str = "multidriver";

/// Where log records go besides the platform's log: implemented by the
/// host (to show them in a debug screen, or to forward them to its own
/// logger). Called on the thread that logged; must return promptly.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One record: its level, its target (the Rust module), and its
    /// message with its fields.
    fn log(&self, level: LogLevel, target: String, message: String);
}

type Handle = reload::Handle<LevelFilter, tracing_subscriber::Registry>;

static INSTALLED: OnceLock<Handle> = OnceLock::new();
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs the log bridge as the process's global `tracing` subscriber,
/// at `level`, also forwarding to `sink` if given. A second call changes
/// only the level (the sink stays the first call's).
///
/// # Errors
/// [`MobileError::Logging`] when another global subscriber is installed
/// already (the app's own): nothing changes then.
#[uniffi::export]
pub fn init_logging(level: LogLevel, sink: Option<Arc<dyn LogSink>>) -> Result<(), MobileError> {
    let _one_at_a_time = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if INSTALLED.get().is_some() {
        return set_log_level(level);
    }
    let (filter, handle) = reload::Layer::new(LevelFilter::from(level));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(sink.map(|sink| SinkLayer { sink }))
        .with(platform_layer()?);
    registry.try_init().map_err(|e| MobileError::Logging {
        reason: format!("another global tracing subscriber is installed: {e}"),
    })?;
    // Only this function sets it, under the lock: it is empty here.
    let _ = INSTALLED.set(handle);
    Ok(())
}

/// Changes the bridge's level.
///
/// # Errors
/// [`MobileError::Logging`] before [`init_logging`].
#[uniffi::export]
pub fn set_log_level(level: LogLevel) -> Result<(), MobileError> {
    let handle = INSTALLED.get().ok_or_else(|| MobileError::Logging {
        reason: "the log bridge is not installed: call init_logging first".to_owned(),
    })?;
    handle
        .modify(|f| *f = LevelFilter::from(level))
        .map_err(|e| MobileError::Logging {
            reason: e.to_string(),
        })
}

#[cfg(target_os = "android")]
fn platform_layer<S>() -> Result<Box<dyn Layer<S> + Send + Sync>, MobileError>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Ok(Box::new(paranoid_android::layer(LOG_TAG)))
}

#[cfg(any(target_os = "ios", target_os = "macos"))]
fn platform_layer<S>() -> Result<Box<dyn Layer<S> + Send + Sync>, MobileError>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Ok(Box::new(tracing_oslog::OsLogger::new(
        "org.multidriver",
        LOG_TAG,
    )))
}

#[cfg(not(any(target_os = "android", target_os = "ios", target_os = "macos")))]
fn platform_layer<S>() -> Result<Box<dyn Layer<S> + Send + Sync>, MobileError>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Ok(Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false),
    ))
}

struct SinkLayer {
    sink: Arc<dyn LogSink>,
}

/// The message and the other fields of one event, as one line.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        self.sink.log(level, meta.target().to_owned(), line.message);
    }
}
