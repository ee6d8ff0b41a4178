//! PostgreSQL: column types, DDL, introspection, parameter binding, row decoding.
//!
//! PostgreSQL is strictly typed, so parameters are bound through [`PgParam`], which
//! converts a [`Value`] to whatever type the server's prepared statement expects (a
//! `Value::I64` into `int2` with a range check, text into `jsonb`, …). Internally all
//! SQL is written with `?` placeholders and backtick identifiers, as for MySQL; the
//! pool rewrites both ([`to_pg_sql`]) before a statement reaches the server.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{quote_literal, DbSnapshot, DbTable, Dialect};
use crate::schema::{codec, BlobSize, Column, ColumnType, EnumValues, Index, TableSchema};
use crate::Value;

/// DDL rules for PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PgDialect;

/// The PostgreSQL type of a column, as `format_type()` prints it.
pub(crate) fn column_type(ty: &ColumnType) -> String {
    match ty {
        // No unsigned types: each takes the next wider signed one (u64 → numeric).
        ColumnType::Int { bytes: 1, .. }
        | ColumnType::Int {
            bytes: 2,
            unsigned: false,
        } => "smallint".into(),
        ColumnType::Int {
            bytes: 2,
            unsigned: true,
        }
        | ColumnType::Int { bytes: 3, .. } => "integer".into(),
        ColumnType::Int {
            bytes: 4,
            unsigned: false,
        } => "integer".into(),
        ColumnType::Int {
            bytes: 4,
            unsigned: true,
        }
        | ColumnType::Int {
            unsigned: false, ..
        } => "bigint".into(),
        ColumnType::Int { .. } => "numeric(20,0)".into(),
        ColumnType::Bool => "boolean".into(),
        ColumnType::Float { double: false, .. } => "real".into(),
        ColumnType::Float { double: true, .. } => "double precision".into(),
        ColumnType::Decimal {
            precision, scale, ..
        } => format!("numeric({precision},{scale})"),
        ColumnType::Varchar(n) => format!("character varying({n})"),
        ColumnType::Text | ColumnType::Set(_) | ColumnType::Enum(_) => "text".into(),
        ColumnType::Blob(BlobSize::Blob | BlobSize::Medium | BlobSize::Long) => "bytea".into(),
        ColumnType::Date => "date".into(),
        ColumnType::DateTime => "timestamp without time zone".into(),
        ColumnType::Time => "time without time zone".into(),
        ColumnType::Year => "smallint".into(),
        ColumnType::Json => "jsonb".into(),
    }
}

fn is_numeric(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Int { .. }
            | ColumnType::Float { .. }
            | ColumnType::Decimal { .. }
            | ColumnType::Year
    )
}

/// The default of a NOT NULL column, unquoted. Every NOT NULL column has one, so a
/// column can be added to a table that holds rows.
fn default_value(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int { .. }
        | ColumnType::Float { .. }
        | ColumnType::Decimal { .. }
        | ColumnType::Year => "0".into(),
        ColumnType::Bool => "false".into(),
        ColumnType::Varchar(_) | ColumnType::Text | ColumnType::Set(_) => String::new(),
        ColumnType::Blob(_) => "\\x".into(),
        ColumnType::Date => "1970-01-01".into(),
        ColumnType::DateTime => "1970-01-01 00:00:00".into(),
        ColumnType::Time => "00:00:00".into(),
        ColumnType::Json => "null".into(),
        ColumnType::Enum(EnumValues::Values { default, .. }) => default.clone(),
        ColumnType::Enum(EnumValues::Named(_)) => String::new(),
    }
}

fn default_literal(ty: &ColumnType) -> String {
    let v = default_value(ty);
    if matches!(ty, ColumnType::Bool) || is_numeric(ty) {
        v
    } else {
        quote_literal(&v)
    }
}

/// Canonical form of a default read back with `pg_get_expr`: casts and quotes gone.
fn normalize_default(raw: Option<&str>, numeric: bool) -> Option<String> {
    let mut s = raw?.trim().to_string();
    if s.eq_ignore_ascii_case("null") || s.starts_with("NULL::") {
        return None;
    }
    // `'x'::character varying` → `'x'`; casts can nest (`('0'::numeric)::…`).
    loop {
        let trimmed = s.trim_start_matches('(').trim_end_matches(')').to_string();
        match trimmed.rfind("::") {
            Some(i) if !trimmed[i..].contains('\'') => s = trimmed[..i].to_string(),
            _ => {
                s = trimmed;
                break;
            }
        }
    }
    let s = match s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => s,
    };
    if numeric {
        if let Ok(n) = s.parse::<f64>() {
            return Some(format!("{n}"));
        }
    }
    Some(s)
}

/// A short, stable hash of an enum's values, so a changed list gets a new CHECK name.
fn values_hash(values: &[String]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for v in values {
        for b in v.bytes().chain(std::iter::once(0)) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    format!("{h:08x}")
}

/// The CHECK constraint of an enum column: its name and its clause.
fn enum_check(col: &Column, quote: impl Fn(&str) -> String) -> Option<(String, String)> {
    let ColumnType::Enum(EnumValues::Values { values, .. }) = &col.ty else {
        return None;
    };
    let list: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
    Some((
        format!("beeorm_{}_{}", col.name, values_hash(values)),
        format!("CHECK ({} IN ({}))", quote(&col.name), list.join(",")),
    ))
}

/// Whether `constraint` is a beeorm enum CHECK of `column`.
pub(crate) fn is_check_of(constraint: &str, column: &str) -> bool {
    constraint
        .strip_prefix("beeorm_")
        .and_then(|r| r.strip_prefix(column))
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|hash| hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A reference column takes the type of the referenced `id` (a foreign key needs it).
fn ref_or_column_type(col: &Column) -> String {
    match &col.reference {
        Some(r) if !r.many => id_type(col).to_string(),
        _ => column_type(&col.ty),
    }
}

fn id_type(col: &Column) -> &'static str {
    match col.ty {
        ColumnType::Int { bytes: 1, .. } => "smallint",
        ColumnType::Int { bytes: 2, .. } => "integer",
        _ => "bigint",
    }
}

fn key(ty: &str, nullable: bool, default: Option<&str>, extra: &str) -> String {
    format!(
        "{ty}|{}|{}|{extra}",
        if nullable { "null" } else { "not null" },
        default.map_or("-".to_string(), quote_literal)
    )
}

impl Dialect for PgDialect {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn column_definition(&self, col: &Column) -> String {
        let name = self.quote(&col.name);
        if col.name == "id" {
            return format!(
                "{name} {} GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                id_type(col)
            );
        }
        let mut sql = format!("{name} {}", ref_or_column_type(col));
        if !col.nullable {
            sql.push_str(" NOT NULL DEFAULT ");
            sql.push_str(&default_literal(&col.ty));
        }
        if let Some((cname, clause)) = enum_check(col, |s| self.quote(s)) {
            sql.push_str(&format!(" CONSTRAINT {} {clause}", self.quote(&cname)));
        }
        sql
    }

    fn column_key(&self, col: &Column) -> String {
        if col.name == "id" {
            return key(id_type(col), false, None, "identity");
        }
        let default = (!col.nullable).then(|| default_value(&col.ty));
        let default = normalize_default(
            default.map(|d| quote_literal(&d)).as_deref(),
            is_numeric(&col.ty),
        );
        let check = enum_check(col, |s| self.quote(s))
            .map(|(n, _)| n)
            .unwrap_or_default();
        key(
            &ref_or_column_type(col),
            col.nullable,
            default.as_deref(),
            &check,
        )
    }

    fn index_name(&self, table: &TableSchema, index: &Index) -> String {
        // Index names are global to a schema, not per table.
        format!("{}__{}", table.table_name(), index.name)
    }

    fn index_key(&self, _table: &TableSchema, index: &Index) -> String {
        format!(
            "{}({})",
            if index.unique { "unique" } else { "index" },
            index.columns.join(",")
        )
    }

    fn create_table(&self, table: &TableSchema) -> Vec<String> {
        let cols: Vec<String> = table
            .columns()
            .iter()
            .map(|c| format!("  {}", self.column_definition(c)))
            .collect();
        let mut out = vec![format!(
            "CREATE TABLE {} (\n{}\n)",
            self.quote(table.table_name()),
            cols.join(",\n")
        )];
        out.extend(table.indexes().iter().map(|i| self.create_index(table, i)));
        out
    }
}

impl PgDialect {
    pub(crate) fn create_index(&self, table: &TableSchema, index: &Index) -> String {
        let cols: Vec<String> = index.columns.iter().map(|c| self.quote(c)).collect();
        format!(
            "CREATE {}INDEX {} ON {} ({})",
            if index.unique { "UNIQUE " } else { "" },
            self.quote(&self.index_name(table, index)),
            self.quote(table.table_name()),
            cols.join(", ")
        )
    }

    /// The clauses of `ALTER TABLE` that turn a column into `col`, preceded by the
    /// statements that must run first (filling NULLs of a column becoming NOT NULL).
    pub(crate) fn change_column(
        &self,
        table: &str,
        col: &Column,
        checks: &[String],
    ) -> (Vec<String>, Vec<String>) {
        let name = self.quote(&col.name);
        let ty = column_type(&col.ty);
        let mut before = Vec::new();
        let mut clauses: Vec<String> = checks
            .iter()
            .filter(|c| is_check_of(c, &col.name))
            .map(|c| format!("DROP CONSTRAINT {}", self.quote(c)))
            .collect();
        clauses.push(format!("ALTER COLUMN {name} TYPE {ty} USING {name}::{ty}"));
        if col.nullable {
            clauses.push(format!("ALTER COLUMN {name} DROP NOT NULL"));
            clauses.push(format!("ALTER COLUMN {name} DROP DEFAULT"));
        } else {
            let default = default_literal(&col.ty);
            before.push(format!(
                "UPDATE {} SET {name} = {default} WHERE {name} IS NULL",
                self.quote(table)
            ));
            clauses.push(format!("ALTER COLUMN {name} SET DEFAULT {default}"));
            clauses.push(format!("ALTER COLUMN {name} SET NOT NULL"));
        }
        if let Some((cname, clause)) = enum_check(col, |s| self.quote(s)) {
            clauses.push(format!("ADD CONSTRAINT {} {clause}", self.quote(&cname)));
        }
        (before, clauses)
    }
}

/// Columns, defaults, checks and indexes of every table in the current schema.
pub(crate) fn snapshot_from_rows(
    tables: Vec<String>,
    columns: Vec<(String, String, String, bool, Option<String>, bool)>,
    checks: Vec<(String, String)>,
    indexes: Vec<(String, String, bool, String)>,
) -> DbSnapshot {
    let mut snap = DbSnapshot::default();
    for t in tables {
        snap.tables.insert(t, DbTable::default());
    }
    for (table, name) in checks {
        if let Some(t) = snap.tables.get_mut(&table) {
            t.checks.push(name);
        }
    }
    for (table, name, ty, not_null, default, identity) in columns {
        if let Some(t) = snap.tables.get_mut(&table) {
            let numeric = ty.starts_with("smallint")
                || ty.starts_with("integer")
                || ty.starts_with("bigint")
                || ty.starts_with("numeric")
                || ty == "real"
                || ty == "double precision";
            let key = if identity {
                key(&ty, !not_null, None, "identity")
            } else {
                let check = t
                    .checks
                    .iter()
                    .find(|c| is_check_of(c, &name))
                    .cloned()
                    .unwrap_or_default();
                key(
                    &ty,
                    !not_null,
                    normalize_default(default.as_deref(), numeric).as_deref(),
                    &check,
                )
            };
            t.columns.push((name, key));
        }
    }
    let mut grouped: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
    for (table, index, unique, column) in indexes {
        grouped
            .entry((table, index))
            .or_insert_with(|| (unique, Vec::new()))
            .1
            .push(column);
    }
    for ((table, index), (unique, cols)) in grouped {
        if let Some(t) = snap.tables.get_mut(&table) {
            t.indexes.insert(
                index,
                format!(
                    "{}({})",
                    if unique { "unique" } else { "index" },
                    cols.join(",")
                ),
            );
        }
    }
    snap
}

/// Rewrites `?` placeholders to `$1…$n` and `` `identifiers` `` to `"identifiers"`,
/// leaving string literals and quoted identifiers alone.
pub(crate) fn to_pg_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains(['?', '`']) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for ch in sql.chars() {
        match (quote, ch) {
            (Some('`'), '`') => {
                quote = None;
                out.push('"');
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '`') => {
                quote = Some('`');
                out.push('"');
            }
            (None, '\'' | '"') => {
                quote = Some(ch);
                out.push(ch);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A [`Value`] bound as a parameter of whatever type the statement expects.
#[derive(Debug)]
pub(crate) struct PgParam<'a>(pub &'a Value);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let v = self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        let int = || -> Result<i128, BoxError> { codec::integer(v.clone()).map_err(Into::into) };
        match *ty {
            Type::BOOL => match v {
                Value::Bool(b) => b.to_sql(ty, out),
                _ => (int()? != 0).to_sql(ty, out),
            },
            Type::INT2 => i16::try_from(int()?)?.to_sql(ty, out),
            Type::INT4 => i32::try_from(int()?)?.to_sql(ty, out),
            Type::INT8 => i64::try_from(int()?)?.to_sql(ty, out),
            Type::FLOAT4 => match v {
                Value::F32(f) => f.to_sql(ty, out),
                _ => (codec::float(v.clone())? as f32).to_sql(ty, out),
            },
            Type::FLOAT8 => codec::float(v.clone())?.to_sql(ty, out),
            Type::NUMERIC => match v {
                Value::U64(u) => rust_decimal::Decimal::from(*u).to_sql(ty, out),
                _ => codec::decimal(v.clone())?.to_sql(ty, out),
            },
            Type::BYTEA => match v {
                Value::Bytes(b) => b.to_sql(ty, out),
                _ => codec::bytes(v.clone())?.to_sql(ty, out),
            },
            Type::DATE => codec::date(v.clone())?.to_sql(ty, out),
            Type::TIMESTAMP => codec::date_time(v.clone())?.to_sql(ty, out),
            Type::TIMESTAMPTZ => codec::date_time(v.clone())?.and_utc().to_sql(ty, out),
            Type::TIME => codec::time(v.clone())?.to_sql(ty, out),
            Type::JSON | Type::JSONB => match v {
                Value::Json(j) => j.to_sql(ty, out),
                _ => codec::json::<serde_json::Value>(v.clone())?.to_sql(ty, out),
            },
            _ => match v {
                Value::String(s) => s.as_str().to_sql(ty, out),
                Value::Bool(b) => b.to_string().to_sql(ty, out),
                other => codec::string(other.clone())
                    .or_else(|_| match other {
                        Value::F64(f) => Ok(f.to_string()),
                        Value::Decimal(d) => Ok(d.to_string()),
                        Value::Date(d) => Ok(d.to_string()),
                        Value::DateTime(d) => Ok(d.to_string()),
                        Value::Time(t) => Ok(t.to_string()),
                        Value::Json(j) => Ok(j.to_string()),
                        _ => Err(format!("cannot send {other:?} as {ty}")),
                    })?
                    .to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A `time` cell: a time of day, or PostgreSQL's `24:00:00` as text (chrono's
/// decoder would wrap it to midnight; as text it fails to read into a `NaiveTime`).
struct PgTime(Value);

impl<'a> tokio_postgres::types::FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let micros = i64::from_be_bytes(raw.try_into()?);
        let secs = u32::try_from(micros.div_euclid(1_000_000))?;
        let nanos = u32::try_from(micros.rem_euclid(1_000_000))? * 1000;
        Ok(PgTime(
            match chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos) {
                Some(t) => Value::Time(t),
                None => Value::String(format!(
                    "{:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )),
            },
        ))
    }

    tokio_postgres::types::accepts!(TIME);
}

/// One cell of a row as a [`Value`], by the column's type.
pub(crate) fn cell(row: &tokio_postgres::Row, i: usize) -> Result<Value, tokio_postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    macro_rules! get {
        ($t:ty, $f:expr) => {
            row.try_get::<_, Option<$t>>(i)?.map_or(Value::Null, $f)
        };
    }
    Ok(match ty {
        Type::BOOL => get!(bool, Value::Bool),
        Type::CHAR => get!(i8, |c: i8| Value::String(((c as u8) as char).to_string())),
        Type::INT2 => get!(i16, |v: i16| Value::I64(v.into())),
        Type::INT4 => get!(i32, |v: i32| Value::I64(v.into())),
        Type::INT8 => get!(i64, Value::I64),
        Type::OID => get!(u32, |v: u32| Value::I64(v.into())),
        Type::FLOAT4 => get!(f32, Value::F32),
        Type::FLOAT8 => get!(f64, Value::F64),
        Type::NUMERIC => get!(rust_decimal::Decimal, Value::Decimal),
        Type::BYTEA => get!(Vec<u8>, Value::Bytes),
        Type::DATE => get!(chrono::NaiveDate, Value::Date),
        Type::TIMESTAMP => get!(chrono::NaiveDateTime, Value::DateTime),
        Type::TIMESTAMPTZ => get!(chrono::DateTime<chrono::Utc>, |d: chrono::DateTime<
            chrono::Utc,
        >| Value::DateTime(
            d.naive_utc()
        )),
        Type::TIME => get!(PgTime, |t: PgTime| t.0),
        Type::JSON | Type::JSONB => get!(serde_json::Value, Value::Json),
        _ => get!(String, Value::String),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_backticks_are_rewritten() {
        assert_eq!(
            to_pg_sql("SELECT `a` FROM `t` WHERE `a` = ? AND b IN (?,?)"),
            "SELECT \"a\" FROM \"t\" WHERE \"a\" = $1 AND b IN ($2,$3)"
        );
        assert_eq!(
            to_pg_sql("SELECT '?', \"?\" FROM t WHERE x = ?"),
            "SELECT '?', \"?\" FROM t WHERE x = $1"
        );
        assert!(matches!(to_pg_sql("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn defaults_lose_their_casts() {
        assert_eq!(
            normalize_default(Some("''::character varying"), false),
            Some(String::new())
        );
        assert_eq!(
            normalize_default(Some("'Free'::text"), false),
            Some("Free".into())
        );
        assert_eq!(
            normalize_default(
                Some("'1970-01-01 00:00:00'::timestamp without time zone"),
                false
            ),
            Some("1970-01-01 00:00:00".into())
        );
        assert_eq!(normalize_default(Some("0"), true), Some("0".into()));
        assert_eq!(
            normalize_default(Some("'0'::numeric"), true),
            Some("0".into())
        );
        assert_eq!(
            normalize_default(Some("'it''s'::text"), false),
            Some("it's".into())
        );
        assert_eq!(normalize_default(Some("NULL::text"), false), None);
    }

    #[test]
    fn enum_checks_are_recognised_by_name() {
        assert!(is_check_of("beeorm_plan_0a1b2c3d", "plan"));
        assert!(!is_check_of("beeorm_plan_x_0a1b2c3d", "plan"));
        assert!(!is_check_of("users_plan_check", "plan"));
    }
}
