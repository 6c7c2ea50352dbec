//! `events`: the webhook endpoints' deliveries from the command line. Replay
//! and resend queue deliveries in the database; the running service sends
//! them (any instance, in each item's order).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Settings;
use crate::model::Timestamp;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub action: EventsAction,
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Deliver again every event since a moment that the endpoint takes
    /// (those delivered already too), in each item's order.
    Replay {
        /// The endpoint or stream, by its `name` in `[[events.endpoints]]` or `[[events.streams]]`.
        #[arg(long)]
        endpoint: String,
        /// From (inclusive): milliseconds or RFC 3339.
        #[arg(long, value_parser = super::appstore::moment)]
        since: i64,
    },
    /// Deliver one event again.
    Resend {
        /// The endpoint or stream, by its `name` in `[[events.endpoints]]` or `[[events.streams]]`.
        #[arg(long)]
        endpoint: String,
        /// The event's id (`evt_...`).
        #[arg(long)]
        event_id: String,
    },
    /// Send to an endpoint again after it answered 410 Gone.
    Enable {
        /// The endpoint or stream, by its `name` in `[[events.endpoints]]` or `[[events.streams]]`.
        #[arg(long)]
        endpoint: String,
    },
    /// Each endpoint's health: last success, failing since, pending.
    Endpoints,
}

fn moment(at: Option<i64>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| Timestamp::from_millis(at).to_string(),
    )
}

pub(super) async fn events(settings: Settings, action: EventsAction) -> u8 {
    let named = match &action {
        EventsAction::Replay { endpoint: name, .. }
        | EventsAction::Resend { endpoint: name, .. }
        | EventsAction::Enable { endpoint: name } => Some(name.as_str()),
        EventsAction::Endpoints => None,
    };
    if let Some(name) = named {
        if settings.events.filter(name).is_none() {
            eprintln!("error: no [[events.endpoints]] or [[events.streams]] is named {name:?}");
            return EXIT_USAGE;
        }
    }
    let store = match Store::connect(&settings.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return EXIT_FAILED;
        }
    };
    let done = match &action {
        EventsAction::Replay {
            endpoint: name,
            since,
        } => crate::webhooks::replay(&store, &settings.events, name, *since)
            .await
            .map(|n| {
                println!(
                    "{} events since {} queued for {name}",
                    n.unwrap_or(0),
                    Timestamp::from_millis(*since)
                )
            }),
        EventsAction::Resend {
            endpoint: name,
            event_id,
        } => match store.resend_event(name, event_id).await {
            Ok(true) => {
                println!("{event_id} queued for {name}");
                Ok(())
            }
            Ok(false) => {
                eprintln!("error: no event {event_id:?}");
                store.close().await;
                return EXIT_FAILED;
            }
            Err(e) => Err(e),
        },
        EventsAction::Enable { endpoint: name } => match store.enable_endpoint(name).await {
            Ok(true) => {
                println!("{name} enabled");
                Ok(())
            }
            Ok(false) => {
                println!("{name} has not been used yet: nothing to enable");
                Ok(())
            }
            Err(e) => Err(e),
        },
        EventsAction::Endpoints => store.endpoints_health().await.map(|all| {
            println!(
                "name\tdisabled\tlast_success\tfailing_since\tpending\toldest_pending\tfailed"
            );
            for e in all {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.name,
                    moment(e.disabled_at),
                    moment(e.last_success_at),
                    moment(e.failing_since),
                    e.pending,
                    moment(e.oldest_pending),
                    e.failed
                );
            }
        }),
    };
    store.close().await;
    match done {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            EXIT_FAILED
        }
    }
}
