//! A request to stop a long job (the periodic check, rebuild) between two of
//! its steps, so that shutdown never waits for a whole scan.

use tokio::sync::watch;

/// Whether a stop was requested. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct Stop(Option<watch::Receiver<bool>>);

impl Stop {
    /// A job that nothing stops (one run of a command, a benchmark).
    pub fn never() -> Stop {
        Stop(None)
    }

    /// Stops on Ctrl-C (SIGINT): a command finishes its current step and
    /// says how far it got.
    pub fn on_ctrl_c() -> Stop {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = sender.send(true);
            }
        });
        Stop(Some(receiver))
    }

    pub fn is_requested(&self) -> bool {
        self.0.as_ref().is_some_and(|r| *r.borrow())
    }

    /// Completes when a stop is requested, or when whoever could request one
    /// is gone; never for [`Stop::never`].
    pub async fn requested(&mut self) {
        let Some(receiver) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        while !*receiver.borrow_and_update() {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }
}

impl From<watch::Receiver<bool>> for Stop {
    fn from(receiver: watch::Receiver<bool>) -> Stop {
        Stop(Some(receiver))
    }
}
