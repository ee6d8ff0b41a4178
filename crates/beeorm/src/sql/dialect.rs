//! [`DialectKind`]: what the planner of a flush (and the loaders) must know about a
//! server to write its statements, in one place instead of branches of the flush.
//!
//! Each method is a `match` on a `Copy` enum: no dynamic call, nothing allocated
//! unless the method returns SQL text. The SQL they write uses the dialect's own
//! placeholder style ([`SqlWriter`]); statements built with them are sent verbatim.
//!
//! | | MySQL / MariaDB | PostgreSQL | SQLite |
//! |---|---|---|---|
//! | placeholders | `?` | `$1`, `$2`, … | `?` |
//! | parameters per statement | 65,535 | 65,535 | 32,766 |
//! | IDs of a multi-row INSERT | first ID (`last_insert_id`), then `+ step` | `RETURNING id`, one row each | last ID (`last_insert_rowid`), back by `step` |
//! | explicit IDs | — | move the identity sequence past them | — |
//! | upsert | `ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), …` | `ON CONFLICT DO NOTHING RETURNING id`, then a lookup per unique key | `ON CONFLICT DO UPDATE SET … RETURNING id` |
//! | duplicate key error | names the index | names the index (`table__Name`) | names the columns: mapped to the index with the schema |

use super::SqlWriter;
use crate::schema::TableSchema;
use crate::{Error, Value};

/// The kind of relational server behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialectKind {
    /// MySQL or MariaDB.
    MySql,
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How an upsert statement reports the ID of the row it inserted or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpsertId {
    /// As the statement's `last_insert_id` (MySQL: `LAST_INSERT_ID(id)`).
    LastInsertId,
    /// As the one row the statement returns (`RETURNING id`).
    Returned,
    /// As the returned row when it inserted; when a unique key clashed nothing is
    /// returned and the row is found (and updated) by [`DialectKind::upsert_lookups`].
    ReturnedOrLookup,
}

impl DialectKind {
    /// Lower-case name, as in traces (`mysql`, `postgres`, `sqlite`).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            DialectKind::MySql => "mysql",
            DialectKind::Sqlite => "sqlite",
            DialectKind::Postgres => "postgres",
        }
    }

    /// The server's name, as in error messages.
    pub(crate) const fn server_name(self) -> &'static str {
        match self {
            DialectKind::MySql => "MySQL",
            DialectKind::Postgres => "PostgreSQL",
            DialectKind::Sqlite => "SQLite",
        }
    }

    /// Quotes an identifier.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            DialectKind::MySql => format!("`{}`", ident.replace('`', "``")),
            DialectKind::Sqlite | DialectKind::Postgres => {
                format!("\"{}\"", ident.replace('"', "\"\""))
            }
        }
    }

    /// Most parameters one statement may carry. PostgreSQL counts them in 16 bits on
    /// the wire (with more, tokio-postgres fails with "error parsing response from
    /// server", which reads like a lost connection); MySQL/MariaDB refuse more
    /// placeholders in a prepared statement; SQLite's bundled library is built with
    /// `SQLITE_MAX_VARIABLE_NUMBER` = 32,766.
    pub(crate) const fn max_params(self) -> usize {
        match self {
            DialectKind::MySql | DialectKind::Postgres => 65_535,
            DialectKind::Sqlite => 32_766,
        }
    }

    /// Whether placeholders are numbered (`$1`, PostgreSQL) rather than `?`.
    pub(crate) const fn numbered_placeholders(self) -> bool {
        matches!(self, DialectKind::Postgres)
    }

    /// A statement writer in this dialect's placeholder style.
    pub(crate) fn writer(self, capacity: usize) -> SqlWriter {
        SqlWriter::with_capacity(self, capacity)
    }

    /// Whether an INSERT of server-numbered rows returns their IDs as rows (in the
    /// order of its VALUES rows) rather than as `last_insert_id`.
    pub(crate) const fn insert_returns_ids(self) -> bool {
        matches!(self, DialectKind::Postgres)
    }

    /// What ends an INSERT of server-numbered rows so their IDs come back
    /// ([`DialectKind::insert_returns_ids`]): ` RETURNING <id>`, or nothing.
    pub(crate) fn insert_returning(self, id_column: &str) -> Option<String> {
        self.insert_returns_ids()
            .then(|| format!(" RETURNING {id_column}"))
    }

    /// The ID of the first row of a multi-row INSERT of `rows` rows numbered by
    /// `step`, from the `last_insert_id` the server reported: MySQL reports the first
    /// row's, SQLite the last row's.
    pub(crate) const fn first_insert_id(self, reported: u64, rows: u64, step: u64) -> u64 {
        match self {
            DialectKind::Sqlite => reported.saturating_sub(rows.saturating_sub(1) * step),
            DialectKind::MySql | DialectKind::Postgres => reported,
        }
    }

    /// The statement to run after rows were inserted with explicit IDs, when the
    /// server's ID generator does not move past them by itself (a PostgreSQL
    /// identity sequence). `table` and `id_column` are quoted; `id_name` is the key
    /// column's name as it is (PostgreSQL takes it literally).
    pub(crate) fn sequence_past_explicit_ids(
        self,
        table: &str,
        id_column: &str,
        id_name: &str,
    ) -> Option<String> {
        match self {
            DialectKind::Postgres => Some(format!(
                "SELECT setval(pg_get_serial_sequence('{}', '{}'), (SELECT MAX({id_column}) FROM {table}))",
                table.replace('\'', "''"),
                id_name.replace('\'', "''"),
            )),
            DialectKind::MySql | DialectKind::Sqlite => None,
        }
    }

    /// How an upsert reports its row's ID.
    pub(crate) const fn upsert_id(self) -> UpsertId {
        match self {
            DialectKind::MySql => UpsertId::LastInsertId,
            DialectKind::Sqlite => UpsertId::Returned,
            DialectKind::Postgres => UpsertId::ReturnedOrLookup,
        }
    }

    /// Whether the values of an upsert's update list are parameters of the upsert
    /// statement itself (after its VALUES); on PostgreSQL they go to the lookups.
    pub(crate) const fn upsert_binds_set_values(self) -> bool {
        !matches!(self, DialectKind::Postgres)
    }

    /// Writes what follows `INSERT … VALUES (…)` in an upsert that updates the
    /// `set_columns` (quoted) when a unique key (or the primary key, for an explicit
    /// ID) already holds the row. One placeholder per set column where the dialect
    /// binds them ([`DialectKind::upsert_binds_set_values`]), numbered after the
    /// VALUES' ones.
    ///
    /// MySQL (`ON DUPLICATE KEY UPDATE`) and SQLite (`ON CONFLICT DO UPDATE` without a
    /// target) take whichever key clashed; PostgreSQL's `ON CONFLICT … DO UPDATE`
    /// takes one arbiter index, so a clash on another would fail: it inserts unless
    /// anything clashes and finds the row by each unique key in turn
    /// ([`DialectKind::upsert_lookups`]).
    pub(crate) fn write_upsert_tail<'c>(
        self,
        w: &mut SqlWriter,
        id_column: &str,
        set_columns: impl ExactSizeIterator<Item = &'c str>,
    ) {
        match self {
            DialectKind::MySql => {
                // LAST_INSERT_ID(id) makes the server report the existing row's ID.
                w.push_str(" ON DUPLICATE KEY UPDATE ");
                w.push_str(id_column);
                w.push_str(" = LAST_INSERT_ID(");
                w.push_str(id_column);
                w.push_str(")");
                for c in set_columns {
                    w.push_str(", ");
                    w.push_str(c);
                    w.push_str(" = ");
                    w.param();
                }
            }
            DialectKind::Postgres => {
                w.push_str(" ON CONFLICT DO NOTHING RETURNING ");
                w.push_str(id_column);
            }
            DialectKind::Sqlite => {
                w.push_str(" ON CONFLICT DO UPDATE SET ");
                if set_columns.len() == 0 {
                    w.push_str(id_column);
                    w.push_str(" = ");
                    w.push_str(id_column);
                }
                for (i, c) in set_columns.enumerate() {
                    if i > 0 {
                        w.push_str(", ");
                    }
                    w.push_str(c);
                    w.push_str(" = ");
                    w.param();
                }
                w.push_str(" RETURNING ");
                w.push_str(id_column);
            }
        }
    }

    /// Whether an upsert inserted its row (`Some(true)`) or took an existing one
    /// (`Some(false)`), from what its statement reported: on MySQL its affected rows
    /// (1 for an insert, 2 for a changed existing row, 0 for an unchanged one); on
    /// PostgreSQL whether `ON CONFLICT DO NOTHING` returned the new ID. SQLite's
    /// upsert reports neither: `None`.
    pub(crate) const fn upsert_inserted(
        self,
        affected_rows: Option<u64>,
        returned: bool,
    ) -> Option<bool> {
        match self {
            DialectKind::MySql => match affected_rows {
                Some(1) => Some(true),
                Some(0 | 2) => Some(false),
                _ => None,
            },
            DialectKind::Postgres => Some(returned),
            DialectKind::Sqlite => None,
        }
    }

    /// After an upsert that returned no row ([`UpsertId::ReturnedOrLookup`]): the
    /// statements that find (and update with `set`) the row it clashed with, one per
    /// unique key, in the order to try them; each returns the row's ID. Empty on
    /// dialects whose upsert always reports the ID.
    pub(crate) fn upsert_lookups(
        self,
        schema: &TableSchema,
        id: u64,
        values: &[Value],
        set: &[(String, Value)],
    ) -> Vec<(String, Vec<Value>)> {
        match self {
            DialectKind::Postgres => super::postgres::ddl::upsert_lookups(schema, id, values, set),
            DialectKind::MySql | DialectKind::Sqlite => Vec::new(),
        }
    }

    /// A [`Error::DuplicatedKey`] that names the unique index of `schema` that
    /// failed: SQLite reports the index's columns (`t.a, t.b`), mapped here to the
    /// index's name; MySQL and PostgreSQL already name it. Any other error as it is.
    pub(crate) fn name_duplicated_index(self, e: Error, schema: &TableSchema) -> Error {
        match self {
            #[cfg(feature = "sqlite")]
            DialectKind::Sqlite => super::sqlite::errors::name_unique_index(e, schema),
            _ => {
                let _ = schema;
                e
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [DialectKind; 3] = [
        DialectKind::MySql,
        DialectKind::Postgres,
        DialectKind::Sqlite,
    ];

    fn upsert(kind: DialectKind, set: &[&str]) -> String {
        let mut w = SqlWriter::new(kind);
        w.push_str("INSERT INTO t (a,b) VALUES (");
        w.params(2);
        w.push_str(")");
        kind.write_upsert_tail(&mut w, "id", set.iter().copied());
        w.finish()
    }

    #[test]
    fn upserts_are_rendered_per_dialect() {
        assert_eq!(
            upsert(DialectKind::MySql, &["a", "b"]),
            "INSERT INTO t (a,b) VALUES (?,?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), a = ?, b = ?"
        );
        assert_eq!(
            upsert(DialectKind::Postgres, &["a", "b"]),
            "INSERT INTO t (a,b) VALUES ($1,$2) ON CONFLICT DO NOTHING RETURNING id"
        );
        assert_eq!(
            upsert(DialectKind::Sqlite, &["a", "b"]),
            "INSERT INTO t (a,b) VALUES (?,?) ON CONFLICT DO UPDATE SET a = ?, b = ? RETURNING id"
        );
        assert_eq!(
            upsert(DialectKind::Sqlite, &[]),
            "INSERT INTO t (a,b) VALUES (?,?) ON CONFLICT DO UPDATE SET id = id RETURNING id"
        );
        assert_eq!(
            upsert(DialectKind::MySql, &[]),
            "INSERT INTO t (a,b) VALUES (?,?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)"
        );
        for kind in ALL {
            assert_eq!(
                kind.upsert_binds_set_values(),
                kind != DialectKind::Postgres
            );
        }
    }

    #[test]
    fn upserts_report_whether_they_inserted() {
        assert_eq!(
            DialectKind::MySql.upsert_inserted(Some(1), false),
            Some(true)
        );
        assert_eq!(
            DialectKind::MySql.upsert_inserted(Some(2), false),
            Some(false)
        );
        assert_eq!(
            DialectKind::MySql.upsert_inserted(Some(0), false),
            Some(false)
        );
        assert_eq!(DialectKind::MySql.upsert_inserted(None, false), None);
        assert_eq!(
            DialectKind::Postgres.upsert_inserted(None, true),
            Some(true)
        );
        assert_eq!(
            DialectKind::Postgres.upsert_inserted(None, false),
            Some(false)
        );
        assert_eq!(DialectKind::Sqlite.upsert_inserted(None, true), None);
        assert_eq!(DialectKind::MySql.upsert_id(), UpsertId::LastInsertId);
        assert_eq!(DialectKind::Sqlite.upsert_id(), UpsertId::Returned);
        assert_eq!(
            DialectKind::Postgres.upsert_id(),
            UpsertId::ReturnedOrLookup
        );
    }

    #[test]
    fn first_ids_and_returning() {
        // MySQL reports the first row's ID, SQLite the last one's.
        assert_eq!(DialectKind::MySql.first_insert_id(10, 3, 2), 10);
        assert_eq!(DialectKind::Sqlite.first_insert_id(14, 3, 2), 10);
        assert_eq!(DialectKind::Sqlite.first_insert_id(1, 1, 1), 1);
        assert_eq!(
            DialectKind::Postgres.insert_returning("\"id\"").as_deref(),
            Some(" RETURNING \"id\"")
        );
        assert_eq!(DialectKind::MySql.insert_returning("`id`"), None);
        assert_eq!(DialectKind::Sqlite.insert_returning("\"id\""), None);
        assert_eq!(
            DialectKind::Postgres
                .sequence_past_explicit_ids("\"it's\"", "\"id\"", "id")
                .as_deref(),
            Some("SELECT setval(pg_get_serial_sequence('\"it''s\"', 'id'), (SELECT MAX(\"id\") FROM \"it's\"))")
        );
        assert_eq!(
            DialectKind::MySql.sequence_past_explicit_ids("t", "id", "id"),
            None
        );
    }

    #[test]
    fn limits_names_and_quotes() {
        assert_eq!(DialectKind::Sqlite.max_params(), 32_766);
        assert_eq!(DialectKind::Postgres.max_params(), 65_535);
        assert_eq!(DialectKind::MySql.quote("a`b"), "`a``b`");
        assert_eq!(DialectKind::Postgres.quote("a\"b"), "\"a\"\"b\"");
        for kind in ALL {
            assert_eq!(kind.numbered_placeholders(), kind == DialectKind::Postgres);
            assert!(!kind.name().is_empty() && !kind.server_name().is_empty());
        }
    }
}
