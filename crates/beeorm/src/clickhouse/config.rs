//! A ClickHouse pool's configuration: its URL, checked at `validate()` (no
//! connection is made), and its timeouts.

use std::time::Duration;

use crate::{Error, Result};

/// Connect timeout when none is set.
pub(crate) const DEFAULT_CONNECT: Duration = Duration::from_secs(5);
/// Query timeout when none is set.
pub(crate) const DEFAULT_QUERY: Duration = Duration::from_secs(60);

/// Where and how a pool connects, from `http://user:password@host:8123/database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `http://host:port`, without credentials or path.
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) password: Option<String>,
    pub(crate) database: String,
}

/// Parses a pool URL; the error names the pool and says what is wrong.
pub(crate) fn parse(pool: &str, raw: &str) -> Result<Endpoint> {
    let bad = |why: &str| {
        Error::config(format!(
            "ClickHouse pool `{pool}`: URL `{}` {why} (expected `http://user:password@host:8123/database`)",
            redact(raw)
        ))
    };
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("does not parse: {e}")))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(bad("uses https, which this build does not support")),
        _ => return Err(bad("must start with `http://`")),
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "has a query string or fragment, which beeorm does not read",
        ));
    }
    let decode = |s: &str| {
        percent_decode(s)
            .ok_or_else(|| bad("has a user or password that is not valid percent-encoded UTF-8"))
    };
    let user = match url.username() {
        "" => "default".to_string(),
        u => decode(u)?,
    };
    let password = url.password().map(decode).transpose()?;
    let path = url.path().trim_matches('/');
    let database = if path.is_empty() {
        "default".to_string()
    } else {
        path.to_string()
    };
    if !database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(bad(&format!(
            "names database `{database}`: use ASCII letters, digits and `_`"
        )));
    }
    let port = url.port().unwrap_or(8123);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(Endpoint {
        url: format!("http://{host}:{port}"),
        user,
        password,
        database,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The URL with its password replaced by `***`, for messages.
pub(crate) fn redact(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => raw.trim().to_string(),
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &raw[..s + 3], &raw[at..]),
            _ => raw.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_parse_with_defaults() {
        let e = parse("p", "http://127.0.0.1:8123").unwrap();
        assert_eq!(e.url, "http://127.0.0.1:8123");
        assert_eq!(
            (e.user.as_str(), e.password.clone(), e.database.as_str()),
            ("default", None, "default")
        );
        let e = parse("p", "http://u%40x:p%3Ass@localhost/analytics").unwrap();
        assert_eq!(e.url, "http://localhost:8123");
        assert_eq!(e.user, "u@x");
        assert_eq!(e.password.as_deref(), Some("p:ss"));
        assert_eq!(e.database, "analytics");
        for bad in [
            "127.0.0.1:8123",
            "tcp://127.0.0.1:9000",
            "https://h/db",
            "http://h/db?x=1",
            "http://h/my-db",
            "http://",
        ] {
            let err = parse("p", bad).unwrap_err().to_string();
            assert!(err.contains("ClickHouse pool `p`"), "{bad}: {err}");
        }
        let err = parse("p", "http://u:secret@h/my-db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
