//! Schema sync (B5, B6): compare registered tables with the database and produce the
//! statements that bring it in line, each marked safe or unsafe.
//!
//! The comparison is dialect-neutral: the dialect renders both sides into comparable
//! keys ([`Dialect::column_key`], [`Dialect::index_key`]); this module decides what
//! was added, removed or changed, and asks the dialect for the SQL.

use std::collections::BTreeSet;

use crate::schema::TableSchema;
use crate::sql::mysql::MySqlDialect;
use crate::sql::pool::{AnyDialect, SqlPool};
use crate::sql::postgres::PgDialect;
use crate::sql::sqlite::SqliteDialect;
use crate::sql::{DbTable, Dialect};
use crate::{Engine, Result};

/// One statement (or, on SQLite, one all-or-nothing script) that changes a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alter {
    /// The SQL to run.
    pub sql: String,
    /// False when running it can lose data: it drops or changes columns of a table
    /// that has rows, or drops a table that has rows.
    pub safe: bool,
    /// The pool it runs on: a relational pool, or a search pool for a search index
    /// alter (whose `sql` then describes what it does).
    pub pool: String,
    /// What running it does.
    pub(crate) action: AlterAction,
}

/// What an [`Alter`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AlterAction {
    /// Its SQL, on its relational pool.
    Sql,
    /// A search index alter (`search/alters.rs`).
    Search(crate::search::alters::SearchAlter),
}

impl Alter {
    /// Runs the alter on its pool (a search index alter: on its search pool;
    /// creating or rebuilding an index also indexes the rows).
    pub async fn exec(&self, engine: &Engine) -> Result<()> {
        match &self.action {
            AlterAction::Sql => engine.sql_pool(&self.pool)?.execute_script(&self.sql).await,
            AlterAction::Search(alter) => {
                crate::search::alters::exec(engine, &self.pool, alter).await
            }
        }
    }

    /// A search index alter.
    pub(crate) fn search(
        sql: String,
        pool: &str,
        alter: crate::search::alters::SearchAlter,
    ) -> Alter {
        Alter {
            sql,
            safe: true,
            pool: pool.to_string(),
            action: AlterAction::Search(alter),
        }
    }
}

/// What differs between a registered table and the existing one.
struct TableDiff<'a> {
    /// Indexes (position in the expected column list, column).
    added: Vec<usize>,
    changed: Vec<usize>,
    removed: Vec<String>,
    drop_indexes: Vec<String>,
    add_indexes: Vec<&'a crate::schema::Index>,
    /// SQLite: the foreign keys differ (they live in CREATE TABLE: rebuild).
    fk_changed: bool,
    /// The fake-delete column (position), when the table still has it as a boolean:
    /// it becomes an integer holding the ID of each deleted row, which loses nothing.
    fake_delete_from_bool: Option<usize>,
}

impl TableDiff<'_> {
    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.drop_indexes.is_empty()
            && self.add_indexes.is_empty()
            && !self.fk_changed
    }

    fn loses_data(&self) -> bool {
        self.changed
            .iter()
            .any(|&i| Some(i) != self.fake_delete_from_bool)
            || !self.removed.is_empty()
    }

    /// SQLite cannot change a column in place: the table is copied.
    fn needs_rebuild(&self) -> bool {
        !self.changed.is_empty() || !self.removed.is_empty() || self.fk_changed
    }
}

/// Whether a column key read from the database (any dialect) is a boolean column's.
fn is_bool_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("tinyint(1)") || key.contains("boolean")
}

/// The fake-delete column, when it changed and the database still has the boolean
/// flag of earlier versions (see [`TableDiff::fake_delete_from_bool`]).
fn fake_delete_from_bool(
    table: &TableSchema,
    existing: &DbTable,
    changed: &[usize],
) -> Option<usize> {
    let i = table.fake_delete_column()?;
    let name = &table.columns().get(i)?.name;
    (changed.contains(&i)
        && existing
            .columns
            .iter()
            .any(|(n, key)| n == name && is_bool_key(key)))
    .then_some(i)
}

/// `UPDATE` that moves a migrated fake-delete flag (1 for deleted) to the row's ID.
fn fake_delete_ids(quote: impl Fn(&str) -> String, table: &TableSchema, column: usize) -> String {
    let flag = quote(&table.columns()[column].name);
    let id = quote(table.id_column_name());
    format!(
        "UPDATE {} SET {flag} = {id} WHERE {flag} <> 0 AND {flag} <> {id}",
        quote(table.table_name())
    )
}

fn diff<'a>(dialect: &dyn Dialect, table: &'a TableSchema, existing: &DbTable) -> TableDiff<'a> {
    let mut d = TableDiff {
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        drop_indexes: Vec::new(),
        add_indexes: Vec::new(),
        fk_changed: false,
        fake_delete_from_bool: None,
    };
    for (i, col) in table.columns().iter().enumerate() {
        match existing.columns.iter().find(|(n, _)| *n == col.name) {
            None => d.added.push(i),
            Some((_, key)) if *key != dialect.column_key(col) => d.changed.push(i),
            Some(_) => {}
        }
    }
    d.fake_delete_from_bool = fake_delete_from_bool(table, existing, &d.changed);
    let wanted: BTreeSet<&str> = table.columns().iter().map(|c| c.name.as_str()).collect();
    d.removed = existing
        .columns
        .iter()
        .filter(|(n, _)| !wanted.contains(n.as_str()))
        .map(|(n, _)| n.clone())
        .collect();
    let expected: Vec<(String, String, &crate::schema::Index)> = table
        .indexes()
        .iter()
        .map(|i| (dialect.index_name(table, i), dialect.index_key(table, i), i))
        .collect();
    for (name, key) in &existing.indexes {
        match expected.iter().find(|(n, _, _)| n == name) {
            Some((_, k, _)) if k == key => {}
            _ => d.drop_indexes.push(name.clone()),
        }
    }
    for (name, key, index) in &expected {
        if existing.indexes.get(name) != Some(key) {
            d.add_indexes.push(index);
        }
    }
    d
}

fn mysql_alter(dialect: &MySqlDialect, table: &TableSchema, d: &TableDiff<'_>) -> String {
    let cols = table.columns();
    let mut parts = Vec::new();
    parts.extend(
        d.drop_indexes
            .iter()
            .map(|i| format!("DROP INDEX {}", dialect.quote(i))),
    );
    parts.extend(
        d.removed
            .iter()
            .map(|c| format!("DROP COLUMN {}", dialect.quote(c))),
    );
    parts.extend(
        d.changed
            .iter()
            .map(|&i| format!("MODIFY COLUMN {}", dialect.column_definition(&cols[i]))),
    );
    for &i in &d.added {
        let after = i
            .checked_sub(1)
            .map(|p| format!(" AFTER {}", dialect.quote(&cols[p].name)))
            .unwrap_or_else(|| " FIRST".into());
        parts.push(format!(
            "ADD COLUMN {}{after}",
            dialect.column_definition(&cols[i])
        ));
    }
    parts.extend(
        d.add_indexes
            .iter()
            .map(|i| format!("ADD {}", dialect.index_clause(i))),
    );
    format!(
        "ALTER TABLE {} {}",
        dialect.quote(table.table_name()),
        parts.join(", ")
    )
}

fn sqlite_alter(
    dialect: &SqliteDialect,
    table: &TableSchema,
    existing: &DbTable,
    d: &TableDiff<'_>,
) -> String {
    let q = |s: &str| dialect.quote(s);
    let mut stmts: Vec<String> = Vec::new();
    if d.needs_rebuild() {
        // SQLite cannot change a column in place: copy the rows into a new table, the
        // procedure of sqlite.org/lang_altertable.html. Foreign keys are off while it
        // runs: with them on, dropping the old table would first delete its rows, and
        // with them every row that references it with ON DELETE CASCADE (or set those
        // references to NULL). The check before the commit proves the copy complete.
        let tmp = format!("_beeorm_new_{}", table.table_name());
        stmts.extend(dialect.create_table_named(table, &tmp));
        let kept: Vec<&crate::schema::Column> = table
            .columns()
            .iter()
            .filter(|c| existing.columns.iter().any(|(n, _)| *n == c.name))
            .collect();
        let names: Vec<String> = kept.iter().map(|c| q(&c.name)).collect();
        let flag = d.fake_delete_from_bool.map(|i| &table.columns()[i].name);
        let exprs: Vec<String> = kept
            .iter()
            .map(|c| {
                if Some(&c.name) == flag {
                    // The old boolean flag becomes the deleted row's ID.
                    format!(
                        "CASE WHEN {} THEN {} ELSE 0 END",
                        q(&c.name),
                        q(table.id_column_name())
                    )
                } else {
                    dialect.copy_expression(c)
                }
            })
            .collect();
        stmts.push(format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            q(&tmp),
            names.join(", "),
            exprs.join(", "),
            q(table.table_name())
        ));
        stmts.push(format!("DROP TABLE {}", q(table.table_name())));
        stmts.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            q(&tmp),
            q(table.table_name())
        ));
        stmts.extend(table.indexes().iter().map(|i| dialect.index_key(table, i)));
        return format!(
            "{}{}{}",
            crate::sql::sqlite::REBUILD_HEAD,
            stmts.join(";\n"),
            crate::sql::sqlite::REBUILD_TAIL
        );
    } else {
        stmts.extend(
            d.drop_indexes
                .iter()
                .map(|i| format!("DROP INDEX {}", q(i))),
        );
        stmts.extend(d.added.iter().map(|&i| {
            format!(
                "ALTER TABLE {} ADD COLUMN {}",
                q(table.table_name()),
                dialect.column_definition(&table.columns()[i])
            )
        }));
        stmts.extend(d.add_indexes.iter().map(|i| dialect.index_key(table, i)));
    }
    stmts.join(";\n")
}

/// PostgreSQL: one transactional script — index drops, one `ALTER TABLE` with every
/// column change, index creations.
fn pg_alter(
    dialect: &PgDialect,
    table: &TableSchema,
    existing: &DbTable,
    d: &TableDiff<'_>,
) -> String {
    let q = |s: &str| dialect.quote(s);
    let cols = table.columns();
    let mut stmts: Vec<String> = d
        .drop_indexes
        .iter()
        .map(|i| format!("DROP INDEX {}", q(i)))
        .collect();
    let mut clauses: Vec<String> = d
        .removed
        .iter()
        .map(|c| format!("DROP COLUMN {}", q(c)))
        .collect();
    for &i in &d.changed {
        if Some(i) == d.fake_delete_from_bool {
            // No cast from boolean to an integer: the flag becomes the row's ID.
            let name = q(&cols[i].name);
            clauses.push(format!("ALTER COLUMN {name} DROP DEFAULT"));
            clauses.push(format!(
                "ALTER COLUMN {name} TYPE {} USING CASE WHEN {name} THEN {} ELSE 0 END",
                crate::sql::postgres::column_type(&cols[i].ty),
                q(table.id_column_name())
            ));
            clauses.push(format!("ALTER COLUMN {name} SET DEFAULT 0"));
            clauses.push(format!("ALTER COLUMN {name} SET NOT NULL"));
            continue;
        }
        let (before, change) =
            dialect.change_column(table.table_name(), &cols[i], &existing.checks);
        stmts.extend(before);
        clauses.extend(change);
    }
    clauses.extend(
        d.added
            .iter()
            .map(|&i| format!("ADD COLUMN {}", dialect.column_definition(&cols[i]))),
    );
    if !clauses.is_empty() {
        stmts.push(format!(
            "ALTER TABLE {} {}",
            q(table.table_name()),
            clauses.join(", ")
        ));
    }
    stmts.extend(d.add_indexes.iter().map(|i| dialect.create_index(table, i)));
    stmts.join(";\n")
}

async fn has_rows(pool: &SqlPool, dialect: &dyn Dialect, table: &str) -> Result<bool> {
    let sql = format!("SELECT 1 FROM {} LIMIT 1", dialect.quote(table));
    Ok(!pool.query(&sql, vec![]).await?.is_empty())
}

/// Every alter that brings one pool in line with `tables`. With `drop_unknown`, tables
/// of the pool that no entity uses are dropped too.
pub(crate) async fn plan(
    pool: &SqlPool,
    tables: &[&TableSchema],
    drop_unknown: bool,
) -> Result<Vec<Alter>> {
    let any = pool.dialect().await?;
    let dialect = any.as_dialect();
    let snapshot = pool.snapshot().await?;
    let mut alters = Vec::new();
    let mut creates = Vec::new();
    // Foreign keys (MySQL, PostgreSQL): dropped before anything else, added last, so
    // tables that reference each other can be created and changed.
    let sqlite = matches!(any, AnyDialect::Sqlite(_));
    let mut fk_drops = Vec::new();
    let mut fk_adds = Vec::new();
    let fk_alter = |table: &str, clause: String| Alter {
        sql: format!("ALTER TABLE {} {clause}", dialect.quote(table)),
        safe: true,
        pool: pool.name().to_string(),
        action: AlterAction::Sql,
    };
    let drop_fk = |name: &str| match &any {
        AnyDialect::MySql(_) => format!("DROP FOREIGN KEY {}", dialect.quote(name)),
        _ => format!("DROP CONSTRAINT {}", dialect.quote(name)),
    };
    for table in tables {
        let existing = snapshot.tables.get(table.table_name());
        let empty = std::collections::BTreeMap::new();
        let have = existing.map_or(&empty, |e| &e.foreign_keys);
        if !sqlite {
            for (name, key) in have {
                let wanted = table
                    .foreign_keys()
                    .iter()
                    .any(|fk| fk.name == *name && dialect.foreign_key_key(fk) == *key);
                if !wanted {
                    fk_drops.push(fk_alter(table.table_name(), drop_fk(name)));
                }
            }
            for fk in table.foreign_keys() {
                if have.get(&fk.name) != Some(&dialect.foreign_key_key(fk)) {
                    fk_adds.push(fk_alter(
                        table.table_name(),
                        format!("ADD {}", dialect.foreign_key_clause(fk)),
                    ));
                }
            }
        }
        let Some(existing) = existing else {
            creates.push(Alter {
                sql: dialect.create_table(table).join(";\n"),
                safe: true,
                pool: pool.name().to_string(),
                action: AlterAction::Sql,
            });
            continue;
        };
        let mut d = diff(dialect, table, existing);
        if sqlite {
            let wanted: std::collections::BTreeMap<String, String> = table
                .foreign_keys()
                .iter()
                .map(|fk| (fk.name.clone(), dialect.foreign_key_key(fk)))
                .collect();
            d.fk_changed = wanted != existing.foreign_keys;
        }
        if !d.is_empty() {
            let sql = match &any {
                AnyDialect::MySql(m) => mysql_alter(m, table, &d),
                AnyDialect::Sqlite(s) => sqlite_alter(s, table, existing, &d),
                AnyDialect::Postgres(p) => pg_alter(p, table, existing, &d),
            };
            let safe = !d.loses_data() || !has_rows(pool, dialect, table.table_name()).await?;
            alters.push(Alter {
                sql,
                safe,
                pool: pool.name().to_string(),
                action: AlterAction::Sql,
            });
            if let (AnyDialect::MySql(_), Some(flag)) = (&any, d.fake_delete_from_bool) {
                // MODIFY keeps the 1 of deleted rows; they get their IDs after it.
                alters.push(Alter {
                    sql: fake_delete_ids(|s| dialect.quote(s), table, flag),
                    safe: true,
                    pool: pool.name().to_string(),
                    action: AlterAction::Sql,
                });
            }
        }
        if let (AnyDialect::MySql(m), Some(charset)) = (&any, &existing.charset) {
            if *charset != m.encoding {
                alters.push(Alter {
                    sql: format!(
                        "ALTER TABLE {} CONVERT TO CHARACTER SET {}",
                        dialect.quote(table.table_name()),
                        m.encoding
                    ),
                    safe: !has_rows(pool, dialect, table.table_name()).await?,
                    pool: pool.name().to_string(),
                    action: AlterAction::Sql,
                });
            }
        }
    }
    let mut known: BTreeSet<&str> = tables.iter().map(|t| t.table_name()).collect();
    // beeorm's own tables (the lazy flush's applied entries) are not entities.
    known.insert(LAZY_APPLIED_TABLE);
    if drop_unknown && !sqlite {
        for (name, t) in snapshot
            .tables
            .iter()
            .filter(|(n, _)| !known.contains(n.as_str()))
        {
            for fk in t.foreign_keys.keys() {
                fk_drops.push(fk_alter(name, drop_fk(fk)));
            }
        }
    }
    fk_drops.extend(alters);
    let mut alters = fk_drops;
    alters.extend(creates);
    alters.extend(fk_adds);
    if drop_unknown {
        for name in snapshot
            .tables
            .keys()
            .filter(|n| !known.contains(n.as_str()))
        {
            alters.push(Alter {
                sql: format!("DROP TABLE {}", dialect.quote(name)),
                safe: !has_rows(pool, dialect, name).await?,
                pool: pool.name().to_string(),
                action: AlterAction::Sql,
            });
        }
    }
    Ok(alters)
}

/// The lazy flush's table of applied entries (`flush/lazy_apply.rs`): kept by the
/// alters, never dropped as unknown.
const LAZY_APPLIED_TABLE: &str = "_beeorm_lazy_applied";
