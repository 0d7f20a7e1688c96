//! Logging: one JSON object a line on stderr (or human-readable lines), with
//! a stable `event` field that monitoring matches on. The fields of the
//! spans an event happens in (`#[tracing::instrument]`) are written on the
//! event's line as top-level fields, so a unit of work records its
//! identifying fields once. Addresses are masked by the callers
//! (`domain::mask_email`); secrets never reach a log call.

use std::fmt;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; `RUST_LOG` overrides `log.level`.
/// Calling it twice is harmless (the second call is ignored).
pub fn init(settings: &LogSettings) {
    // The scheduler crate logs its own bookkeeping at INFO; keep it to
    // warnings unless asked for explicitly.
    // Postgres notices (e.g. "relation _sqlx_migrations already exists,
    // skipping" at every start) are not ours to report.
    let configured = format!(
        "{},tokio_cron_scheduler=warn,sqlx::postgres::notice=warn",
        settings.level
    );
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&configured))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}

/// One flat JSON object per event: `timestamp`, `level`, the event's
/// fields, then the fields of its spans (innermost first; an event's own
/// field wins over a span's of the same name), then `target`.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Utc::now()
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        event.record(&mut FieldsInto(&mut line));
        // Every line carries an `event` for log-based alerting: the lines
        // of libraries (the database driver, the HTTP server) are `library`,
        // with their target saying whose.
        line.entry("event").or_insert_with(|| "library".into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // The span's fields were formatted by `JsonFields`: an object.
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields.as_str()) {
                    for (k, v) in map {
                        line.entry(k).or_insert(v);
                    }
                }
            }
        }
        line.insert("target".into(), event.metadata().target().into());
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields as JSON values.
struct FieldsInto<'a>(&'a mut Map<String, Value>);

impl Visit for FieldsInto<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
