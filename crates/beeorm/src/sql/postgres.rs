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
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type};

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
        if col.primary_key {
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
        if col.primary_key {
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

/// Says which value did not fit which integer type (the driver only says "error
/// serializing parameter N").
fn out_of_range(v: &Value, ty: &Type) -> BoxError {
    let shown = match v {
        Value::I64(i) => i.to_string(),
        Value::U64(u) => u.to_string(),
        other => format!("{other:?}"),
    };
    format!("{shown} is out of range for PostgreSQL {ty}").into()
}

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
            Type::INT2 => i16::try_from(int()?)
                .map_err(|_| out_of_range(v, ty))?
                .to_sql(ty, out),
            Type::INT4 => i32::try_from(int()?)
                .map_err(|_| out_of_range(v, ty))?
                .to_sql(ty, out),
            Type::INT8 => i64::try_from(int()?)
                .map_err(|_| out_of_range(v, ty))?
                .to_sql(ty, out),
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
///
/// Beyond the types entities use: `uuid`, `interval`, `inet`/`cidr`,
/// `macaddr`/`macaddr8`, `pg_lsn`, `xml` and `pg_node_tree` arrive as text, exactly as
/// the server prints them; arrays (of any dimension, of any type decoded here) as
/// [`Value::Json`] arrays; `void` as NULL; enum and domain types as their text and base
/// type; `reg*` object identifiers and `xid`/`cid` as their number. A column of any
/// other type, or a value its type's decoder refuses (a `NaN` numeric), is an
/// [`Error::ColumnType`](crate::Error::ColumnType) naming the column and its type.
pub(crate) fn cell(
    row: &tokio_postgres::Row,
    i: usize,
    pool: &str,
    sql: &str,
) -> crate::Result<Value> {
    let failed = |reason: String| {
        let column = &row.columns()[i];
        crate::Error::ColumnType {
            pool: pool.to_string(),
            sql: sql.into(),
            column: column.name().to_string(),
            type_name: column.type_().name().to_string(),
            reason: reason.into(),
        }
    };
    let raw = row
        .try_get::<_, Option<Raw<'_>>>(i)
        .map_err(|e| failed(e.to_string()))?;
    match raw {
        None => Ok(Value::Null),
        Some(Raw(raw)) => decode(row.columns()[i].type_(), raw).map_err(|e| failed(e.to_string())),
    }
}

/// A cell's bytes in the binary format, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A non-NULL value of type `ty` from its binary format.
fn decode(ty: &Type, raw: &[u8]) -> Result<Value, BoxError> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::CHAR => Value::String(char::from(i8::from_sql(ty, raw)? as u8).to_string()),
        Type::INT2 => Value::I64(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => Value::I64(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => Value::I64(i64::from_sql(ty, raw)?),
        Type::OID => Value::I64(u32::from_sql(ty, raw)?.into()),
        Type::FLOAT4 => Value::F32(f32::from_sql(ty, raw)?),
        Type::FLOAT8 => Value::F64(f64::from_sql(ty, raw)?),
        Type::NUMERIC => Value::Decimal(rust_decimal::Decimal::from_sql(ty, raw)?),
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::DATE => Value::Date(chrono::NaiveDate::from_sql(ty, raw)?),
        Type::TIMESTAMP => Value::DateTime(chrono::NaiveDateTime::from_sql(ty, raw)?),
        Type::TIMESTAMPTZ => {
            Value::DateTime(chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?.naive_utc())
        }
        Type::TIME => PgTime::from_sql(ty, raw)?.0,
        Type::JSON | Type::JSONB => Value::Json(serde_json::Value::from_sql(ty, raw)?),
        Type::UUID => Value::String(uuid_text(raw)?),
        Type::INTERVAL => Value::String(interval_text(raw)?),
        Type::INET | Type::CIDR => Value::String(inet_text(raw, *ty == Type::CIDR)?),
        Type::MACADDR | Type::MACADDR8 => Value::String(mac_text(raw)),
        // `void_send` sends nothing: a function called for its effect.
        Type::VOID => Value::Null,
        Type::XML | Type::PG_NODE_TREE => Value::String(std::str::from_utf8(raw)?.to_owned()),
        // Object identifiers (`regclass`, `regproc`, …) and transaction ids: numbers.
        Type::REGPROC
        | Type::REGPROCEDURE
        | Type::REGOPER
        | Type::REGOPERATOR
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGCONFIG
        | Type::REGDICTIONARY
        | Type::REGNAMESPACE
        | Type::REGROLE
        | Type::REGCOLLATION
        | Type::XID
        | Type::CID => Value::I64(u32::from_be_bytes(take::<4>(raw, &mut 0)?).into()),
        Type::XID8 => Value::U64(u64::from_be_bytes(take::<8>(raw, &mut 0)?)),
        Type::PG_LSN => {
            let lsn = u64::from_be_bytes(take::<8>(raw, &mut 0)?);
            Value::String(format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff))
        }
        // Statistics arrays of any element type: the array names its element.
        Type::ANYARRAY => Value::Json(array_json(None, raw)?),
        _ => match ty.kind() {
            Kind::Array(element) => Value::Json(array_json(Some(element), raw)?),
            Kind::Domain(base) => decode(base, raw)?,
            Kind::Enum(_) => Value::String(std::str::from_utf8(raw)?.to_owned()),
            _ if <String as FromSql>::accepts(ty) => Value::String(String::from_sql(ty, raw)?),
            _ => {
                return Err(
                    "beeorm has no decoder for this type; cast the column to text (`::text`)"
                        .into(),
                )
            }
        },
    })
}

/// Reads a big-endian number of `N` bytes at `*at`, moving past it.
fn take<const N: usize>(raw: &[u8], at: &mut usize) -> Result<[u8; N], BoxError> {
    let bytes = raw
        .get(*at..*at + N)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or("truncated binary value")?;
    *at += N;
    Ok(bytes)
}

/// `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`.
fn uuid_text(raw: &[u8]) -> Result<String, BoxError> {
    let b: [u8; 16] = raw.try_into().map_err(|_| "a uuid has 16 bytes")?;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    Ok(out)
}

/// The server's own text (`IntervalStyle = postgres`): `1 year 2 mons -3 days
/// +04:05:06.5`, `00:00:00` for zero.
fn interval_text(raw: &[u8]) -> Result<String, BoxError> {
    use std::fmt::Write;
    let mut at = 0;
    let micros = i64::from_be_bytes(take::<8>(raw, &mut at)?);
    let days = i64::from(i32::from_be_bytes(take::<4>(raw, &mut at)?));
    let months = i64::from(i32::from_be_bytes(take::<4>(raw, &mut at)?));
    let mut out = String::new();
    // As the server's `AddPostgresIntPart`: a "+" only right after a negative part.
    let (mut is_zero, mut is_before) = (true, false);
    for (value, unit) in [(months / 12, "year"), (months % 12, "mon"), (days, "day")] {
        if value == 0 {
            continue;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value == 1 { "" } else { "s" }
        );
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || micros != 0 {
        let abs = micros.unsigned_abs();
        let (hours, rest) = (abs / 3_600_000_000, abs % 3_600_000_000);
        let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
        let sign = if micros < 0 {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let _ = write!(
            out,
            "{}{sign}{hours:02}:{minutes:02}:{seconds:02}",
            if is_zero { "" } else { " " }
        );
        if fraction != 0 {
            let digits = format!("{fraction:06}");
            let _ = write!(out, ".{}", digits.trim_end_matches('0'));
        }
    }
    Ok(out)
}

/// `192.168.0.1`, `192.168.0.0/24`, `2001:db8::/32`: the netmask shown for `cidr`
/// always, for `inet` when it is not the whole address.
fn inet_text(raw: &[u8], cidr: bool) -> Result<String, BoxError> {
    let mut at = 0;
    let [family, bits, _is_cidr, len] = take::<4>(raw, &mut at)?;
    let addr = raw.get(at..).unwrap_or_default();
    let (ip, max_bits) = match (family, len, addr.len()) {
        (2, 4, 4) => (
            std::net::IpAddr::from(<[u8; 4]>::try_from(addr).map_err(|_| "bad inet")?),
            32,
        ),
        (3, 16, 16) => (
            std::net::IpAddr::from(<[u8; 16]>::try_from(addr).map_err(|_| "bad inet")?),
            128,
        ),
        _ => return Err(format!("unknown inet family {family} with {len} bytes").into()),
    };
    Ok(if cidr || bits != max_bits {
        format!("{ip}/{bits}")
    } else {
        ip.to_string()
    })
}

/// `08:00:2b:01:02:03`.
fn mac_text(raw: &[u8]) -> String {
    raw.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An array in the binary format (dimensions, then the elements in row-major order)
/// as nested JSON arrays; each element decoded by [`decode`], then made JSON.
/// `element` is the column type's element type, `None` for `anyarray`, whose values
/// name their element type by OID.
fn array_json(element: Option<&Type>, raw: &[u8]) -> Result<serde_json::Value, BoxError> {
    let mut at = 0;
    let ndim = i32::from_be_bytes(take::<4>(raw, &mut at)?);
    let _has_nulls = take::<4>(raw, &mut at)?;
    let oid = u32::from_be_bytes(take::<4>(raw, &mut at)?);
    let by_oid;
    let element = match element {
        Some(e) => e,
        None => {
            by_oid = Type::from_oid(oid)
                .ok_or_else(|| format!("an array of type OID {oid}, which beeorm does not know"))?;
            &by_oid
        }
    };
    // PostgreSQL's MAXDIM is 6.
    let ndim = usize::try_from(ndim)
        .ok()
        .filter(|n| *n <= 6)
        .ok_or("an array has 0 to 6 dimensions")?;
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let len = i32::from_be_bytes(take::<4>(raw, &mut at)?);
        let _lower_bound = take::<4>(raw, &mut at)?;
        dims.push(usize::try_from(len).map_err(|_| "negative array length")?);
    }
    if dims.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    array_level(element, raw, &mut at, &dims)
}

/// One dimension of an array: `dims[0]` items, each an array of `dims[1..]` or an
/// element.
fn array_level(
    element: &Type,
    raw: &[u8],
    at: &mut usize,
    dims: &[usize],
) -> Result<serde_json::Value, BoxError> {
    let (&len, inner) = dims.split_first().ok_or("array without dimensions")?;
    // Never trust a length for an allocation: each element takes 4 bytes at least.
    let mut items = Vec::with_capacity(len.min(raw.len() / 4));
    for _ in 0..len {
        if !inner.is_empty() {
            items.push(array_level(element, raw, at, inner)?);
            continue;
        }
        let size = i32::from_be_bytes(take::<4>(raw, at)?);
        let item = match usize::try_from(size) {
            // -1: NULL.
            Err(_) => serde_json::Value::Null,
            Ok(size) => {
                let bytes = raw.get(*at..*at + size).ok_or("truncated array element")?;
                *at += size;
                json_of(decode(element, bytes)?)
            }
        };
        items.push(item);
    }
    Ok(serde_json::Value::Array(items))
}

/// A decoded array element as JSON: numbers as numbers (decimals as exact text),
/// dates, times and bytes as the server prints them.
fn json_of(v: Value) -> serde_json::Value {
    use serde_json::Value as J;
    let float = |f: f64| {
        serde_json::Number::from_f64(f).map_or_else(|| J::String(f.to_string()), J::Number)
    };
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(b),
        Value::I64(i) => J::from(i),
        Value::U64(u) => J::from(u),
        Value::F32(f) => float(f64::from(f)),
        Value::F64(f) => float(f),
        Value::Decimal(d) => J::String(d.to_string()),
        Value::String(s) => J::String(s),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            J::String(s)
        }
        Value::Date(d) => J::String(d.to_string()),
        Value::DateTime(d) => J::String(d.to_string()),
        Value::Time(t) => J::String(t.to_string()),
        Value::Json(j) => j,
    }
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
    fn malformed_binary_values_are_errors_not_panics() {
        let int4_array = Type::INT4_ARRAY;
        // 1 dimension of 2^31-1 elements, then nothing.
        let mut huge = Vec::new();
        for n in [1i32, 0, 23, i32::MAX, 1] {
            huge.extend_from_slice(&n.to_be_bytes());
        }
        for raw in [&[][..], &[0, 0, 0, 1][..], &huge[..]] {
            assert!(decode(&int4_array, raw).is_err(), "{raw:?}");
        }
        // An element longer than what is left.
        let mut long = huge.clone();
        long[12..16].copy_from_slice(&1i32.to_be_bytes());
        long.extend_from_slice(&100i32.to_be_bytes());
        assert!(decode(&int4_array, &long).is_err());
        assert!(decode(&Type::UUID, &[1, 2, 3]).is_err());
        assert!(decode(&Type::INTERVAL, &[0; 15]).is_err());
        assert!(decode(&Type::INET, &[2, 32, 0, 4, 1]).is_err());
        assert!(decode(&Type::INET, &[9, 32, 0, 4, 1, 2, 3, 4]).is_err());
        assert!(decode(
            &Type::ANYARRAY,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        )
        .is_err());
        assert!(decode(&Type::TS_VECTOR, b"x").is_err());
        let mut deep = i32::MAX.to_be_bytes().to_vec();
        deep.extend_from_slice(&[0; 8]);
        assert!(decode(&int4_array, &deep).is_err());
    }

    #[test]
    fn intervals_print_like_the_server() {
        let raw = |micros: i64, days: i32, months: i32| {
            let mut v = micros.to_be_bytes().to_vec();
            v.extend_from_slice(&days.to_be_bytes());
            v.extend_from_slice(&months.to_be_bytes());
            interval_text(&v).unwrap()
        };
        assert_eq!(raw(0, 0, 0), "00:00:00");
        assert_eq!(raw(14_706_000_000, 3, 14), "1 year 2 mons 3 days 04:05:06");
        assert_eq!(raw(-3_600_000_000, 1, 0), "1 day -01:00:00");
        assert_eq!(
            raw(36_000_000_000, 1, -38),
            "-3 years -2 mons +1 day 10:00:00"
        );
        assert_eq!(raw(-1, 0, 0), "-00:00:00.000001");
        assert!(!raw(i64::MIN, i32::MIN, i32::MIN).is_empty());
    }

    #[test]
    fn enum_checks_are_recognised_by_name() {
        assert!(is_check_of("beeorm_plan_0a1b2c3d", "plan"));
        assert!(!is_check_of("beeorm_plan_x_0a1b2c3d", "plan"));
        assert!(!is_check_of("users_plan_check", "plan"));
    }
}
