//! The fake-delete flag (B7): the `bool` field marked `#[orm(fake_delete)]`, of any
//! name. Its column holds 0 while the row is alive and the row's ID once it is
//! fake-deleted (as the Go original does), so any number of deleted rows can share the
//! values of a unique index that includes the flag.
//!
//! The attribute, not the field's name, switches it on: the name alone (the Go
//! original's convention, and this crate's before) turned a typo or an `Option<bool>`
//! silently into a plain column. The derive refuses a field named `fake_delete`
//! without the attribute, and the attribute on anything but a `bool`.
//!
//! The field stays a `bool`: [`FakeDeleteCodec`] reads any non-zero value as `true`;
//! the flusher writes the row's ID where the field says `true`. This module owns the
//! column's values; the column type is set in `TableSchema::build`, the read filter
//! (`= 0`) lives in `load/`, the migration of an old `bool` column in `alter.rs`.

use super::codec::{integer, unexpected, Codec};
use crate::Value;

/// The codec the derive gives the `#[orm(fake_delete)]` field.
#[derive(Debug)]
pub struct FakeDeleteCodec;

impl Codec<bool> for FakeDeleteCodec {
    /// 1 or 0, an integer for every dialect's column type; the flusher writes the
    /// row's ID for 1 (it knows the ID, the field does not).
    #[inline]
    fn encode(v: &bool) -> Value {
        Value::U64(u64::from(*v))
    }
    /// Any non-zero value (the ID of a deleted row) is `true`.
    #[inline]
    fn decode(v: Value) -> Result<bool, String> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::I64(i) => Ok(i != 0),
            Value::U64(u) => Ok(u != 0),
            Value::Null => Err(unexpected(&Value::Null, "a fake-delete flag")),
            other => integer(other).map(|i| i != 0),
        }
    }
}

/// Whether a fake-delete cell (written, or read back from any server) marks the row
/// deleted: PostgreSQL reads the `numeric(20,0)` flag of a `u64` key as a decimal.
pub(crate) fn is_deleted(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::I64(i) => *i != 0,
        Value::U64(u) => *u != 0,
        Value::Decimal(d) => !d.is_zero(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_cell_reads_as_deleted_unless_zero() {
        assert!(is_deleted(&Value::Decimal(rust_decimal::Decimal::from(7))));
        assert!(!is_deleted(&Value::Decimal(rust_decimal::Decimal::ZERO)));
    }

    #[test]
    fn any_non_zero_value_reads_as_deleted() {
        assert_eq!(FakeDeleteCodec::decode(Value::I64(0)), Ok(false));
        assert_eq!(FakeDeleteCodec::decode(Value::I64(42)), Ok(true));
        assert_eq!(FakeDeleteCodec::decode(Value::U64(u64::MAX)), Ok(true));
        assert_eq!(FakeDeleteCodec::decode(Value::String("7".into())), Ok(true));
        assert_eq!(FakeDeleteCodec::decode(Value::Bool(true)), Ok(true));
        assert!(FakeDeleteCodec::decode(Value::Null).is_err());
        assert!(is_deleted(&Value::Bool(true)) && !is_deleted(&Value::I64(0)));
    }
}
