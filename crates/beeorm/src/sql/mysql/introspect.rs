//! MySQL / MariaDB introspection: every table, column, index and foreign key of the
//! pool's database, read from `information_schema` in four queries and turned into
//! the comparable form of [`DbSnapshot`] (the same keys [`super::ddl`] produces).

use super::ddl::{key, normalize_default, normalize_type};
use crate::sql::pool::SqlPool;
use crate::sql::{add_foreign_keys, add_indexes, DbSnapshot, DbTable};
use crate::{Result, Value};

/// Every table of the pool's database, in comparable form.
pub(crate) async fn snapshot(pool: &SqlPool) -> Result<DbSnapshot> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let opt = |v: &Value| v.as_str().map(str::to_string);
    let tables = pool
        .query(
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
            vec![],
        )
        .await?
        .iter()
        .map(|r| (text(&r[0]), opt(&r[1])))
        .collect();
    let columns = pool
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
            vec![],
        )
        .await?
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                text(&r[1]),
                text(&r[2]),
                text(&r[3]) == "YES",
                opt(&r[4]),
                text(&r[5]),
            )
        })
        .collect();
    let indexes = pool
        .query(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            vec![],
        )
        .await?
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                text(&r[1]),
                r[2].as_i64() == Some(1),
                text(&r[3]),
            )
        })
        .collect();
    let mut snap = snapshot_from_rows(tables, columns, indexes);
    let fks = pool
        .query(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
             ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL",
            vec![],
        )
        .await?;
    add_foreign_keys(
        &mut snap,
        fks.iter().map(|r| std::array::from_fn(|i| text(&r[i]))),
    );
    Ok(snap)
}

/// Builds a snapshot from the rows of the three introspection queries.
pub(crate) fn snapshot_from_rows(
    tables: Vec<(String, Option<String>)>,
    columns: Vec<(String, String, String, bool, Option<String>, String)>,
    indexes: Vec<(String, String, bool, String)>,
) -> DbSnapshot {
    let mut snap = DbSnapshot::default();
    for (name, collation) in tables {
        let charset = collation.map(|c| c.split('_').next().unwrap_or_default().to_string());
        snap.tables.insert(
            name,
            DbTable {
                charset,
                ..Default::default()
            },
        );
    }
    for (table, name, ty, nullable, default, extra) in columns {
        if let Some(t) = snap.tables.get_mut(&table) {
            let ty = normalize_type(&ty);
            let numeric = ty.contains("int")
                || ty.starts_with("float")
                || ty.starts_with("double")
                || ty.starts_with("decimal")
                || ty.starts_with("year");
            let default = normalize_default(default.as_deref(), numeric);
            let auto = extra.to_ascii_lowercase().contains("auto_increment");
            t.columns
                .push((name, key(&ty, nullable, default.as_deref(), auto)));
        }
    }
    add_indexes(
        &mut snap,
        indexes
            .into_iter()
            .filter(|(_, index, _, _)| index != "PRIMARY")
            .map(|(table, index, non_unique, column)| (table, index, !non_unique, column)),
    );
    snap
}
