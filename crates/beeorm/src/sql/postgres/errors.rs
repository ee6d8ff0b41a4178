//! PostgreSQL errors: a server error mapped to a typed [`Error`]. A unique violation
//! names its index (our index names are `table__Name`; a primary key is `PRIMARY`),
//! a foreign key violation its constraint; a closed connection or an I/O failure is
//! a connection error, anything else belongs to the statement.

use crate::Error;

/// The index name of a unique violation's constraint: `PRIMARY` for the primary key,
/// else the part after `table__`.
pub(crate) fn index_of_constraint(constraint: &str) -> String {
    if constraint.ends_with("_pkey") {
        "PRIMARY".to_string()
    } else {
        // Our index names are `table__Name`.
        constraint
            .split_once("__")
            .map_or(constraint, |(_, n)| n)
            .to_string()
    }
}

pub(crate) fn map_error(pool: &str, sql: &str, e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let pool_name = pool.to_string();
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            let constraint = db.constraint().unwrap_or_default();
            let index = index_of_constraint(constraint);
            return Error::DuplicatedKey {
                pool: pool_name,
                index,
                source: Box::new(e),
            };
        }
        if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
            let constraint = db.constraint().map(str::to_string);
            return Error::ForeignKey {
                pool: pool_name,
                constraint,
                source: Box::new(e),
            };
        }
        return Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(e),
        };
    }
    // A closed connection or an I/O failure is a connection problem; anything else
    // (a parameter that cannot be converted, …) belongs to the statement.
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Error::Connection {
            pool: pool_name,
            source: Box::new(e),
        }
    } else {
        Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::index_of_constraint;

    #[test]
    fn constraint_names_become_index_names() {
        assert_eq!(index_of_constraint("users_pkey"), "PRIMARY");
        assert_eq!(index_of_constraint("users__Email"), "Email");
        assert_eq!(index_of_constraint("foreign_name"), "foreign_name");
    }
}
