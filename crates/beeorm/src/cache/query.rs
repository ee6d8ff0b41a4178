//! Cached queries (D5): the definitions of `#[orm(cached_query(...))]` and
//! `#[orm(cached_query_one(...))]`, validated, and the keys and values their lists
//! take in Redis.
//!
//! Why lists of IDs and one version per table: a cached query stores the full,
//! ordered list of the IDs of the live rows that match (`V<version> I<id> <id> …`),
//! never rows — the rows come through the entity cache (one script call for all of
//! them), so a row is kept true in one place only. Any write to the table makes
//! every list of the table old at once: the writer's lock bumps the table's version
//! before its COMMIT and enters the set of writers in flight, its unlock leaves it
//! and bumps the version again after (`protocol.rs`). A reader fills a list only
//! under a lease taken at the current version, and only if the version still holds
//! and no writer is in flight when the fill arrives, so a list read from the
//! database before a committed write is never stored after it — the guarantee of
//! the row cache, for lists. Which queries a write really changes (by the columns
//! it touched) is not worked out: a query may name columns without `:field`, and a
//! list wrongly kept would be wrong data, while one dropped too often only costs a
//! query.
//!
//! Isolation: list keys carry the namespace (and tenant), the table, the query's
//! name, a digest of its rendered SQL and of the entity's schema signature (two
//! deploys whose definitions differ never read each other's lists) and a digest of
//! the arguments in a canonical, typed encoding (`18` and `"18"` are different
//! lists; the digest is SHA-1, so no argument can be chosen to land on another's
//! list).

use crate::schema::TableSchema;
use crate::{Error, Result, Value};

/// The most IDs a list holds. A query matching more is not cached: its key
/// remembers that (`O`), and the database answers each page with a `COUNT`.
pub(crate) const MAX_IDS: usize = 50_000;

/// One cached query, validated.
#[derive(Debug)]
pub(crate) struct Query {
    /// Its name.
    pub name: &'static str,
    /// As declared, for error messages.
    pub declared: &'static str,
    /// `cached_query_one`.
    pub one: bool,
    /// The condition with every `:field` replaced by its column in backticks (the
    /// dialect's quotes when rendered), always ending with an `ORDER BY` (the
    /// primary key's when the definition has none).
    pub sql: String,
    /// How many `?` it has: the number of arguments it takes.
    pub placeholders: usize,
    /// `<ns>:q:{pool.table}:<name>:<digest of the definition>:`.
    key_prefix: String,
}

impl Query {
    /// The Redis key of the list for `args` (already normalised as the query sends
    /// them).
    pub(crate) fn list_key(&self, args: &[Value]) -> String {
        let mut key = self.key_prefix.clone();
        key.push_str(&digest(&canonical(args)));
        key
    }
}

/// The cached queries of one entity.
#[derive(Debug)]
pub(crate) struct TableQueries {
    /// In declaration order.
    pub queries: Vec<Query>,
    /// Whether lists are kept in Redis (the entity has `redis_cache`); without, a
    /// cached query reads the database every time (its rows still come through the
    /// local layer).
    pub in_redis: bool,
    /// `<ns>:q:{pool.table}:v`: the table's query version.
    pub version_key: String,
    /// `<ns>:q:{pool.table}:w`: the table's writers in flight.
    pub writers_key: String,
}

impl TableQueries {
    /// The query named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Query> {
        self.queries.iter().find(|q| q.name == name)
    }

    /// The keys `protocol.rs` takes.
    #[cfg(feature = "redis")]
    pub(crate) fn keys(&self) -> super::protocol::QueryKeys<'_> {
        super::protocol::QueryKeys {
            version: &self.version_key,
            writers: &self.writers_key,
        }
    }
}

/// Checks that no uncached entity declares cached queries: their lists are kept
/// true by the entity cache's write protocol, which only cached entities go through.
pub(crate) fn check_uncached(schema: &TableSchema) -> Result<()> {
    let def = schema.cache_definition();
    match def.queries.first() {
        Some(q) if def.redis.is_none() && def.local.is_none() => Err(Error::definition(
            schema.entity_name(),
            None,
            format!(
                "cached query `{}` needs `#[orm(redis_cache)]` on the entity: its lists live in \
                 Redis and are kept true by the cache's write protocol, which only cached \
                 entities go through",
                q.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Validates the cached queries of `schema` and builds their keys: `namespace` is
/// the cache namespace (with the tenant), `table_id` is `pool.table`. `None` when
/// the entity declares none.
pub(crate) fn build(
    schema: &TableSchema,
    namespace: &str,
    table_id: &str,
    signature: &str,
) -> Result<Option<TableQueries>> {
    let def = schema.cache_definition();
    if def.queries.is_empty() {
        return Ok(None);
    }
    let mut queries: Vec<Query> = Vec::with_capacity(def.queries.len());
    for q in def.queries {
        let entity = schema.entity_name();
        if q.name.is_empty()
            || !q
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::definition(
                entity,
                None,
                format!(
                    "cached query `{}`: a name is 1 or more ASCII letters, digits or `_`",
                    q.name
                ),
            ));
        }
        if queries.iter().any(|other| other.name == q.name) {
            return Err(Error::definition(
                entity,
                None,
                format!("cached query `{}` is declared twice", q.name),
            ));
        }
        let (sql, placeholders) = render(schema, q.name, q.query)?;
        let mut definition = digest(&format!("{}\n{}\n{sql}\n{signature}", q.name, q.one));
        definition.truncate(12);
        let key_prefix = format!("{namespace}:q:{{{table_id}}}:{}:{definition}:", q.name);
        queries.push(Query {
            name: q.name,
            declared: q.query,
            one: q.one,
            sql,
            placeholders,
            key_prefix,
        });
    }
    Ok(Some(TableQueries {
        queries,
        in_redis: def.redis.is_some(),
        version_key: format!("{namespace}:q:{{{table_id}}}:v"),
        writers_key: format!("{namespace}:q:{{{table_id}}}:w"),
    }))
}

/// `:field` → `` `column` ``, `?` counted, quotes skipped; then the tail checked (an
/// `ORDER BY` only: a list is every matching row, so no `LIMIT`, no `GROUP BY`) and
/// an `ORDER BY` on the primary key added when there is none.
fn render(schema: &TableSchema, name: &str, query: &str) -> Result<(String, usize)> {
    let entity = schema.entity_name();
    let fail = |field: Option<&str>, reason: String| {
        Error::definition(
            entity,
            field,
            format!("cached query `{name}` (`{query}`): {reason}"),
        )
    };
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len() + 16);
    let mut placeholders = 0;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'?' => placeholders += 1,
                // `:field`, but not PostgreSQL's `::type` cast.
                b':' if bytes
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                    && (i == 0 || bytes[i - 1] != b':') =>
                {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && (bytes[end].is_ascii_alphanumeric()
                            || bytes[end] == b'_'
                            || (bytes[end] == b'.'
                                && bytes
                                    .get(end + 1)
                                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')))
                    {
                        end += 1;
                    }
                    // ASCII only between `start` and `end`: slicing is on boundaries.
                    let field = &query[start..end];
                    let column = schema
                        .columns()
                        .iter()
                        .find(|c| c.field == field)
                        .ok_or_else(|| {
                            fail(
                                Some(field),
                                format!("names field `{field}`, which the entity does not store"),
                            )
                        })?;
                    out.push_str(&query[copied..i]);
                    out.push('`');
                    out.push_str(&column.name);
                    out.push('`');
                    copied = end;
                    i = end;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    if quote.is_some() {
        return Err(fail(None, "a quote is not closed".into()));
    }
    out.push_str(&query[copied..]);
    let w = crate::query::Where::new(
        &out,
        vec![crate::query::Param::One(Value::Null); placeholders],
    );
    let tail = w.tail().to_ascii_uppercase();
    let words: Vec<&str> = tail
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    if !tail.is_empty()
        && (!tail.starts_with("ORDER BY") || words.iter().any(|w| *w == "LIMIT" || *w == "OFFSET"))
    {
        return Err(fail(
            None,
            "only a condition and an `ORDER BY` may be given: a list holds every matching row \
             (no `LIMIT`, `OFFSET` or `GROUP BY`; pages come from the pager)"
                .into(),
        ));
    }
    if tail.is_empty() {
        let id = &schema.columns()[0].name;
        if !out.trim().is_empty() {
            out.push(' ');
        }
        out.push_str("ORDER BY `");
        out.push_str(id);
        out.push('`');
    }
    Ok((out.trim().to_string(), placeholders))
}

/// The arguments in a canonical, typed text: each value's kind, then the value
/// (length-prefixed where it is free text), so two different argument lists never
/// encode the same. Integers are one kind whatever their Rust type (`18u8` and
/// `18i64` ask for the same rows).
pub(crate) fn canonical(args: &[Value]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(16 * args.len());
    for v in args {
        // Writing to a String cannot fail.
        let _ = match v {
            Value::Null => write!(out, "n;"),
            Value::Bool(b) => write!(out, "b{};", u8::from(*b)),
            Value::I64(n) => write!(out, "i{n};"),
            Value::U64(n) => match i64::try_from(*n) {
                Ok(n) => write!(out, "i{n};"),
                Err(_) => write!(out, "u{n};"),
            },
            Value::F32(f) => write!(out, "g{:08x};", f.to_bits()),
            Value::F64(f) => write!(out, "f{:016x};", f.to_bits()),
            Value::Decimal(d) => write!(out, "d{};", d.normalize()),
            Value::String(s) => write!(out, "s{}:{s};", s.len()),
            Value::Bytes(b) => {
                let _ = write!(out, "x{}:", b.len());
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                write!(out, ";")
            }
            Value::Date(d) => write!(out, "D{d};"),
            Value::DateTime(d) => write!(out, "T{d};"),
            Value::Time(t) => write!(out, "t{t};"),
            Value::Json(j) => {
                let text = j.to_string();
                write!(out, "j{}:{text};", text.len())
            }
        };
    }
    out
}

/// The SHA-1 of `text`, in hex (the Redis client's, which hashes scripts with it).
/// Without Redis nothing is stored, so no key is needed.
fn digest(text: &str) -> String {
    #[cfg(feature = "redis")]
    {
        ::redis::Script::new(text).get_hash().to_string()
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = text;
        String::new()
    }
}

/// What a list key holds after its version: every matching ID, or "too many".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// The ordered IDs of the matching live rows.
    Ids(Vec<u64>),
    /// More than [`MAX_IDS`] rows match: not cached, the database answers by page.
    Overflow,
}

impl Payload {
    /// `I<id> <id> …` or `O`.
    pub(crate) fn encode(&self) -> String {
        match self {
            Payload::Overflow => "O".into(),
            Payload::Ids(ids) => {
                let mut out = String::with_capacity(1 + ids.len() * 8);
                out.push('I');
                for (n, id) in ids.iter().enumerate() {
                    if n > 0 {
                        out.push(' ');
                    }
                    out.push_str(&id.to_string());
                }
                out
            }
        }
    }

    /// The inverse of [`Payload::encode`]; `None` for anything else (read as a miss).
    pub(crate) fn decode(text: &str) -> Option<Payload> {
        if text == "O" {
            return Some(Payload::Overflow);
        }
        let ids = text.strip_prefix('I')?;
        if ids.is_empty() {
            return Some(Payload::Ids(Vec::new()));
        }
        ids.split(' ')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
            .map(Payload::Ids)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(crate::Entity)]
    #[orm(
        redis_cache,
        cached_query(
            name = "by_age",
            query = ":age >= ? AND :name <> '?:x' ORDER BY :age DESC, :id"
        ),
        cached_query(name = "all", query = ""),
        cached_query_one(name = "by_name", query = ":name = ?::text"),
        cached_query(name = "by_city", query = ":address.city = ?"),
        cached_query(name = "bad", query = ":nope = ?")
    )]
    struct Person {
        id: u64,
        name: String,
        #[orm(column = "Age")]
        age: u32,
        #[orm(embedded)]
        address: Address,
    }

    #[derive(crate::Embedded)]
    struct Address {
        city: String,
    }

    fn schema() -> TableSchema {
        use crate::Entity;
        TableSchema::build(&Person::definition(), &Default::default()).unwrap()
    }

    #[test]
    fn fields_become_columns_and_placeholders_are_counted() {
        let s = schema();
        assert_eq!(
            render(
                &s,
                "by_age",
                ":age >= ? AND :name <> '?:x' ORDER BY :age DESC, :id"
            )
            .unwrap(),
            (
                "`Age` >= ? AND `name` <> '?:x' ORDER BY `Age` DESC, `id`".to_string(),
                1
            )
        );
        assert_eq!(render(&s, "all", "").unwrap(), ("ORDER BY `id`".into(), 0));
        assert_eq!(
            render(&s, "by_name", ":name = ?::text").unwrap(),
            ("`name` = ?::text ORDER BY `id`".into(), 1)
        );
        assert_eq!(
            render(&s, "by_city", ":address.city = ?").unwrap().0,
            "`address_city` = ? ORDER BY `id`"
        );
    }

    #[test]
    fn unknown_fields_and_limits_are_definition_errors() {
        let s = schema();
        let err = render(&s, "bad", ":nope = ?").unwrap_err();
        match &err {
            Error::Definition {
                entity,
                field,
                reason,
            } => {
                assert_eq!(entity, "Person");
                assert_eq!(field.as_deref(), Some("nope"));
                assert!(reason.contains("`bad`"), "{reason}");
            }
            other => panic!("{other}"),
        }
        for q in [
            ":age = ? LIMIT 5",
            ":age = ? ORDER BY :id LIMIT 5",
            "GROUP BY :age",
        ] {
            let err = render(&s, "q", q).unwrap_err();
            assert!(err.to_string().contains("LIMIT"), "{q}: {err}");
        }
        assert!(render(&s, "q", ":name = 'x").is_err());
        assert!(build(&s, "app", "default.Person", "sig").is_err());
    }

    #[test]
    fn different_arguments_never_share_a_key() {
        let encoded = [
            canonical(&[Value::from(18)]),
            canonical(&[Value::from("18")]),
            canonical(&[Value::from("a;s1:b")]),
            canonical(&[Value::from("a"), Value::from("b")]),
            canonical(&[Value::from(1.5f64)]),
            canonical(&[Value::from(1.5f32)]),
            canonical(&[Value::Null]),
            canonical(&[Value::from(true)]),
            canonical(&[Value::Bytes(b"18".to_vec())]),
            canonical(&[]),
        ];
        for (i, a) in encoded.iter().enumerate() {
            for b in &encoded[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            canonical(&[Value::from(18u8)]),
            canonical(&[Value::from(18u64)])
        );
    }

    #[test]
    fn payloads_round_trip() {
        for p in [
            Payload::Ids(vec![]),
            Payload::Ids(vec![3, 1, 2]),
            Payload::Overflow,
        ] {
            assert_eq!(Payload::decode(&p.encode()), Some(p));
        }
        assert_eq!(Payload::decode("I1 x"), None);
        assert_eq!(Payload::decode(""), None);
    }
}
