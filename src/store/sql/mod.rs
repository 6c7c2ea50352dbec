//! Statements written once for every backend: plain functions, generic over
//! the connection they run on ([`Conn`]), each beside its SQL.
//!
//! The conventions that let one statement serve SQLite and PostgreSQL:
//! `$N` placeholders in the order they first appear (SQLite numbers them
//! so), text read back with `CAST(... AS TEXT)`, and JSON bound as
//! [`JsonText`] (a `jsonb` parameter on PostgreSQL, text on SQLite). What
//! the two say differently is the small dialect on [`Conn`].
//!
//! Values are bound with `.arg(value)` (bind.rs). Each file's functions sit
//! in one `impl<C> Sql<C>` block whose `where` clause names the Rust types
//! its statements read back: sqlx states those per database, and Rust does
//! not yet carry such bounds from a trait to its users.

pub(super) mod appstore;
mod batch;
mod bind;
pub(super) mod console;
pub(super) mod consumption;
pub(super) mod copy;
pub(super) mod deliveries;
pub(super) mod events;
pub(super) mod findings;
mod items;
pub(super) mod leases;
pub(super) mod ledger_tx;
pub(super) mod outbox;
pub(super) mod read;
pub(super) mod users;

use std::marker::PhantomData;

pub(in crate::store) use bind::{ArgExt, BindOn};

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgConnection, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteConnection, SqliteTypeInfo};
use sqlx::{Database, Encode, Executor, Postgres, Sqlite, Type};

use crate::ledger::ItemKey;
use crate::store::copy::CopyTable;
use crate::store::fold_tx::{LedgerTx as _, Loaded};
use crate::store::{NewNotification, Recorded};
use ledger_tx::bind_notification;

/// The shared statements on connections of type `C` (see the module's
/// comment): `Sql::load_state(conn, item)` infers `C` from `conn`.
pub(in crate::store) struct Sql<C>(PhantomData<C>);

/// A connection of one of the store's backends, and the little its SQL
/// says differently. Implemented for SQLite's and PostgreSQL's connections.
pub(in crate::store) trait Conn: Send + Sized + 'static {
    type Db: BindOn
        + Database<
            Connection = Self,
            QueryResult: RowsAffected,
            Arguments: sqlx::IntoArguments<Self::Db>,
        >;

    /// Which entitlement events a feed may show now: on a backend where
    /// transactions commit out of order, only those every older transaction
    /// has ended before.
    const VISIBLE_EVENTS: &'static str;
    /// The feed's order as the database seeks by it: the columns, and a
    /// position `($1, $2)` (a cursor's txid and id) in their terms
    /// (sql/events.rs builds the comparisons and orders from both).
    const FEED_KEY: &'static [&'static str];
    const FEED_POSITION: &'static str;
    /// What a claim's SELECT ends with so that instances claiming at once
    /// skip each other's rows rather than wait for them.
    const SKIP_LOCKED: &'static str;
    /// The function that makes a JSON array.
    const JSON_ARRAY: &'static str;
    /// What an INSERT says to give a generated key its copied value.
    const OVERRIDING: &'static str;
    /// The cast a JSON parameter needs where it cannot be bound as
    /// [`JsonText`] (a statement built from a table's description).
    const JSONB: &'static str;
    /// Whether a statement may write in its WITH (`WITH e AS (INSERT ...)
    /// INSERT ...`): several tables written in one round trip, where the
    /// database is a round trip away.
    const WRITES_IN_WITH: bool;

    /// This connection, as the executor of one statement.
    fn ex(&mut self) -> impl Executor<'_, Database = Self::Db>;

    /// Lets this transaction's commit skip waiting for the disk: for
    /// bookkeeping a crash may lose without harm (a webhook delivery's
    /// claim or result: lost, the event is sent again, with its id). A
    /// process crash loses nothing either way; power loss may lose it.
    async fn relax_commit(&mut self) -> Result<(), sqlx::Error>;

    /// Holds `item` until the transaction ends, where several writers may
    /// fold it at once.
    async fn lock_item(&mut self, item: &ItemKey) -> Result<(), sqlx::Error>;

    /// Stores a notification and, when it is new and about `item`, loads
    /// that item's state (see [`LedgerTx::record_and_load`]).
    async fn record_and_load(
        &mut self,
        n: &NewNotification,
        item: Option<&ItemKey>,
    ) -> Result<(Recorded, Option<Loaded>), sqlx::Error>;

    /// Stores notifications (distinct, of distinct items) and loads the
    /// items of the new ones as [`Conn::record_and_load`] does, with what
    /// was last told of each always read: in as few round trips as the
    /// backend allows, for a batch of notifications.
    async fn record_and_load_all(
        &mut self,
        ns: &[(&NewNotification, Option<&ItemKey>)],
    ) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error>;

    /// Writes the health probe's row (a notification's size and more) at
    /// `now`.
    async fn probe(&mut self, now: i64) -> Result<(), sqlx::Error>;

    /// Holds back new notifications and Apple's answers while a chunk of
    /// the ledger is rebuilt, where other writers may fold at once.
    async fn lock_for_rebuild(&mut self) -> Result<(), sqlx::Error>;

    /// After rows were copied into `table` with their keys: generated keys
    /// continue after the copied ones.
    async fn finish_copy(&mut self, table: &CopyTable) -> Result<(), sqlx::Error>;

    /// Holds sign-in attempts for `user_key` and from `address` until the
    /// transaction ends, where several instances may reserve them at once.
    async fn lock_sign_in(&mut self, user_key: &str, address: &str) -> Result<(), sqlx::Error>;
}

impl Conn for SqliteConnection {
    type Db = Sqlite;
    /// One writer: what is committed is in order.
    const VISIBLE_EVENTS: &'static str = "1 = 1";
    /// Every event's txid is 0 here (the column's default: nothing writes it
    /// on SQLite, a copy included), so the feed's order is the rowid's, and
    /// a cursor's txid says only whether it is before (< 0), at or after
    /// every event. A row comparison or `txid > $1 OR ...` would have SQLite
    /// read every event to find the page.
    const FEED_KEY: &'static [&'static str] = &["id"];
    const FEED_POSITION: &'static str = "(CASE WHEN $1 = 0 THEN $2 WHEN $1 < 0
        THEN -9223372036854775807 - 1 ELSE 9223372036854775807 END)";
    /// One writer at a time: nothing to skip.
    const SKIP_LOCKED: &'static str = "";
    const JSON_ARRAY: &'static str = "json_array";
    const OVERRIDING: &'static str = "";
    const JSONB: &'static str = "";
    /// SQLite has no such statement, and no round trip to save.
    const WRITES_IN_WITH: bool = false;

    fn ex(&mut self) -> impl Executor<'_, Database = Sqlite> {
        self
    }

    /// SQLite cannot change it inside a transaction: the store's
    /// `on_write_relaxed!` sets it on the connection before BEGIN.
    async fn relax_commit(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// SQLite has one writer, which folds one notification after another:
    /// nothing else can fold an item at the same time.
    async fn lock_item(&mut self, _: &ItemKey) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Two statements: in-process SQLite has no round trip to save.
    async fn record_and_load(
        &mut self,
        n: &NewNotification,
        item: Option<&ItemKey>,
    ) -> Result<(Recorded, Option<Loaded>), sqlx::Error> {
        let recorded = self.insert_notification(n, None).await?;
        let loaded = match (recorded, item) {
            (Recorded::Stored, Some(item)) => Some(Loaded {
                state: self.load_state(item).await?,
                // Read with the item's save (save_state_loading_told).
                told: None,
            }),
            _ => None,
        };
        Ok((recorded, loaded))
    }

    /// Two statements however many notifications (sql/batch.rs).
    async fn record_and_load_all(
        &mut self,
        ns: &[(&NewNotification, Option<&ItemKey>)],
    ) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error> {
        batch::sqlite_record_and_load_all(self, ns).await
    }

    async fn probe(&mut self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at, filler) VALUES (1, $1, zeroblob($2))
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, filler = excluded.filler",
        )
        .bind(now)
        .bind(PROBE_BYTES as i64)
        .execute(&mut *self)
        .await
        .map(drop)
    }

    /// A write transaction (BEGIN IMMEDIATE) already excludes every other
    /// writer.
    async fn lock_for_rebuild(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to do: an INTEGER PRIMARY KEY continues after the largest id.
    async fn finish_copy(&mut self, _: &CopyTable) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// A write transaction (BEGIN IMMEDIATE) already excludes every other.
    async fn lock_sign_in(&mut self, _: &str, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// More than a notification writes (Apple's largest, with three certificate
/// chains, are about 19 KB signed; add the decoded copy and ledger rows): when
/// the probe fits on the disk, a notification does.
const PROBE_BYTES: usize = 64 * 1024;

/// Advisory lock classes (the first key of the two-key form) for sign-in
/// reservations: one per user name, one per address.
const LOGIN_USER_LOCK: i32 = 0x6c67_6e75; // "lgnu"
const LOGIN_ADDRESS_LOCK: i32 = 0x6c67_6e61; // "lgna"

impl Conn for PgConnection {
    type Db = Postgres;
    /// Identity values are taken before commit, so ids may commit out of
    /// order: an event shows once every transaction that could still commit
    /// an older one has ended (its txid is below the oldest such one still
    /// running, or below the snapshot's xmax when none is). Only this
    /// database's transactions can write its events: one the server lists
    /// as running in another database (another application's, however
    /// long) does not count. One it cannot place (its activity row not yet
    /// there, or hidden from this role) counts, so the horizon errs late,
    /// never early. pg_stat_activity shows the 32-bit xid; the snapshot's
    /// are 64-bit, whose low 32 bits it is.
    const VISIBLE_EVENTS: &'static str = "txid < (
        SELECT coalesce(min(CAST(CAST(x AS TEXT) AS BIGINT)),
                        CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS TEXT) AS BIGINT))
        FROM pg_snapshot_xip(pg_current_snapshot()) AS x
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_stat_activity a
            WHERE a.datname <> current_database()
              AND CAST(CAST(a.backend_xid AS TEXT) AS BIGINT)
                  = CAST(CAST(x AS TEXT) AS BIGINT) % 4294967296))";
    /// Row comparisons the `(txid, id)` index answers from the position on.
    const FEED_KEY: &'static [&'static str] = &["txid", "id"];
    const FEED_POSITION: &'static str = "($1, $2)";
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";
    const JSON_ARRAY: &'static str = "json_build_array";
    const OVERRIDING: &'static str = "OVERRIDING SYSTEM VALUE";
    const JSONB: &'static str = "::jsonb";
    const WRITES_IN_WITH: bool = true;

    fn ex(&mut self) -> impl Executor<'_, Database = Postgres> {
        self
    }

    async fn relax_commit(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *self)
            .await
            .map(drop)
    }

    /// A transaction-scoped advisory lock on the item's key: instances
    /// folding notifications of one subscription at once take turns, and
    /// what the later reads includes the earlier's notification. The same
    /// key as the database function record_notification's
    /// (migrations/postgres/0003).
    async fn lock_item(&mut self, item: &ItemKey) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))")
            .bind(item.kind())
            .bind(item.id())
            .execute(&mut *self)
            .await
            .map(drop)
    }

    /// One round trip instead of four (insert, lock, read the item, read
    /// what was told of it): the database function record_notification_told
    /// does them in turn, each statement seeing what was committed before
    /// it began. What was told is read for the customer the item's state
    /// names and for the one the notification names: its fold names one
    /// of them.
    async fn record_and_load(
        &mut self,
        n: &NewNotification,
        item: Option<&ItemKey>,
    ) -> Result<(Recorded, Option<Loaded>), sqlx::Error> {
        let event_customer = batch::event_customer(n);
        let row = bind_notification(
            sqlx::query(
                "SELECT stored, item_state, told_answer, told_sequence, told_moment, told_changes,
                     state_customer, state_customer_consent, event_customer_consent
                 FROM record_notification_told(
                     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            ),
            n,
        )
        .bind(item.map(ItemKey::kind))
        .bind(item.map(ItemKey::id))
        .bind(event_customer)
        .fetch_one(&mut *self)
        .await?;
        batch::recorded_from(&row, item.is_some(), event_customer)
    }

    /// One statement however many notifications (sql/batch.rs).
    async fn record_and_load_all(
        &mut self,
        ns: &[(&NewNotification, Option<&ItemKey>)],
    ) -> Result<Vec<(Recorded, Option<Loaded>)>, sqlx::Error> {
        batch::postgres_record_and_load_all(self, ns).await
    }

    async fn probe(&mut self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO write_probe (id, probed_at, filler) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, filler = excluded.filler",
        )
        .bind(now)
        .bind(vec![0u8; PROBE_BYTES])
        .execute(&mut *self)
        .await
        .map(drop)
    }

    /// SHARE: no instance folds into an item the chunk is rewriting.
    async fn lock_for_rebuild(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("LOCK TABLE notifications, apple_evidence IN SHARE MODE")
            .execute(&mut *self)
            .await
            .map(drop)
    }

    /// Moves an identity column's sequence past the copied ids: the next
    /// notification stored must not take one of theirs.
    async fn finish_copy(&mut self, table: &CopyTable) -> Result<(), sqlx::Error> {
        if !table.generated_key {
            return Ok(());
        }
        let (key, _) = table.key();
        let name = table.name;
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{name}', '{key}'),
                           (SELECT COALESCE(max({key}), 0) + 1 FROM {name}), false)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *self)
            .await
            .map(drop)
    }

    /// User locks first, then the address's, so that two sign-ins never
    /// wait on each other in a cycle.
    async fn lock_sign_in(&mut self, user_key: &str, address: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOGIN_USER_LOCK)
            .bind(user_key)
            .execute(&mut *self)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOGIN_ADDRESS_LOCK)
            .bind(address)
            .execute(&mut *self)
            .await
            .map(drop)
    }
}

/// PostgreSQL's `jsonb` (pg_type.oid).
const JSONB_OID: u32 = 3802;

/// How many rows a statement changed, whichever the backend.
pub(in crate::store) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// JSON text bound as a parameter: `jsonb` on PostgreSQL (so that one
/// statement needs no cast), text on SQLite.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct JsonText<'a>(pub &'a str);

impl Type<Sqlite> for JsonText<'_> {
    fn type_info() -> SqliteTypeInfo {
        <&str as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for JsonText<'_> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'_, Sqlite>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Postgres> for JsonText<'_> {
    fn type_info() -> PgTypeInfo {
        // A built-in type's number is the same on every server: no lookup.
        PgTypeInfo::with_oid(Oid(JSONB_OID))
    }
}

impl Encode<'_, Postgres> for JsonText<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // jsonb's binary form: a version byte, then the text.
        buf.push(1);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}
