//! SQLite values: a [`Value`] bound straight to a statement (text and blobs
//! borrowed), a cell read back into a [`Value`]. SQLite has five storage classes;
//! dates, times and JSON are stored as text, decimals as numbers where exact.

use crate::Value;

/// A parameter bound to a SQLite statement straight from our [`Value`]: text and
/// blobs are borrowed, not copied.
pub(crate) struct SqliteParam<'a>(pub(crate) &'a Value);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput as O, Value as S, ValueRef as R};
        Ok(match self.0 {
            Value::Null => O::Borrowed(R::Null),
            Value::Bool(b) => O::Owned(S::Integer(i64::from(*b))),
            Value::I64(i) => O::Owned(S::Integer(*i)),
            // SQLite integers are signed 64-bit: a u64 above i64::MAX is stored as its
            // two's complement (as text it would turn into a lossy REAL).
            Value::U64(u) => O::Owned(S::Integer(*u as i64)),
            Value::F32(f) => O::Owned(S::Real(f64::from(*f))),
            Value::F64(f) => O::Owned(S::Real(*f)),
            Value::Decimal(d) => O::Owned(sqlite_decimal(d)),
            Value::String(s) => O::Borrowed(R::Text(s.as_bytes())),
            Value::Bytes(b) => O::Borrowed(R::Blob(b)),
            Value::Date(d) => O::Owned(S::Text(sqlite_date(*d)?.format("%Y-%m-%d").to_string())),
            Value::DateTime(d) => {
                sqlite_date(d.date())?;
                O::Owned(S::Text(d.format("%Y-%m-%d %H:%M:%S%.f").to_string()))
            }
            Value::Time(t) => O::Owned(S::Text(t.format("%H:%M:%S%.f").to_string())),
            Value::Json(j) => O::Owned(S::Text(j.to_string())),
        })
    }
}

/// Dates are stored as `YYYY-MM-DD` text: a year outside 0–9999 would be written with
/// a sign and more digits, which neither sorts nor reads back.
fn sqlite_date(d: chrono::NaiveDate) -> rusqlite::Result<chrono::NaiveDate> {
    use chrono::Datelike;
    if (0..=9999).contains(&d.year()) {
        Ok(d)
    } else {
        Err(rusqlite::Error::ToSqlConversionFailure(
            format!("date {d}: SQLite dates are stored as text from 0000-01-01 to 9999-12-31")
                .into(),
        ))
    }
}

/// A decimal bound as a number, so it compares as one against any expression
/// (`price * qty > ?`, `HAVING SUM(total) > ?`): in SQLite every number sorts before
/// every text. An integer when it is one, a REAL when it has at most 15 significant
/// digits (the REAL reads back as the same decimal), else its exact text (a flush
/// sends wider columns' values as text anyway, see `schema::limits`).
fn sqlite_decimal(d: &rust_decimal::Decimal) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    use rust_decimal::prelude::ToPrimitive;
    if d.fract().is_zero() {
        if let Some(i) = d.to_i64() {
            return S::Integer(i);
        }
    }
    if crate::sql::value::Digits::of_decimal(d).significant <= crate::sql::value::F64_EXACT_DIGITS {
        // Through the text: Rust's parser gives the nearest f64, whose shortest form
        // is the decimal again.
        if let Some(Ok(f)) = crate::sql::value::NumText::of(d).map(|t| t.as_str().parse::<f64>()) {
            return S::Real(f);
        }
    }
    S::Text(d.to_string())
}

/// A cell read from SQLite: text that is not UTF-8 comes back as bytes. Always
/// inlined: built in place in its row buffer, the value is not passed back through
/// the stack (a store-forwarding stall per cell when it was a call).
#[inline(always)]
pub(crate) fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as S;
    match v {
        S::Null => Value::Null,
        S::Integer(i) => Value::I64(i),
        S::Real(f) => Value::F64(f),
        S::Text(s) => match std::str::from_utf8(s) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => Value::Bytes(s.to_vec()),
        },
        S::Blob(b) => Value::Bytes(b.to_vec()),
    }
}
