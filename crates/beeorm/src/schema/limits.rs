//! What each column can hold, per dialect, and the check a flush runs on every value
//! before it sends any statement.
//!
//! A value the column cannot hold *exactly* is an [`Error::InvalidValue`] naming the
//! entity, the field and the value — never a row the server truncated, rounded,
//! wrapped, turned into NULL or into a date that cannot be read back. Two kinds of
//! limits apply:
//! - the column's declared type, the same on every dialect: integer widths
//!   (`mediumint`, `year`), `decimal = "P,S"`, `unsigned`, `length = N`, enum and set
//!   values;
//! - what the dialect's column type stores: date ranges, fractional seconds, NaN and
//!   infinities, MySQL's text and blob sizes, PostgreSQL's NUL-free text.
//!
//! The ranges are listed in `docs/types.md` ("Value ranges"). This module never
//! touches a connection; it runs on values in memory, without allocating unless it
//! reports an error.

use chrono::{NaiveDate, Timelike};

use super::types::{BlobSize, ColumnType, EnumValues};
use super::TableSchema;
use crate::sql::value::{Digits, NumText, F64_EXACT_DIGITS};
use crate::{DialectKind, Error, Result, Value};

/// Longest MySQL `mediumtext` / `mediumblob`, in bytes.
const MYSQL_MEDIUM: usize = 16_777_215;
/// Longest MySQL `blob`, in bytes.
const MYSQL_BLOB: usize = 65_535;
/// Longest MySQL `longblob`, in bytes.
const MYSQL_LONG: usize = 4_294_967_295;

/// The first date of MySQL's `date`/`datetime` and of SQLite's `YYYY-MM-DD` text.
const FOUR_DIGIT_MIN: NaiveDate = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};
/// The last date of MySQL's `date`/`datetime` and of SQLite's `YYYY-MM-DD` text.
const FOUR_DIGIT_MAX: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(d) => d,
    None => NaiveDate::MAX,
};
/// PostgreSQL's first `date` / `timestamp`: 4714-11-24 BC (year -4713 in chrono's
/// astronomical numbering). Its last ones lie beyond chrono's range.
const PG_MIN: NaiveDate = match NaiveDate::from_ymd_opt(-4713, 11, 24) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// Checks the values of an insert's row (every column but `id`, in column order) and
/// adapts them to the dialect where its driver needs it.
pub(crate) fn fit_row(schema: &TableSchema, kind: DialectKind, row: &mut [Value]) -> Result<()> {
    for (i, v) in row.iter_mut().enumerate() {
        fit_column(schema, kind, i + 1, v)?;
    }
    Ok(())
}

/// [`fit_row`] for one value of column `index` of `schema.columns()` (0 is `id`).
pub(crate) fn fit_column(
    schema: &TableSchema,
    kind: DialectKind,
    index: usize,
    v: &mut Value,
) -> Result<()> {
    let Some(col) = schema.columns().get(index) else {
        return Ok(());
    };
    // PostgreSQL has no unsigned 64-bit integer: the `id` column and one-to-one
    // references to an 8-byte `id` are `bigint` there (plain `u64` fields are
    // `numeric(20,0)` and hold every value).
    // SQLite's rowid is a signed 64-bit integer too: a larger ID would be stored
    // wrapped (negative) and could never be loaded by its ID.
    let pg_bigint = matches!(kind, DialectKind::Postgres | DialectKind::Sqlite)
        && (index == 0 || col.reference.as_ref().is_some_and(|r| !r.many))
        && matches!(v, Value::U64(u) if i64::try_from(*u).is_err());
    let checked = if pg_bigint {
        Err(format!(
            "is above {}, the largest ID {} holds",
            i64::MAX,
            if kind == DialectKind::Postgres {
                "PostgreSQL's `bigint`"
            } else {
                "SQLite's signed 64-bit rowid"
            }
        ))
    } else {
        fit(&col.ty, kind, v)
    };
    checked.map_err(|reason| Error::InvalidValue {
        entity: schema.entity_name().to_string(),
        field: col.field.clone(),
        value: describe(v),
        reason,
    })
}

/// [`fit_row`] for one value of the column named `column`.
pub(crate) fn fit_named(
    schema: &TableSchema,
    kind: DialectKind,
    column: &str,
    v: &mut Value,
) -> Result<()> {
    match schema.columns().iter().position(|c| c.name == column) {
        Some(i) => fit_column(schema, kind, i, v),
        None => Ok(()),
    }
}

/// The value for an error message: as Rust prints it, long ones shortened.
fn describe(v: &Value) -> String {
    const MAX: usize = 60;
    let full = match v {
        Value::String(s) => {
            let chars = s.chars().count();
            if chars > MAX {
                let head: String = s.chars().take(MAX).collect();
                return format!("{head:?}… ({chars} characters)");
            }
            format!("{s:?}")
        }
        Value::Bytes(b) => return format!("of {} bytes", b.len()),
        Value::I64(i) => i.to_string(),
        Value::U64(u) => u.to_string(),
        Value::F32(f) => f.to_string(),
        Value::F64(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Date(d) => d.to_string(),
        Value::DateTime(d) => d.to_string(),
        Value::Time(t) => t.to_string(),
        other => format!("{other:?}"),
    };
    if full.chars().count() > MAX {
        let head: String = full.chars().take(MAX).collect();
        return format!("{head}…");
    }
    full
}

fn dialect_name(kind: DialectKind) -> &'static str {
    match kind {
        DialectKind::MySql => "MySQL",
        DialectKind::Postgres => "PostgreSQL",
        DialectKind::Sqlite => "SQLite",
    }
}

/// Whether `v` fits a column of type `ty` on `kind`; the reason when it does not.
/// Values of another kind than the column's (not produced by the derive) are left to
/// the server.
pub(crate) fn fit(ty: &ColumnType, kind: DialectKind, v: &mut Value) -> Result<(), String> {
    match ty {
        ColumnType::Int { bytes, unsigned } => {
            let n = match v {
                Value::I64(i) => i128::from(*i),
                Value::U64(u) => i128::from(*u),
                _ => return Ok(()),
            };
            let (min, max, name) = int_range(*bytes, *unsigned);
            if n < min || n > max {
                return Err(format!("is out of the range of `{name}`: {min} to {max}"));
            }
        }
        ColumnType::Year => {
            if let Value::I64(y) = v {
                // MySQL's `year` holds 0 and 1901..=2155, and reads 1..=99 as 2001..2069
                // or 1970..1999: anything else would come back as another number.
                if *y != 0 && !(1901..=2155).contains(y) {
                    return Err("is not a `year`: 0 or 1901 to 2155".into());
                }
            }
        }
        ColumnType::Float { unsigned, .. } => {
            let f = match v {
                Value::F32(f) => f64::from(*f),
                Value::F64(f) => *f,
                _ => return Ok(()),
            };
            if f.is_nan() && kind != DialectKind::Postgres {
                // SQLite stores NaN as NULL; MySQL has no NaN.
                return Err(format!("(NaN) cannot be stored by {}", dialect_name(kind)));
            }
            if f.is_infinite() && kind == DialectKind::MySql {
                return Err("(an infinity) cannot be stored by MySQL".into());
            }
            if *unsigned && f < 0.0 {
                return Err("is negative; the column is `unsigned`".into());
            }
        }
        ColumnType::Decimal {
            precision,
            scale,
            unsigned,
        } => fit_decimal(*precision, *scale, *unsigned, kind, v)?,
        ColumnType::Varchar(n) => {
            if let Value::String(s) = v {
                // Bytes bound characters from above: count only when it can matter.
                let n = *n as usize;
                if s.len() > n {
                    let chars = s.chars().count();
                    if chars > n {
                        return Err(format!(
                            "is {chars} characters long; the column holds at most {n}"
                        ));
                    }
                }
                no_nul(kind, s)?;
            }
        }
        ColumnType::Text => {
            if let Value::String(s) = v {
                if kind == DialectKind::MySql && s.len() > MYSQL_MEDIUM {
                    return Err(format!(
                        "is {} bytes long; MySQL's `mediumtext` holds at most {MYSQL_MEDIUM}",
                        s.len()
                    ));
                }
                no_nul(kind, s)?;
            }
        }
        ColumnType::Json => {
            if let Value::String(s) = v {
                no_nul(kind, s)?;
            }
        }
        ColumnType::Blob(size) => {
            if let (Value::Bytes(b), DialectKind::MySql) = (&*v, kind) {
                let (max, name) = match size {
                    BlobSize::Blob => (MYSQL_BLOB, "blob"),
                    BlobSize::Medium => (MYSQL_MEDIUM, "mediumblob"),
                    BlobSize::Long => (MYSQL_LONG, "longblob"),
                };
                if b.len() > max {
                    return Err(format!(
                        "is too long for MySQL's `{name}` (at most {max} bytes)"
                    ));
                }
            }
        }
        ColumnType::Enum(EnumValues::Values { values, .. }) => {
            if let Value::String(s) = v {
                if !values.iter().any(|x| x == s) {
                    return Err(format!("is not one of the enum's values {values:?}"));
                }
            }
        }
        ColumnType::Set(EnumValues::Values { values, .. }) => {
            if let Value::String(s) = v {
                if !s.is_empty() {
                    for (i, item) in s.split(',').enumerate() {
                        if !values.iter().any(|x| x == item) {
                            return Err(format!(
                                "holds `{item}`, which is not one of the set's values {values:?}"
                            ));
                        }
                        if s.split(',').take(i).any(|seen| seen == item) {
                            return Err(format!(
                                "holds `{item}` twice; a set holds each value once"
                            ));
                        }
                    }
                }
            }
        }
        ColumnType::Enum(EnumValues::Named(_)) | ColumnType::Set(EnumValues::Named(_)) => {}
        ColumnType::Date => {
            if let Value::Date(d) = v {
                date_in_range(kind, *d, "date")?;
            }
        }
        ColumnType::DateTime => {
            if let Value::DateTime(d) = v {
                date_in_range(kind, d.date(), "datetime")?;
                fraction_fits(kind, d.nanosecond(), "datetime")?;
            }
        }
        ColumnType::DateTimeMicros => {
            if let Value::DateTime(d) = v {
                date_in_range(kind, d.date(), "datetime")?;
                if d.nanosecond() % 1_000 != 0 {
                    return Err("has nanoseconds; the column holds microseconds".into());
                }
            }
        }
        ColumnType::Time => {
            if let Value::Time(t) = v {
                fraction_fits(kind, t.nanosecond(), "time")?;
            }
        }
        ColumnType::Bool => {}
    }
    Ok(())
}

fn int_range(bytes: u8, unsigned: bool) -> (i128, i128, &'static str) {
    match (bytes, unsigned) {
        (1, false) => (i8::MIN.into(), i8::MAX.into(), "tinyint"),
        (1, true) => (0, u8::MAX.into(), "tinyint unsigned"),
        (2, false) => (i16::MIN.into(), i16::MAX.into(), "smallint"),
        (2, true) => (0, u16::MAX.into(), "smallint unsigned"),
        (3, false) => (-8_388_608, 8_388_607, "mediumint"),
        (3, true) => (0, 16_777_215, "mediumint unsigned"),
        (4, false) => (i32::MIN.into(), i32::MAX.into(), "int"),
        (4, true) => (0, u32::MAX.into(), "int unsigned"),
        (_, false) => (i64::MIN.into(), i64::MAX.into(), "bigint"),
        (_, true) => (0, u64::MAX.into(), "bigint unsigned"),
    }
}

/// PostgreSQL text cannot hold the NUL character.
fn no_nul(kind: DialectKind, s: &str) -> Result<(), String> {
    if kind == DialectKind::Postgres && s.as_bytes().contains(&0) {
        return Err("contains the NUL character, which PostgreSQL text cannot hold".into());
    }
    Ok(())
}

fn fit_decimal(
    precision: u8,
    scale: u8,
    unsigned: bool,
    kind: DialectKind,
    v: &mut Value,
) -> Result<(), String> {
    let (text, negative) = match v {
        // Counted from mantissa and scale: no formatting on the common path.
        Value::Decimal(d) => (None, d.is_sign_negative() && !d.is_zero()),
        Value::F64(f) if f.is_finite() => (NumText::of(*f), *f < 0.0),
        Value::F32(f) if f.is_finite() => (NumText::of(*f), *f < 0.0),
        Value::F64(_) | Value::F32(_) => {
            return Err(format!(
                "is not a finite number; `decimal({precision},{scale})` holds only those"
            ))
        }
        _ => return Ok(()),
    };
    let too_many = || format!("has more digits than `decimal({precision},{scale})` holds");
    let digits = match (&*v, &text) {
        (Value::Decimal(d), _) => Digits::of_decimal(d),
        (_, Some(text)) => text.digits(),
        (_, None) => return Err(too_many()),
    };
    if digits.fraction > usize::from(scale) {
        return Err(format!(
            "has {} digits after the point; `decimal({precision},{scale})` holds {scale} (round it first)",
            digits.fraction
        ));
    }
    let int_max = usize::from(precision.saturating_sub(scale));
    if digits.integer > int_max {
        return Err(format!(
            "has {} digits before the point; `decimal({precision},{scale})` holds {int_max}",
            digits.integer
        ));
    }
    if unsigned && negative {
        return Err("is negative; the column is `unsigned`".into());
    }
    // SQLite keeps decimals wider than an f64 as TEXT (`sql::sqlite::column_type`):
    // they must reach it as text, every digit kept (a REAL would be printed with 15
    // significant digits). Without trailing zeros, as SQLite prints a number it
    // compares with that column (`12.5`); a float in its shortest exact form.
    if kind == DialectKind::Sqlite && usize::from(precision) > F64_EXACT_DIGITS {
        *v = Value::String(match (&*v, &text) {
            (Value::Decimal(d), _) => d.normalize().to_string(),
            (_, Some(text)) => text.as_str().to_string(),
            (other, None) => return Err(format!("cannot be written as a decimal: {other:?}")),
        });
    }
    Ok(())
}

fn date_in_range(kind: DialectKind, d: NaiveDate, column: &str) -> Result<(), String> {
    let (min, max) = match kind {
        DialectKind::Postgres => (PG_MIN, NaiveDate::MAX),
        DialectKind::MySql | DialectKind::Sqlite => (FOUR_DIGIT_MIN, FOUR_DIGIT_MAX),
    };
    if d < min || d > max {
        let range = match kind {
            DialectKind::Postgres => "from 4714-11-24 BC".to_string(),
            _ => format!("{min} to {max}"),
        };
        return Err(format!(
            "is out of {}'s `{column}` range ({range})",
            dialect_name(kind)
        ));
    }
    Ok(())
}

/// Fractional seconds a `datetime`/`time` column keeps: none on MySQL (the columns
/// are declared without fractional digits), microseconds on PostgreSQL, every digit
/// on SQLite (text). A leap second (chrono's second 60) fits none of them.
fn fraction_fits(kind: DialectKind, nanos: u32, column: &str) -> Result<(), String> {
    if nanos >= 1_000_000_000 {
        return Err("is a leap second, which no column holds".into());
    }
    match kind {
        DialectKind::MySql if nanos != 0 => Err(format!(
            "has fractions of a second; MySQL's `{column}` holds whole seconds (truncate it first)"
        )),
        DialectKind::Postgres if !nanos.is_multiple_of(1_000) => Err(format!(
            "has nanoseconds; PostgreSQL's `{column}` holds microseconds (truncate it first)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn fits(ty: ColumnType, kind: DialectKind, v: impl Into<Value>) -> bool {
        fit(&ty, kind, &mut v.into()).is_ok()
    }

    #[test]
    fn decimals_fit_by_digits_on_each_side_of_the_point() {
        let d = |p, s| ColumnType::Decimal {
            precision: p,
            scale: s,
            unsigned: false,
        };
        let dec = |s: &str| s.parse::<Decimal>().unwrap();
        assert!(fits(d(10, 2), DialectKind::MySql, dec("12345678.90")));
        assert!(!fits(d(10, 2), DialectKind::MySql, dec("123456789.9")));
        assert!(!fits(d(10, 2), DialectKind::MySql, dec("1.234")));
        assert!(fits(d(10, 2), DialectKind::MySql, 12345678.91f64));
        assert!(!fits(d(10, 2), DialectKind::MySql, 0.1f64 + 0.2));
        assert!(!fits(d(10, 2), DialectKind::Postgres, f64::NAN));
        assert!(!fits(d(65, 30), DialectKind::MySql, 1e300f64));
    }

    #[test]
    fn wide_decimals_reach_sqlite_as_text() {
        let ty = ColumnType::Decimal {
            precision: 20,
            scale: 6,
            unsigned: false,
        };
        let mut v = Value::Decimal("12345678901234.123456".parse().unwrap());
        fit(&ty, DialectKind::Sqlite, &mut v).unwrap();
        assert_eq!(v, Value::String("12345678901234.123456".into()));
    }

    #[test]
    fn varchar_counts_characters_not_bytes() {
        assert!(fits(ColumnType::Varchar(3), DialectKind::MySql, "ییی"));
        assert!(!fits(ColumnType::Varchar(3), DialectKind::MySql, "یییی"));
    }

    #[test]
    fn dates_fit_each_dialect() {
        let y = |y| NaiveDate::from_ymd_opt(y, 1, 1).unwrap();
        for kind in [DialectKind::MySql, DialectKind::Sqlite] {
            assert!(fits(ColumnType::Date, kind, y(1)));
            assert!(fits(ColumnType::Date, kind, y(9999)));
            assert!(!fits(ColumnType::Date, kind, y(10000)));
            assert!(!fits(ColumnType::Date, kind, y(0)));
        }
        assert!(fits(ColumnType::Date, DialectKind::Postgres, y(70000)));
        assert!(fits(ColumnType::Date, DialectKind::Postgres, PG_MIN));
        assert!(!fits(
            ColumnType::Date,
            DialectKind::Postgres,
            PG_MIN.pred_opt().unwrap()
        ));
    }
}
