//! MySQL values: a [`Value`] into a mysql_async parameter, a mysql_async cell back
//! into a [`Value`]. Nothing here allocates beyond what the value itself needs.

use crate::{Error, Result, Value};

/// A parameter for mysql_async. A date or time MySQL cannot hold (a year outside
/// 1–9999, a leap second) is an error, never a wrapped year or a NULL; a flush has
/// already refused such values with the entity and field named (`schema::limits`).
pub(crate) fn mysql_value(v: Value) -> Result<mysql_async::Value> {
    use chrono::{Datelike, Timelike};
    use mysql_async::Value as M;
    let date = |d: chrono::NaiveDate| -> Result<(u16, u8, u8)> {
        match u16::try_from(d.year()) {
            Ok(y @ 1..=9999) => Ok((y, d.month() as u8, d.day() as u8)),
            _ => Err(Error::Query(format!(
                "parameter {d}: MySQL dates run from 0001-01-01 to 9999-12-31"
            ))),
        }
    };
    let micros = |nanos: u32, what: &dyn std::fmt::Display| -> Result<u32> {
        if nanos >= 1_000_000_000 {
            return Err(Error::Query(format!(
                "parameter {what}: MySQL cannot hold a leap second"
            )));
        }
        Ok(nanos / 1000)
    };
    Ok(match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(b)),
        Value::I64(i) => M::Int(i),
        Value::U64(u) => M::UInt(u),
        Value::F32(f) => M::Float(f),
        Value::F64(f) => M::Double(f),
        Value::Decimal(d) => M::Bytes(d.to_string().into_bytes()),
        Value::String(s) => M::Bytes(s.into_bytes()),
        Value::Bytes(b) => M::Bytes(b),
        Value::Date(d) => {
            let (y, m, day) = date(d)?;
            M::Date(y, m, day, 0, 0, 0, 0)
        }
        Value::DateTime(d) => {
            let (y, m, day) = date(d.date())?;
            M::Date(
                y,
                m,
                day,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
                micros(d.nanosecond(), &d)?,
            )
        }
        Value::Time(t) => M::Time(
            false,
            0,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            micros(t.nanosecond(), &t)?,
        ),
        Value::Json(j) => M::Bytes(j.to_string().into_bytes()),
    })
}

/// A cell from mysql_async. A `date`/`datetime` that is no calendar date (MySQL's
/// zero dates) and a `time` beyond a time of day (MySQL's TIME runs from -838:59:59
/// to 838:59:59) come back as their text, so reading them into a date or a
/// `NaiveTime` fails naming the value instead of dropping the sign and the days.
pub(crate) fn from_mysql(v: mysql_async::Value) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        M::Int(i) => Value::I64(i),
        M::UInt(u) => Value::U64(u),
        M::Float(f) => Value::F32(f),
        M::Double(f) => Value::F64(f),
        M::Date(y, mo, d, h, mi, s, us) => {
            chrono::NaiveDate::from_ymd_opt(y.into(), mo.into(), d.into())
                .and_then(|date| date.and_hms_micro_opt(h.into(), mi.into(), s.into(), us))
                .map_or_else(
                    || {
                        Value::String(format!(
                            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
                            micros_text(us)
                        ))
                    },
                    Value::DateTime,
                )
        }
        M::Time(negative, days, h, mi, s, us) => {
            let time = chrono::NaiveTime::from_hms_micro_opt(h.into(), mi.into(), s.into(), us);
            match time {
                Some(t) if !negative && days == 0 => Value::Time(t),
                _ => Value::String(format!(
                    "{}{:02}:{mi:02}:{s:02}{}",
                    if negative { "-" } else { "" },
                    u64::from(days) * 24 + u64::from(h),
                    micros_text(us)
                )),
            }
        }
    }
}

/// `.ffffff` for a non-zero fraction of a second, else nothing.
fn micros_text(us: u32) -> String {
    if us == 0 {
        String::new()
    } else {
        format!(".{us:06}")
    }
}
