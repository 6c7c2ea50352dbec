//! `user add|remove|list`: who may open the support console. Users live in
//! the database, so every instance knows them.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Settings;
use crate::console::users::{self, Role};
use crate::model::Timestamp;
use crate::store::{ConsoleUser, Store};

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    /// A TOML configuration file (over the built-in defaults, under
    /// APPSTORE_LEDGER__* environment variables).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user; the password is read from standard input (asked twice,
    /// unseen, on a terminal), so it never lands in shell history.
    Add {
        /// The user name to sign in with: 1 to 64 letters, digits, '.',
        /// '_', '-' or '@', unique regardless of case.
        name: String,
        /// What the user may see: support (the customer pages) or admin
        /// (also the access log and the users).
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Remove a user and end their sessions.
    Remove {
        /// The user's name, in any case.
        name: String,
    },
    /// List the users: name, role, when added.
    List,
}

/// What a `user` command does, once its arguments are checked.
enum Work {
    Add(ConsoleUser, String),
    Remove(String),
    List,
}

pub(super) async fn user(settings: Settings, action: UserAction) -> u8 {
    // What needs no database is checked before it is opened.
    let work = match action {
        UserAction::Add { name, role } => match new_user(&name, role) {
            Ok((user, hash)) => Work::Add(user, hash),
            Err(message) => {
                eprintln!("error: {message}");
                return EXIT_USAGE;
            }
        },
        UserAction::Remove { name } => Work::Remove(name),
        UserAction::List => Work::List,
    };
    // An operator's command waits out the service's writes rather than
    // fail after the short wait a webhook request gets.
    let mut database = settings.database.clone();
    database.busy_timeout_ms = database.busy_timeout_ms.max(5_000);
    let store = match Store::connect(&database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            return EXIT_FAILED;
        }
    };
    let outcome = match work {
        Work::Add(user, hash) => match store.add_console_user(&user, &hash).await {
            Ok(true) => {
                println!("added {} ({})", user.name, user.role);
                Ok(())
            }
            Ok(false) => Err(format!(
                "a user named {} exists (names are unique regardless of case); remove it first",
                user.name
            )),
            Err(e) => Err(e.chain()),
        },
        Work::Remove(name) => match store.remove_console_user(&name).await {
            Ok(true) => {
                println!("removed {name}");
                Ok(())
            }
            Ok(false) => Err(format!("no user named {name}")),
            Err(e) => Err(e.chain()),
        },
        Work::List => store
            .console_users()
            .await
            .map_err(|e| e.chain())
            .map(|list| {
                for user in list {
                    let added = Timestamp::from_millis(user.created_at);
                    println!("{}\t{}\t{added}", user.name, user.role);
                }
            }),
    };
    store.close().await;
    match outcome {
        Ok(()) => EXIT_OK,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_FAILED
        }
    }
}

/// The user to add and its password's hash; a message for a usage error.
fn new_user(name: &str, role: Role) -> Result<(ConsoleUser, String), String> {
    users::check_name(name).map_err(|e| format!("{}: {e}", e.code()))?;
    let password = read_password(name)?;
    let hash = users::hash_password(&password).map_err(|e| format!("{}: {e}", e.code()))?;
    let user = ConsoleUser {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        created_at: crate::clock::Clock::now(&crate::clock::SystemClock).as_millis(),
    };
    Ok((user, hash))
}

/// On a terminal: asked twice without echo. Otherwise the first line of
/// standard input, without its line ending.
fn read_password(name: &str) -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let ask = |prompt: String| rpassword::prompt_password(prompt).map_err(|e| e.to_string());
        let first = ask(format!("password for {name}: "))?;
        let again = ask("again: ".to_owned())?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password.to_owned())
}
