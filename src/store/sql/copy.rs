//! `copy-store`'s reads and writes (tables in store/copy.rs), written once
//! for every backend: `copy!(Connection, Row, Store, jsonb = "...",
//! overriding = "...")`, where `overriding` is what an INSERT says to give
//! an identity column its value (PostgreSQL's `OVERRIDING SYSTEM VALUE`).
//! The store's reads are made here too; its writes and `finish_copy` stay
//! with the backend.

use crate::store::copy::{ColumnKind, CopyKey, CopyRow, CopyTable, CopyValue};
use sqlx::Row as _;
use sqlx::{ColumnIndex, Database, Decode, Type};

use super::{ArgExt as _, Conn, RowsAffected as _, Sql};

impl<C> Sql<C>
where
    C: Conn,
    for<'r> i64: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> bool: Decode<'r, C::Db> + Type<C::Db>,
    for<'r> String: Decode<'r, C::Db> + Type<C::Db>,
    for<'a> &'a str: ColumnIndex<<C::Db as Database>::Row>,
    usize: ColumnIndex<<C::Db as Database>::Row>,
{
    /// Up to `limit` rows of `table` after `after`, in key order.
    pub(in crate::store) async fn copy_page(
        conn: &mut C,
        table: &CopyTable,
        after: Option<&CopyKey>,
        limit: i64,
    ) -> Result<Vec<CopyRow>, sqlx::Error> {
        let sql = table.select_page(after.is_some());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        query = match after {
            Some(CopyKey::Int(id)) => query.arg(*id),
            Some(CopyKey::Text(key)) => query.arg(key.clone()),
            None => query,
        };
        let rows = query.arg(limit).fetch_all(conn.ex()).await?;
        rows.iter().map(|row| Self::read_row(table, row)).collect()
    }

    fn read_row(table: &CopyTable, row: &<C::Db as Database>::Row) -> Result<CopyRow, sqlx::Error> {
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                Ok(match kind {
                    ColumnKind::Int => CopyValue::Int(row.try_get(i)?),
                    ColumnKind::Text | ColumnKind::Json => CopyValue::Text(row.try_get(i)?),
                    ColumnKind::Bool => CopyValue::Bool(row.try_get(i)?),
                })
            })
            .collect()
    }

    /// Inserts `rows` into `table`, leaving alone those already there;
    /// returns how many were new.
    pub(in crate::store) async fn copy_rows(
        conn: &mut C,
        table: &CopyTable,
        rows: &[CopyRow],
    ) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let sql = table.insert(rows.len(), C::JSONB, C::OVERRIDING);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in rows.iter().flatten() {
            query = match value {
                CopyValue::Int(n) => query.arg(*n),
                CopyValue::Text(text) => query.arg(text.clone()),
                CopyValue::Bool(b) => query.arg(*b),
            };
        }
        Ok(query.execute(conn.ex()).await?.rows_affected())
    }

    /// The largest key of `table`: where an interrupted copy continues.
    pub(in crate::store) async fn last_copied(
        conn: &mut C,
        table: &CopyTable,
    ) -> Result<Option<CopyKey>, sqlx::Error> {
        let (key, kind) = table.key();
        let sql = format!("SELECT max({key}) FROM {}", table.name);
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let row = query.fetch_one(conn.ex()).await?;
        Ok(match kind {
            ColumnKind::Int => row.try_get::<Option<i64>, _>(0)?.map(CopyKey::Int),
            _ => row.try_get::<Option<String>, _>(0)?.map(CopyKey::Text),
        })
    }

    /// How many rows `table` holds.
    pub(in crate::store) async fn table_rows(
        conn: &mut C,
        table: &CopyTable,
    ) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT count(*) FROM {}", table.name);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(conn.ex())
            .await
    }
}
