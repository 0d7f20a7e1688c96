//! The stop signal every long-running piece watches (SIGTERM, SIGINT): a
//! sweep starts no new email, a claimed one not yet sent is given back,
//! emails in flight finish and are recorded.

use tokio::sync::watch;

/// Tells running work to stop starting new emails: emails in flight
/// finish and are recorded.
#[derive(Clone)]
pub struct StopSignal(Option<watch::Receiver<bool>>);

impl StopSignal {
    pub fn never() -> Self {
        StopSignal(None)
    }

    pub fn new(rx: watch::Receiver<bool>) -> Self {
        StopSignal(Some(rx))
    }

    pub fn is_stopped(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once a stop is requested (never, for [`StopSignal::never`]).
    pub async fn wait(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                let _ = rx.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    }
}
