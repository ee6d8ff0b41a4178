//! MySQL / MariaDB DDL: column types, CREATE TABLE, and the comparable form of a
//! column or index ([`Dialect`]) that schema sync compares with what introspection
//! reads back.

use crate::schema::{BlobSize, Column, ColumnType, EnumValues, Index, TableSchema};
use crate::sql::{quote_literal, Dialect};

/// DDL rules for MySQL and MariaDB.
#[derive(Debug, Clone)]
pub(crate) struct MySqlDialect {
    /// Table character set (`utf8mb4` unless configured).
    pub encoding: String,
    /// The server is MariaDB (its `json` is `longtext` + a CHECK).
    pub mariadb: bool,
}

const INT_NAMES: [(u8, &str); 5] = [
    (1, "tinyint"),
    (2, "smallint"),
    (3, "mediumint"),
    (4, "int"),
    (8, "bigint"),
];

fn sign(unsigned: bool) -> &'static str {
    if unsigned {
        " unsigned"
    } else {
        ""
    }
}

fn values_list(values: &EnumValues) -> String {
    match values {
        EnumValues::Values { values, .. } => values
            .iter()
            .map(|v| quote_literal(v))
            .collect::<Vec<_>>()
            .join(","),
        // `validate()` resolves every name before DDL is generated.
        EnumValues::Named(n) => quote_literal(n),
    }
}

/// The MySQL type of a column, as `information_schema.COLUMNS.COLUMN_TYPE` shows it
/// after [`normalize_type`].
pub(crate) fn column_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int { bytes, unsigned } => {
            let name = INT_NAMES
                .iter()
                .find(|(b, _)| b == bytes)
                .map_or("bigint", |(_, n)| n);
            format!("{name}{}", sign(*unsigned))
        }
        ColumnType::Bool => "tinyint(1)".into(),
        ColumnType::Float { double, unsigned } => {
            format!(
                "{}{}",
                if *double { "double" } else { "float" },
                sign(*unsigned)
            )
        }
        ColumnType::Decimal {
            precision,
            scale,
            unsigned,
        } => format!("decimal({precision},{scale}){}", sign(*unsigned)),
        ColumnType::Varchar(n) => format!("varchar({n})"),
        ColumnType::Text => "mediumtext".into(),
        ColumnType::Blob(BlobSize::Blob) => "blob".into(),
        ColumnType::Blob(BlobSize::Medium) => "mediumblob".into(),
        ColumnType::Blob(BlobSize::Long) => "longblob".into(),
        ColumnType::Date => "date".into(),
        ColumnType::DateTime => "datetime".into(),
        ColumnType::DateTimeMicros => "datetime(6)".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Year => "year".into(),
        ColumnType::Enum(v) => format!("enum({})", values_list(v)),
        ColumnType::Set(v) => format!("set({})", values_list(v)),
        ColumnType::Json => "json".into(),
    }
}

fn is_numeric(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::Int { .. }
            | ColumnType::Bool
            | ColumnType::Float { .. }
            | ColumnType::Decimal { .. }
            | ColumnType::Year
    )
}

/// The default of a NOT NULL column, unquoted; `None` when the column has none.
fn default_value(col: &Column) -> Option<String> {
    if col.nullable || col.primary_key {
        return None;
    }
    Some(match &col.ty {
        ColumnType::Int { .. }
        | ColumnType::Bool
        | ColumnType::Float { .. }
        | ColumnType::Decimal { .. }
        | ColumnType::Year => "0".into(),
        ColumnType::Varchar(_) | ColumnType::Set(_) => String::new(),
        ColumnType::Date => "1970-01-01".into(),
        ColumnType::DateTime => "1970-01-01 00:00:00".into(),
        ColumnType::Time => "00:00:00".into(),
        ColumnType::Enum(EnumValues::Values { default, .. }) => default.clone(),
        // MySQL allows no literal default on TEXT, BLOB and JSON columns.
        _ => return None,
    })
}

/// Canonical form of a default read from `information_schema`.
pub(super) fn normalize_default(raw: Option<&str>, numeric: bool) -> Option<String> {
    let raw = raw?;
    if raw == "NULL" {
        return None;
    }
    let unquoted = match raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'").replace("\\\\", "\\"),
        None => raw.to_string(),
    };
    if numeric {
        if let Ok(n) = unquoted.parse::<f64>() {
            return Some(format!("{n}"));
        }
    }
    Some(unquoted)
}

/// Canonical form of `COLUMN_TYPE`: display widths dropped except `tinyint(1)` (bool).
pub(crate) fn normalize_type(raw: &str) -> String {
    // Lower-case the type name only: enum and set values keep their case.
    let t = match raw.find('(') {
        Some(i) => format!("{}{}", raw[..i].to_ascii_lowercase(), &raw[i..]),
        None => raw.to_ascii_lowercase(),
    };
    if t.starts_with("tinyint(1)") && !t.contains("unsigned") {
        return "tinyint(1)".into();
    }
    for name in ["tinyint", "smallint", "mediumint", "int", "bigint", "year"] {
        if let Some(rest) = t.strip_prefix(name) {
            if let Some(after) = rest.strip_prefix('(') {
                if let Some(close) = after.find(')') {
                    if after[..close].chars().all(|c| c.is_ascii_digit()) {
                        return format!("{name}{}", &after[close + 1..]);
                    }
                }
            }
        }
    }
    t
}

pub(super) fn key(ty: &str, nullable: bool, default: Option<&str>, auto_increment: bool) -> String {
    format!(
        "{ty}|{}|{}{}",
        if nullable { "null" } else { "not null" },
        default.map_or("-".to_string(), quote_literal),
        if auto_increment {
            "|auto_increment"
        } else {
            ""
        }
    )
}

impl Dialect for MySqlDialect {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn column_definition(&self, col: &Column) -> String {
        let mut sql = format!("{} {}", self.quote(&col.name), column_type(&col.ty));
        if col.primary_key {
            sql.push_str(" NOT NULL AUTO_INCREMENT");
            return sql;
        }
        if col.nullable {
            sql.push_str(" DEFAULT NULL");
        } else {
            sql.push_str(" NOT NULL");
            if let Some(d) = default_value(col) {
                sql.push_str(" DEFAULT ");
                // Numbers unquoted: `year` reads the string '0' as 2000.
                if is_numeric(&col.ty) {
                    sql.push_str(&d);
                } else {
                    sql.push_str(&quote_literal(&d));
                }
            }
        }
        sql
    }

    fn column_key(&self, col: &Column) -> String {
        let ty = match (&col.ty, self.mariadb) {
            (ColumnType::Json, true) => "longtext".to_string(),
            (ty, _) => column_type(ty),
        };
        let default = normalize_default(
            default_value(col).map(|d| quote_literal(&d)).as_deref(),
            is_numeric(&col.ty),
        );
        key(&ty, col.nullable, default.as_deref(), col.primary_key)
    }

    fn index_name(&self, _table: &TableSchema, index: &Index) -> String {
        index.name.clone()
    }

    fn index_key(&self, _table: &TableSchema, index: &Index) -> String {
        format!(
            "{}({})",
            if index.unique { "unique" } else { "index" },
            index.columns.join(",")
        )
    }

    fn create_table(&self, table: &TableSchema) -> Vec<String> {
        let mut lines: Vec<String> = table
            .columns()
            .iter()
            .map(|c| format!("  {}", self.column_definition(c)))
            .collect();
        for index in table.indexes() {
            lines.push(format!("  {}", self.index_clause(index)));
        }
        lines.push(format!(
            "  PRIMARY KEY ({})",
            self.quote(table.id_column_name())
        ));
        vec![format!(
            "CREATE TABLE {} (\n{}\n) ENGINE=InnoDB DEFAULT CHARSET={}",
            self.quote(table.table_name()),
            lines.join(",\n"),
            self.encoding
        )]
    }
}

impl MySqlDialect {
    /// `INDEX `name` (`a`,`b`)` or `UNIQUE INDEX …`.
    pub(crate) fn index_clause(&self, index: &Index) -> String {
        let cols: Vec<String> = index.columns.iter().map(|c| self.quote(c)).collect();
        format!(
            "{}INDEX {} ({})",
            if index.unique { "UNIQUE " } else { "" },
            self.quote(&index.name),
            cols.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_widths_are_dropped_except_bool() {
        assert_eq!(normalize_type("int(10) unsigned"), "int unsigned");
        assert_eq!(normalize_type("tinyint(1)"), "tinyint(1)");
        assert_eq!(normalize_type("tinyint(3) unsigned"), "tinyint unsigned");
        assert_eq!(normalize_type("year(4)"), "year");
        assert_eq!(normalize_type("bigint(20)"), "bigint");
        assert_eq!(normalize_type("varchar(255)"), "varchar(255)");
        assert_eq!(
            normalize_type("decimal(8,2) unsigned"),
            "decimal(8,2) unsigned"
        );
    }

    #[test]
    fn defaults_compare_in_canonical_form() {
        assert_eq!(normalize_default(Some("'0.00'"), true), Some("0".into()));
        assert_eq!(normalize_default(Some("0000"), true), Some("0".into()));
        assert_eq!(normalize_default(Some("NULL"), false), None);
        assert_eq!(
            normalize_default(Some("'it''s'"), false),
            Some("it's".into())
        );
        assert_eq!(normalize_default(Some("''"), false), Some(String::new()));
    }
}
