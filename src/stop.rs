//! A request to stop a long job (the periodic check, rebuild, a backfill)
//! between two of its steps, so that shutdown never waits for a whole scan:
//! tokio-util's `CancellationToken`. A fresh one is never cancelled unless
//! someone cancels it (one run of a command, a benchmark).

pub use tokio_util::sync::CancellationToken as Stop;

/// Cancelled on Ctrl-C (SIGINT): a command finishes its current step and
/// says how far it got.
pub fn on_ctrl_c() -> Stop {
    let stop = Stop::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    stop
}
