//! MySQL data source names: the URL form (`mysql://user:pass@host:3306/db`) and the Go
//! driver form of the seed (`user:pass@tcp(host:3306)/db`), plus our own option
//! `limit_connections=N` (default 100).

use crate::{Error, Result};

/// Connections per MySQL pool when the DSN does not say.
pub(crate) const DEFAULT_LIMIT_CONNECTIONS: usize = 100;

/// A parsed MySQL DSN.
#[derive(Debug)]
pub(crate) struct MySqlDsn {
    pub opts: mysql_async::Opts,
    #[cfg(test)]
    pub limit_connections: usize,
}

fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Turns `user:pass@tcp(host:port)/db?x=y` into `mysql://user:pass@host:port/db?x=y`.
fn go_to_url(dsn: &str, pool: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::config(format!("MySQL DSN of pool `{pool}`: {why} (expected `mysql://user:pass@host:port/db` or `user:pass@tcp(host:port)/db`)"))
    };
    let (userinfo, rest) = dsn
        .rsplit_once("@tcp(")
        .ok_or_else(|| bad("no `@tcp(` and no `mysql://`"))?;
    let (addr, path) = rest.split_once(')').ok_or_else(|| bad("unclosed `tcp(`"))?;
    if !path.starts_with('/') {
        return Err(bad("no `/database` after the address"));
    }
    let userinfo = match userinfo.split_once(':') {
        Some((u, p)) => format!("{}:{}", encode_userinfo(u), encode_userinfo(p)),
        None => encode_userinfo(userinfo),
    };
    let addr = if addr.is_empty() {
        "127.0.0.1:3306"
    } else {
        addr
    };
    Ok(format!("mysql://{userinfo}@{addr}{path}"))
}

/// Parses a DSN of pool `pool`, applying `encoding` to every new connection.
pub(crate) fn parse_mysql_dsn(dsn: &str, pool: &str, encoding: &str) -> Result<MySqlDsn> {
    let url = if dsn.starts_with("mysql://") {
        dsn.to_string()
    } else {
        go_to_url(dsn, pool)?
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let mut limit = DEFAULT_LIMIT_CONNECTIONS;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("limit_connections", v)) => {
                limit = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::config(format!(
                        "MySQL DSN of pool `{pool}`: limit_connections must be a positive number, got `{v}`"
                    ))
                })?;
            }
            // Go driver options with no meaning here.
            Some(("parseTime" | "multiStatements" | "charset" | "loc", _)) => {}
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let opts = mysql_async::Opts::from_url(&url)
        .map_err(|e| Error::config(format!("MySQL DSN of pool `{pool}` is invalid: {e}")))?;
    if opts.db_name().is_none() {
        return Err(Error::config(format!(
            "MySQL DSN of pool `{pool}` names no database"
        )));
    }
    let constraints = mysql_async::PoolConstraints::new(0, limit).ok_or_else(|| {
        Error::config(format!("pool `{pool}`: invalid limit_connections {limit}"))
    })?;
    // No reset on return: beeorm leaves no session state behind (transactions end in
    // commit or rollback), so a reset would only add a round trip per checkout.
    // Idle connections stay for a minute: with mysql_async's default TTL of 0, every
    // connection above the minimum is closed on return, so each query would connect.
    let pool_opts = mysql_async::PoolOpts::default()
        .with_constraints(constraints)
        .with_inactive_connection_ttl(std::time::Duration::from_secs(60))
        .with_reset_connection(false);
    let opts = mysql_async::OptsBuilder::from_opts(opts)
        .pool_opts(pool_opts)
        .init(vec![format!("SET NAMES {encoding}")])
        .into();
    Ok(MySqlDsn {
        opts,
        #[cfg(test)]
        limit_connections: limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_form_and_url_form_agree() {
        let a = parse_mysql_dsn(
            "root:p@ss@tcp(localhost:3310)/db?limit_connections=10",
            "default",
            "utf8mb4",
        )
        .unwrap();
        assert_eq!(a.limit_connections, 10);
        assert_eq!(a.opts.ip_or_hostname(), "localhost");
        assert_eq!(a.opts.tcp_port(), 3310);
        assert_eq!(a.opts.pass(), Some("p@ss"));
        assert_eq!(a.opts.db_name(), Some("db"));
        let b = parse_mysql_dsn("mysql://root@127.0.0.1:3306/test", "default", "utf8mb4").unwrap();
        assert_eq!(b.limit_connections, DEFAULT_LIMIT_CONNECTIONS);
    }

    #[test]
    fn bad_dsns_name_the_pool() {
        for dsn in [
            "nonsense",
            "root@tcp(localhost:3306)",
            "mysql://root@127.0.0.1:3306/test?limit_connections=0",
            "mysql://root@127.0.0.1:3306/test?limit_connections=x",
            "mysql://root@127.0.0.1:3306/",
            "mysql://root@127.0.0.1:3306/test?no_such_option=1",
        ] {
            let err = parse_mysql_dsn(dsn, "mine", "utf8mb4")
                .unwrap_err()
                .to_string();
            assert!(err.contains("`mine`"), "{dsn}: {err}");
        }
    }
}
