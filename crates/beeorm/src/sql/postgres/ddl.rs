//! PostgreSQL DDL: column types, CREATE TABLE / INDEX, the column changes of an
//! `ALTER TABLE`, and the comparable form of a column or index ([`Dialect`]) that
//! schema sync compares with what introspection reads back.

use crate::schema::{BlobSize, Column, ColumnType, EnumValues, Index, TableSchema};
use crate::sql::{quote_literal, Dialect};

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
        ColumnType::DateTime | ColumnType::DateTimeMicros => "timestamp without time zone".into(),
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
        ColumnType::DateTime | ColumnType::DateTimeMicros => "1970-01-01 00:00:00".into(),
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
pub(super) fn normalize_default(raw: Option<&str>, numeric: bool) -> Option<String> {
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

pub(super) fn key(ty: &str, nullable: bool, default: Option<&str>, extra: &str) -> String {
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

/// The statements that find the row an upsert clashed with, one per unique key of
/// the entity's values, in the order they are tried: `id` when it was given, then
/// each unique index (in name order). Each updates the row with `set` and returns its
/// ID (or, with nothing to set, selects the ID). A key with a NULL value cannot have
/// clashed and is skipped. Placeholders are numbered (`$1`, …).
pub(crate) fn upsert_lookups(
    schema: &TableSchema,
    id: u64,
    values: &[crate::Value],
    set: &[(String, crate::Value)],
) -> Vec<(String, Vec<crate::Value>)> {
    use crate::sql::{DialectKind, SqlWriter};
    use crate::Value;
    let t = schema.templates(DialectKind::Postgres);
    let id_col = &t.columns[0];
    let mut keys: Vec<Vec<(&str, Value)>> = Vec::new();
    if id != 0 {
        keys.push(vec![(id_col.as_str(), Value::U64(id))]);
    }
    for index in schema.indexes().iter().filter(|i| i.unique) {
        let key: Option<Vec<(&str, Value)>> = index
            .columns
            .iter()
            .map(|c| {
                let pos = schema.columns().iter().position(|col| col.name == *c)?;
                let v = values.get(pos.checked_sub(1)?)?;
                (!v.is_null()).then(|| (t.columns[pos].as_str(), v.clone()))
            })
            .collect();
        keys.extend(key);
    }
    let set_columns: Vec<String> = set.iter().map(|(c, _)| PgDialect.quote(c)).collect();
    keys.into_iter()
        .map(|key| {
            let mut w = SqlWriter::new(DialectKind::Postgres);
            let mut params: Vec<Value> = Vec::with_capacity(set.len() + key.len());
            if set.is_empty() {
                w.push_str(&format!("SELECT {id_col} FROM {} WHERE ", t.table));
            } else {
                w.push_str(&format!("UPDATE {} SET ", t.table));
                for (i, c) in set_columns.iter().enumerate() {
                    if i > 0 {
                        w.push_str(", ");
                    }
                    w.push_str(c);
                    w.push_str(" = ");
                    w.param();
                }
                w.push_str(" WHERE ");
                params.extend(set.iter().map(|(_, v)| v.clone()));
            }
            for (i, (c, _)) in key.iter().enumerate() {
                if i > 0 {
                    w.push_str(" AND ");
                }
                w.push_str(c);
                w.push_str(" = ");
                w.param();
            }
            if !set.is_empty() {
                w.push_str(&format!(" RETURNING {id_col}"));
            }
            params.extend(key.into_iter().map(|(_, v)| v));
            (w.finish(), params)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
