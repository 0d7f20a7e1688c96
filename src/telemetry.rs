//! Logging: one JSON object a line on stderr (or human-readable lines), with
//! a stable `event` field that monitoring matches on. Addresses are masked
//! by the callers (`domain::mask_email`); secrets never reach a log call.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; `RUST_LOG` overrides `log.level`.
/// Calling it twice is harmless (the second call is ignored).
pub fn init(settings: &LogSettings) {
    // The scheduler crate logs its own bookkeeping at INFO; keep it to
    // warnings unless asked for explicitly.
    let configured = format!("{},tokio_cron_scheduler=warn", settings.level);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&configured))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}
