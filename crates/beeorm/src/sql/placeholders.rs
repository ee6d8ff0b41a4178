//! Placeholders in the dialect's own style, written when SQL is generated.
//!
//! MySQL and SQLite take `?`; PostgreSQL numbers its placeholders (`$1`, `$2`, …) and
//! uses `?` as a jsonb operator. Rewriting `?` to `$n` in every statement at
//! execution (what beeorm did before) mangled such operators in the caller's own SQL,
//! so SQL is now rendered in the right style where it is built ([`SqlWriter`]), and
//! SQL given by callers reaches the server verbatim.
//!
//! One place still reads `?`: condition text written by users in
//! [`Where::new`](crate::Where::new), whose documented contract is `?` placeholders
//! with backtick identifiers. [`SqlWriter::push_question_sql`] renders it into the
//! statement being built, leaving `?` inside quotes alone. Nothing rewrites SQL when
//! it is sent.

use super::DialectKind;

/// Builds one statement's SQL with placeholders in its dialect's style, counting
/// them. Appending is all it does: no allocation beyond the string's growth.
#[derive(Debug)]
pub(crate) struct SqlWriter {
    sql: String,
    numbered: bool,
    count: usize,
}

impl SqlWriter {
    /// An empty statement for `kind`.
    pub(crate) fn new(kind: DialectKind) -> Self {
        Self::with_capacity(kind, 0)
    }

    /// An empty statement for `kind` with room for `capacity` bytes.
    pub(crate) fn with_capacity(kind: DialectKind, capacity: usize) -> Self {
        SqlWriter {
            sql: String::with_capacity(capacity),
            numbered: kind.numbered_placeholders(),
            count: 0,
        }
    }

    /// Appends SQL text that holds no placeholder.
    pub(crate) fn push_str(&mut self, s: &str) {
        self.sql.push_str(s);
    }

    /// Appends one placeholder: `?`, or `$n` for the next `n`.
    pub(crate) fn param(&mut self) {
        self.count += 1;
        if self.numbered {
            use std::fmt::Write;
            self.sql.push('$');
            // Writing into a String cannot fail.
            let _ = write!(self.sql, "{}", self.count);
        } else {
            self.sql.push('?');
        }
    }

    /// Appends `n` placeholders separated by commas.
    pub(crate) fn params(&mut self, n: usize) {
        for i in 0..n {
            if i > 0 {
                self.sql.push(',');
            }
            self.param();
        }
    }

    /// Appends SQL written with `?` placeholders and backtick identifiers (a
    /// [`Where`](crate::Where) condition): each `?` outside quotes (`'…'`, `"…"`,
    /// `` `…` ``) becomes the next placeholder; on PostgreSQL backtick identifiers
    /// become double-quoted ones. Text inside quotes is copied as it is.
    pub(crate) fn push_question_sql(&mut self, sql: &str) {
        if !self.numbered {
            self.count += count_marks(sql);
            self.sql.push_str(sql);
            return;
        }
        let mut quote: Option<char> = None;
        for ch in sql.chars() {
            match (quote, ch) {
                (Some('`'), '`') => {
                    quote = None;
                    self.sql.push('"');
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    self.sql.push(c);
                }
                (Some(_), c) => self.sql.push(c),
                (None, '`') => {
                    quote = Some('`');
                    self.sql.push('"');
                }
                (None, '\'' | '"') => {
                    quote = Some(ch);
                    self.sql.push(ch);
                }
                (None, '?') => self.param(),
                (None, c) => self.sql.push(c),
            }
        }
    }

    /// Placeholders written so far.
    #[cfg_attr(not(test), allow(dead_code))] // Tests.
    pub(crate) fn param_count(&self) -> usize {
        self.count
    }

    /// The SQL so far.
    #[cfg_attr(not(test), allow(dead_code))] // Tests.
    pub(crate) fn as_str(&self) -> &str {
        &self.sql
    }

    /// The statement.
    pub(crate) fn finish(self) -> String {
        self.sql
    }
}

/// Counts the `?` outside quotes of `sql`.
fn count_marks(sql: &str) -> usize {
    let mut quote: Option<u8> = None;
    let mut n = 0;
    for b in sql.bytes() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'?' => n += 1,
                _ => {}
            },
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_number_placeholders_per_dialect() {
        for (kind, want) in [
            (DialectKind::MySql, "INSERT INTO t VALUES (?,?) ON x = ?"),
            (DialectKind::Sqlite, "INSERT INTO t VALUES (?,?) ON x = ?"),
            (
                DialectKind::Postgres,
                "INSERT INTO t VALUES ($1,$2) ON x = $3",
            ),
        ] {
            let mut w = SqlWriter::new(kind);
            w.push_str("INSERT INTO t VALUES (");
            w.params(2);
            w.push_str(") ON x = ");
            w.param();
            assert_eq!(w.param_count(), 3);
            assert_eq!(w.finish(), want, "{kind:?}");
        }
    }

    #[test]
    fn question_sql_continues_the_numbering_and_skips_quotes() {
        let mut w = SqlWriter::new(DialectKind::Postgres);
        w.push_str("SELECT * FROM t WHERE id = ");
        w.param();
        w.push_str(" AND ");
        w.push_question_sql("`name` = '?' AND `a` > ? AND \"q?\" = ?");
        assert_eq!(
            w.as_str(),
            "SELECT * FROM t WHERE id = $1 AND \"name\" = '?' AND \"a\" > $2 AND \"q?\" = $3"
        );
        assert_eq!(w.param_count(), 3);
        let mut w = SqlWriter::new(DialectKind::MySql);
        w.push_question_sql("`name` = '?' AND `a` > ?");
        assert_eq!(w.param_count(), 1);
        assert_eq!(w.finish(), "`name` = '?' AND `a` > ?");
    }
}
