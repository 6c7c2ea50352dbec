//! Binding a value in a statement shared by both backends: `.arg(value)`
//! where sqlx has `.bind(value)`.
//!
//! sqlx states what a type encodes to per database, so a statement generic
//! over the database would need bounds like `for<'a> &'a str: Encode<'_, DB>`,
//! which today's compiler cannot prove inside async functions ("implementation
//! of `Encode` is not general enough"). Here each type that the statements
//! bind says once how it binds on each backend, with no such bound.

use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, Postgres, Sqlite, Type};

use super::JsonText;

/// Something a value can be bound to: a statement, or a row of a
/// multi-row INSERT.
pub(in crate::store) trait Binds<'q>: Sized {
    type Db: Database;
    fn value<T: 'q + Encode<'q, Self::Db> + Type<Self::Db>>(self, value: T) -> Self;
}

impl<'q, DB: Database> Binds<'q> for Query<'q, DB, DB::Arguments> {
    type Db = DB;
    fn value<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: Database, O> Binds<'q> for QueryAs<'q, DB, O, DB::Arguments> {
    type Db = DB;
    fn value<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: Database, O> Binds<'q> for QueryScalar<'q, DB, O, DB::Arguments> {
    type Db = DB;
    fn value<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: Database, Sep: std::fmt::Display> Binds<'q> for &mut Separated<'_, DB, Sep> {
    type Db = DB;
    fn value<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.push_bind(value)
    }
}

impl<'q, DB: Database> Binds<'q> for &mut sqlx::QueryBuilder<DB> {
    type Db = DB;
    fn value<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.push_bind(value)
    }
}

/// A value the shared statements bind, and how on each backend.
pub(in crate::store) trait Arg {
    fn on_sqlite<'q, Q: Binds<'q, Db = Sqlite>>(self, query: Q) -> Q
    where
        Self: 'q;
    fn on_postgres<'q, Q: Binds<'q, Db = Postgres>>(self, query: Q) -> Q
    where
        Self: 'q;
}

/// The same words for every type, which sqlx encodes on both backends.
macro_rules! args {
    ($($value:ty),* $(,)?) => {$(
        impl Arg for $value {
            fn on_sqlite<'q, Q: Binds<'q, Db = Sqlite>>(self, query: Q) -> Q
            where
                Self: 'q,
            {
                query.value(self)
            }
            fn on_postgres<'q, Q: Binds<'q, Db = Postgres>>(self, query: Q) -> Q
            where
                Self: 'q,
            {
                query.value(self)
            }
        }
    )*};
}

args!(
    i32,
    i64,
    &i64,
    Option<i64>,
    &Option<i64>,
    bool,
    Option<bool>,
    f64,
    Option<f64>,
    String,
    &String,
    Option<String>,
    &Option<String>,
    &str,
    Option<&str>,
    Vec<u8>,
    JsonText<'_>,
);

/// The dialect's choice of [`Arg`] method.
pub(in crate::store) trait BindOn: Database {
    fn bind<'q, Q: Binds<'q, Db = Self>, A: Arg + 'q>(query: Q, value: A) -> Q;
}

impl BindOn for Sqlite {
    fn bind<'q, Q: Binds<'q, Db = Self>, A: Arg + 'q>(query: Q, value: A) -> Q {
        value.on_sqlite(query)
    }
}

impl BindOn for Postgres {
    fn bind<'q, Q: Binds<'q, Db = Self>, A: Arg + 'q>(query: Q, value: A) -> Q {
        value.on_postgres(query)
    }
}

/// `.arg(value)`: binds `value` on whichever backend the statement is for.
pub(in crate::store) trait ArgExt<'q>: Binds<'q>
where
    Self::Db: BindOn,
{
    fn arg<A: Arg + 'q>(self, value: A) -> Self {
        <Self::Db as BindOn>::bind(self, value)
    }
}

impl<'q, Q: Binds<'q>> ArgExt<'q> for Q where Q::Db: BindOn {}
