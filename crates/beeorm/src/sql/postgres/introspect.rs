//! PostgreSQL introspection: every table, column, CHECK, index and foreign key of
//! the current schema, read from the catalogs in five queries and turned into the
//! comparable form of [`DbSnapshot`] (the same keys [`super::ddl`] produces).

use super::ddl::{is_check_of, key, normalize_default};
use crate::sql::pool::SqlPool;
use crate::sql::{add_foreign_keys, add_indexes, DbSnapshot, DbTable};
use crate::{Result, Value};

/// Every table of the pool's current schema, in comparable form.
pub(crate) async fn snapshot(pool: &SqlPool) -> Result<DbSnapshot> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let tables = pool
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            vec![],
        )
        .await?
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    let columns = pool
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            vec![],
        )
        .await?
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                text(&r[1]),
                text(&r[2]),
                r[3] == Value::Bool(true),
                r[4].as_str().map(str::to_string),
                r[5] == Value::Bool(true),
            )
        })
        .collect();
    let checks = pool
        .query(
            "SELECT c.relname::text, con.conname::text FROM pg_constraint con \
             JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND con.contype = 'c'",
            vec![],
        )
        .await?
        .iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect();
    let indexes = pool
        .query(
            "SELECT t.relname::text, i.relname::text, ix.indisunique, a.attname::text \
             FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_namespace ns ON ns.oid = t.relnamespace \
             CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
             WHERE ns.nspname = current_schema() AND NOT ix.indisprimary \
             ORDER BY t.relname, i.relname, k.n",
            vec![],
        )
        .await?
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                text(&r[1]),
                r[2] == Value::Bool(true),
                text(&r[3]),
            )
        })
        .collect();
    let mut snap = snapshot_from_rows(tables, columns, checks, indexes);
    let fks = pool
        .query(
            "SELECT cl.relname::text, c.conname::text, a.attname::text, rc.relname::text, \
             CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END \
             FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = cl.relnamespace JOIN pg_class rc ON rc.oid = c.confrelid \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
            vec![],
        )
        .await?;
    add_foreign_keys(
        &mut snap,
        fks.iter().map(|r| std::array::from_fn(|i| text(&r[i]))),
    );
    Ok(snap)
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
    add_indexes(&mut snap, indexes);
    snap
}
