//! `copy-store`'s reads and writes (tables in store/copy.rs), written once
//! for every backend: `copy!(Connection, Row, Store, jsonb = "...",
//! overriding = "...")`, where `overriding` is what an INSERT says to give
//! an identity column its value (PostgreSQL's `OVERRIDING SYSTEM VALUE`).
//! The store's reads are made here too; its writes and `finish_copy` stay
//! with the backend.

macro_rules! copy {
    ($conn:ty, $row:ty, $store:ty, jsonb = $jsonb:literal, overriding = $overriding:literal) => {
        use sqlx::Row as _;

        use $crate::store::copy::{ColumnKind, CopyKey, CopyRow, CopyTable, CopyValue};

        /// Up to `limit` rows of `table` after `after`, in key order.
        pub(super) async fn copy_page(
            conn: &mut $conn,
            table: &CopyTable,
            after: Option<&CopyKey>,
            limit: i64,
        ) -> Result<Vec<CopyRow>, sqlx::Error> {
            let sql = table.select_page(after.is_some());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            query = match after {
                Some(CopyKey::Int(id)) => query.bind(*id),
                Some(CopyKey::Text(key)) => query.bind(key.clone()),
                None => query,
            };
            let rows = query.bind(limit).fetch_all(&mut *conn).await?;
            rows.iter().map(|row| read_row(table, row)).collect()
        }

        fn read_row(table: &CopyTable, row: &$row) -> Result<CopyRow, sqlx::Error> {
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
        pub(super) async fn copy_rows(
            conn: &mut $conn,
            table: &CopyTable,
            rows: &[CopyRow],
        ) -> Result<u64, sqlx::Error> {
            if rows.is_empty() {
                return Ok(0);
            }
            let sql = table.insert(rows.len(), $jsonb, $overriding);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in rows.iter().flatten() {
                query = match value {
                    CopyValue::Int(n) => query.bind(*n),
                    CopyValue::Text(text) => query.bind(text.clone()),
                    CopyValue::Bool(b) => query.bind(*b),
                };
            }
            Ok(query.execute(&mut *conn).await?.rows_affected())
        }

        /// The largest key of `table`: where an interrupted copy continues.
        pub(super) async fn last_copied(
            conn: &mut $conn,
            table: &CopyTable,
        ) -> Result<Option<CopyKey>, sqlx::Error> {
            let (key, kind) = table.key();
            let sql = format!("SELECT max({key}) FROM {}", table.name);
            let query = sqlx::query(sqlx::AssertSqlSafe(sql));
            let row = query.fetch_one(&mut *conn).await?;
            Ok(match kind {
                ColumnKind::Int => row.try_get::<Option<i64>, _>(0)?.map(CopyKey::Int),
                _ => row.try_get::<Option<String>, _>(0)?.map(CopyKey::Text),
            })
        }

        /// How many rows `table` holds.
        pub(super) async fn table_rows(
            conn: &mut $conn,
            table: &CopyTable,
        ) -> Result<i64, sqlx::Error> {
            let sql = format!("SELECT count(*) FROM {}", table.name);
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *conn)
                .await
        }

        /// The reads, on a connection of the backend's read pool.
        impl $store {
            pub(in crate::store) async fn copy_page(
                &self,
                table: &CopyTable,
                after: Option<&CopyKey>,
                limit: i64,
            ) -> Result<Vec<CopyRow>, $crate::store::StoreError> {
                copy_page(&mut *self.read().await?, table, after, limit)
                    .await
                    .map_err(unavailable)
            }

            pub(in crate::store) async fn last_copied(
                &self,
                table: &CopyTable,
            ) -> Result<Option<CopyKey>, $crate::store::StoreError> {
                last_copied(&mut *self.read().await?, table)
                    .await
                    .map_err(unavailable)
            }

            pub(in crate::store) async fn table_rows(
                &self,
                table: &CopyTable,
            ) -> Result<i64, $crate::store::StoreError> {
                table_rows(&mut *self.read().await?, table)
                    .await
                    .map_err(unavailable)
            }
        }
    };
}
pub(in crate::store) use copy;
