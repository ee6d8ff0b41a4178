//! SQLite introspection: `sqlite_master` holds the text of every `CREATE TABLE` and
//! `CREATE INDEX` that ran; a table's columns and foreign keys are read from that
//! text, in the form [`super::ddl`] writes it.

use crate::sql::pool::SqlPool;
use crate::sql::{DbSnapshot, DbTable};
use crate::Result;

/// Every table of the database, in comparable form.
pub(crate) async fn snapshot(pool: &SqlPool) -> Result<DbSnapshot> {
    let rows = pool
        .query(
            "SELECT type, name, tbl_name, sql FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY type DESC",
            vec![],
        )
        .await?;
    let mut snap = DbSnapshot::default();
    for r in &rows {
        let (ty, name, table, sql) = (
            r[0].as_str().unwrap_or_default(),
            r[1].as_str().unwrap_or_default(),
            r[2].as_str().unwrap_or_default(),
            r[3].as_str().unwrap_or_default(),
        );
        match ty {
            "table" => {
                snap.tables.insert(name.to_string(), table_from_sql(sql));
            }
            "index" => {
                if let Some(t) = snap.tables.get_mut(table) {
                    t.indexes.insert(name.to_string(), sql.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(snap)
}

/// Splits the body of a stored `CREATE TABLE` into column definitions
/// (name, definition text), skipping table constraints.
pub(crate) fn parse_create_table(sql: &str) -> Vec<(String, String)> {
    let (Some(start), Some(end)) = (sql.find('('), sql.rfind(')')) else {
        return Vec::new();
    };
    let body = &sql[start + 1..end];
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut from) = (0i32, None::<char>, 0usize);
    for (i, ch) in body.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(body[from..i].trim().to_string());
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(body[from..].trim().to_string());
    parts
        .into_iter()
        .filter_map(|def| {
            let name = if let Some(rest) = def.strip_prefix('"') {
                // A doubled quote inside the name stands for one quote.
                let mut name = String::new();
                let mut chars = rest.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            name.push('"');
                        } else {
                            break;
                        }
                    } else {
                        name.push(c);
                    }
                }
                name
            } else {
                let word = def.split_whitespace().next()?.to_string();
                let upper = word.to_ascii_uppercase();
                if ["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"].contains(&upper.as_str())
                {
                    return None;
                }
                word.trim_matches(|c| c == '`' || c == '[' || c == ']')
                    .to_string()
            };
            Some((name, def))
        })
        .collect()
}

/// A table from its stored CREATE TABLE text.
pub(crate) fn table_from_sql(sql: &str) -> DbTable {
    DbTable {
        columns: parse_create_table(sql),
        foreign_keys: foreign_keys_from_sql(sql),
        ..Default::default()
    }
}

/// The `CONSTRAINT "name" FOREIGN KEY …` lines of a CREATE TABLE text written by
/// [`super::ddl::SqliteDialect::create_table_named`]: name → the clause.
fn foreign_keys_from_sql(sql: &str) -> std::collections::BTreeMap<String, String> {
    sql.split(",\n")
        .map(|part| part.trim().trim_end_matches(')').trim_end())
        .filter(|part| part.starts_with("CONSTRAINT \"") && part.contains(" FOREIGN KEY "))
        .filter_map(|part| {
            let name = part.strip_prefix("CONSTRAINT \"")?.split('"').next()?;
            Some((name.to_string(), part.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_text_splits_into_columns() {
        let cols = parse_create_table(
            "CREATE TABLE \"t\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \"a,b\" TEXT CHECK (\"a,b\" IN ('x,y','z')), \"q\"\"\" INT, PRIMARY KEY (\"id\"))",
        );
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "a,b", "q\""]);
        assert_eq!(cols[1].1, "\"a,b\" TEXT CHECK (\"a,b\" IN ('x,y','z'))");
    }
}
