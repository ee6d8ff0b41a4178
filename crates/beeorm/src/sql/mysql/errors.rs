//! MySQL errors: a server error mapped to a typed [`Error`]. A duplicate key names
//! its index (MariaDB: `for key 'Email'`; MySQL 8: `for key 'table.Email'`), a
//! foreign key failure its constraint, so callers never parse messages.

use crate::Error;

/// The quoted name after `marker` in a server message (`… for key 'Email'`).
fn quoted_after<'m>(message: &'m str, marker: &str, quote: char) -> Option<&'m str> {
    let start = message.rfind(marker)? + marker.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix(quote)?;
    Some(&rest[..rest.find(quote)?])
}

pub(crate) fn map_error(pool: &str, sql: &str, e: mysql_async::Error) -> Error {
    let pool_name = pool.to_string();
    match e {
        mysql_async::Error::Server(ref s) if s.code == 1062 || s.code == 1586 => {
            // MariaDB: `for key 'Email'`; MySQL 8: `for key 'table.Email'`.
            let key = quoted_after(&s.message, "for key ", '\'').unwrap_or_default();
            let index = key.rsplit('.').next().unwrap_or(key).to_string();
            Error::DuplicatedKey {
                pool: pool_name,
                index,
                source: Box::new(e),
            }
        }
        mysql_async::Error::Server(ref s) if matches!(s.code, 1216 | 1217 | 1451 | 1452) => {
            let constraint = quoted_after(&s.message, "CONSTRAINT ", '`').map(str::to_string);
            Error::ForeignKey {
                pool: pool_name,
                constraint,
                source: Box::new(e),
            }
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Error::Connection {
            pool: pool_name,
            source: Box::new(e),
        },
        other => Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::quoted_after;

    #[test]
    fn key_names_are_read_from_both_message_forms() {
        let maria = "Duplicate entry 'a' for key 'Email'";
        let mysql8 = "Duplicate entry 'a' for key 'users.Email'";
        assert_eq!(quoted_after(maria, "for key ", '\''), Some("Email"));
        assert_eq!(quoted_after(mysql8, "for key ", '\''), Some("users.Email"));
        assert_eq!(quoted_after("no key here", "for key ", '\''), None);
    }
}
