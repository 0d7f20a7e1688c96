//! `run`: the long-running service. A cron schedule (tokio-cron-scheduler)
//! ticks; ticks feed one sweep loop, so sweeps never overlap (a tick that
//! arrives while a sweep runs is skipped and logged). The HTTP API serves
//! alongside. SIGTERM or SIGINT stops new work, lets the emails in flight
//! finish and be recorded, and exits within the shutdown grace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::service::Verifier;
use crate::sweep::StopSignal;
use crate::{Error, Result};

/// How long shutdown waits for the sweep in progress and open requests.
/// It covers a delivery's final-write retries during a database outage
/// (`delivery::FINAL_WRITE_WINDOW`), so a stop never abandons the record of
/// an email the relay accepted; systemd's stop timeout (90 s) is above it.
/// With nothing in flight the daemon stops at once.
const SHUTDOWN_GRACE: Duration =
    Duration::from_secs(crate::delivery::FINAL_WRITE_WINDOW.as_secs() + 10);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(verifier: Verifier) -> Result<()> {
    let settings = verifier.settings.clone();
    let (stop_tx, stop_rx) = watch::channel(false);

    let listener = if settings.http.enabled {
        let listener = tokio::net::TcpListener::bind(&settings.http.listen)
            .await
            .map_err(|e| {
                Error::unavailable(format!(
                    "cannot listen on http.listen {}: {e}",
                    settings.http.listen
                ))
            })?;
        if settings.http.api_token.is_empty() {
            tracing::warn!(
                event = "api_disabled",
                "no http.api_token is configured: /v1 answers 401 to every request"
            );
        }
        Some(listener)
    } else {
        None
    };

    // Sweeps: cron ticks -> a channel of one -> the single sweep loop.
    let (tick_tx, tick_rx) = mpsc::channel::<()>(1);
    let busy = Arc::new(AtomicBool::new(false));
    let scheduler = schedule(&settings.schedule.sweep, tick_tx, busy.clone()).await?;
    let sweeper = tokio::spawn(sweep_loop(
        verifier.clone(),
        tick_rx,
        busy,
        StopSignal::new(stop_rx.clone()),
    ));

    // This process's claims stay its own while it beats (liveness.rs).
    let heartbeat = tokio::spawn(verifier.liveness.clone().run(
        verifier.store.clone(),
        verifier.clock.clone(),
        verifier.policy.clone(),
        StopSignal::new(stop_rx.clone()),
    ));
    let hooks = verifier
        .hooks()
        .cloned()
        .map(|h| tokio::spawn(h.run(StopSignal::new(stop_rx.clone()))));
    let server = listener.map(|listener| {
        let app = crate::api::router(verifier.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            // The peer address is evidence of who confirmed a link.
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(event = "http_failed", error = %e, "HTTP server stopped");
            }
        })
    });
    // The gauges by state and the last success, before the first sweep.
    if let Err(e) = crate::metrics::global().start(&verifier.store).await {
        tracing::warn!(event = "metrics_refresh_failed", error = %e,
            "cannot read the counts by state for /metrics; the next sweep retries");
    }
    let mail = match settings.smtp.transport {
        crate::config::MailTransport::Smtp => format!(
            "smtp://{}:{} ({:?})",
            settings.smtp.host, settings.smtp.port, settings.smtp.tls
        ),
        crate::config::MailTransport::File => {
            tracing::warn!(event = "mail_to_files", dir = %settings.smtp.file_dir,
                "smtp.transport = \"file\": messages are written as .eml files, nobody receives them");
            format!("file:{}", settings.smtp.file_dir)
        }
    };
    tracing::info!(event = "daemon_started", listen = %settings.http.listen, http = settings.http.enabled,
        schedule = %settings.schedule.sweep, backend = verifier.store.backend(), mail = %mail,
        "contact-verifier running");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = spawn_watchdog();

    wait_for_signal().await;
    tracing::info!(
        event = "daemon_stopping",
        "stop requested: finishing emails in flight"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;

    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = sweeper.await;
        let _ = heartbeat.await;
        if let Some(server) = server {
            let _ = server.await;
        }
        if let Some(hooks) = hooks {
            let _ = hooks.await;
        }
    })
    .await;
    if let Some(w) = watchdog {
        w.abort();
    }
    verifier.store.close().await;
    match finished {
        Ok(()) => tracing::info!(event = "daemon_stopped", "stopped cleanly"),
        Err(_) => tracing::warn!(event = "daemon_stopped", clean = false,
            "stopped before the work in flight finished; a claimed email may be sent again after its lease"),
    }
    Ok(())
}

async fn schedule(
    cron: &str,
    ticks: mpsc::Sender<()>,
    busy: Arc<AtomicBool>,
) -> Result<JobScheduler> {
    let scheduler_error = |e: tokio_cron_scheduler::JobSchedulerError| {
        Error::internal(format!("cannot start the scheduler: {e}"))
    };
    let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
    let job = Job::new_async(cron, move |_, _| {
        let ticks = ticks.clone();
        let busy = busy.clone();
        Box::pin(async move {
            // The previous sweep is still running: skip this tick rather than
            // queue sweeps behind a slow one.
            if busy.load(Ordering::SeqCst) || ticks.try_send(()).is_err() {
                tracing::warn!(
                    event = "sweep_skipped",
                    "the previous sweep is still running; skipping this tick"
                );
            }
        })
    })
    .map_err(|e| Error::config(format!("schedule.sweep: {e}")))?;
    scheduler.add(job).await.map_err(scheduler_error)?;
    scheduler.start().await.map_err(scheduler_error)?;
    Ok(scheduler)
}

async fn sweep_loop(
    verifier: Verifier,
    mut ticks: mpsc::Receiver<()>,
    busy: Arc<AtomicBool>,
    stop: StopSignal,
) {
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            tick = ticks.recv() => {
                if tick.is_none() || stop.is_stopped() {
                    break;
                }
                busy.store(true, Ordering::SeqCst);
                sweep_once(&verifier, &stop).await;
                busy.store(false, Ordering::SeqCst);
            }
            _ = stopped.wait() => break,
        }
    }
}

/// One scheduled sweep: counted in the metrics, the gauges by state
/// refreshed after it, and a failure logged as `sweep_failed` (ERROR), which
/// log-based alerting matches.
async fn sweep_once(verifier: &Verifier, stop: &StopSignal) {
    let started = std::time::Instant::now();
    let result = verifier.sweep(false, stop).await;
    let metrics = crate::metrics::global();
    metrics.sweep(
        result.is_ok(),
        started.elapsed(),
        verifier.now().timestamp(),
    );
    match result {
        Ok(_) => {
            if let Err(e) = metrics.refresh(&verifier.store).await {
                tracing::warn!(event = "metrics_refresh_failed", error = %e,
                    "cannot read the counts by state for /metrics; the next sweep retries");
            }
        }
        Err(e) => {
            if e.code == crate::ErrorCode::Unavailable {
                metrics.database(false);
            }
            // The database or relay went away: log and wait for the next
            // tick; the daemon keeps running.
            tracing::error!(event = "sweep_failed", error_code = e.code.as_str(), error = %e,
                "sweep failed; the next tick retries");
        }
    }
}

/// Pings systemd's watchdog at half its interval while the runtime is alive.
fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let usec = watchdog_usec()?;
    let every = Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            interval.tick().await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

/// The watchdog interval systemd asks for, as libsystemd's
/// sd_watchdog_enabled() reads it: `WATCHDOG_USEC`, unless `WATCHDOG_PID`
/// names another process.
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then_some(usec)
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
