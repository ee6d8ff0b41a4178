//! [`RediSearchBackend`]: the search indexes of one search pool kept by the RediSearch
//! module of a Redis (Valkey) server, reached through a registered Redis pool's
//! [`RedisClient`] (so its connect/response timeouts and its tracing apply).
//!
//! # Layout on the server
//! * index `<prefix>:idx:<name>`, over the hashes whose key starts with
//!   `<prefix>:doc:<name>:`; a document is the hash `<prefix>:doc:<name>:<id>` (the ID
//!   in decimal), with one hash field per indexed field, `_<column>`, indexed as the
//!   attribute `<column>` (`_age AS age NUMERIC`: a bare column name such as `sortable`
//!   could be read as an option of the field before it), and the field `#id` (the ID
//!   again, not indexed) so that a document whose fields are all NULL still exists and
//!   is counted;
//! * the fingerprint of the definition the index was created from, in the string key
//!   `<prefix>:idx:<name>:def`.
//!
//! # How the shared semantics are met
//! * Tokens: RediSearch splits text only at ASCII punctuation and white space (so
//!   `foo_bar`, or Persian words around `،` or a ZWNJ, would stay one token) and knows
//!   stop words. To tokenise exactly like the tantivy engine (runs of Unicode letters
//!   and digits, lower-cased, no stop words, no stemming), text is cut into its words
//!   here before it is stored: the stored value is its words, lower-cased, separated by
//!   one space; the index has `STOPWORDS 0` and its text fields `NOSTEM`.
//! * Text sorts by that stored value (words, lower-cased). A document without the sort
//!   field comes last, in both orders. Ties (equal sort values, equal scores) come in
//!   no defined order.
//! * Tags: `TAG SEPARATOR "\x1f" CASESENSITIVE`: a filter matches a stored value exactly
//!   as given, case included. RediSearch trims white space at both ends of a tag value
//!   (stored and queried alike, so `" a "` finds `"a"`), ignores empty values, and a
//!   value containing the separator character U+001F is stored as two values. A tag
//!   sorts by its stored text as bytes (case-sensitive; several values: all of them,
//!   joined by U+001F).
//! * Ranking: `SCORER BM25`; numbers are stored and compared as `f64` written in exact
//!   decimal (Rust's shortest round-trip form).
//! * Queries use `DIALECT 2`, where a backslash makes any character literal: every
//!   character of a term, prefix, phrase word or tag value that is not a letter or a
//!   digit is escaped, so user text never becomes query syntax.
//! * Writes go in `MULTI`/`EXEC` transactions (DEL + HSET per document, DEL per
//!   deleted ID): a concurrent search sees a document's old or new version, never
//!   none — with a plain pipeline it could run between the DEL and the HSET. A
//!   transaction is one request, so a dropped future leaves no half document. A batch
//!   of more than 1,000 documents (or 4 MiB) goes as several transactions, one after
//!   the other, so that each is answered within the pool's response timeout.
//!   (Measured: a plain pipeline, or HSET without the DEL, index no faster; the
//!   server's indexing dominates.)
//! * `create` drops first (`FT.DROPINDEX … DD`, then the document keys the index did
//!   not hold, found with `SCAN`), so a new index starts empty; the fingerprint is
//!   stored last, so a create cut short reads as "no index" and is redone.
//! * A Redis Cluster pool is refused (typed error on every call): an index lives on one
//!   server and sees only that server's keys. A single server or Sentinel pool works,
//!   on database 0 (RediSearch refuses an index on another: `Cannot create index on
//!   db != 0`, passed on as the error of `create`).
//! * Errors: every failure is [`Error::Search`] with the search pool, the index and the
//!   server's message (or what the Redis client reported: unreachable, no reply in
//!   time), naming the Redis pool.
//!
//! Needs RediSearch 2.4 or later (`DIALECT 2`; tag `CASESENSITIVE`); tested with
//! RediSearch 2.10.5 on Valkey 9.1 (`scripts/services`). Replies are read in RESP2 and
//! RESP3.
//!
//! Known limits: a prefix query expands to at most the server's `MAXEXPANSIONS` terms
//! (200 by default); a query running longer than the server's timeout (each search
//! asks for the Redis pool's response timeout) returns what it found so far when the
//! server's `ON_TIMEOUT` policy is `RETURN` (its default) — silently on RESP2, as an
//! error on RESP3, whose reply carries the warning.

use std::ops::Bound;

use ::redis::{Cmd, Value};

use super::backend::{CompiledQuery, Doc, DocValue, Filter, SearchBackend};
use super::query::QueryNode;
use super::{SearchFieldKind, SearchHits, SearchIndex, SortOrder};
use crate::hooks::BoxFuture;
use crate::{Error, RedisClient, Result};

/// Separator of the values of a tag field in a stored document (unit separator: not
/// expected in values).
const TAG_SEPARATOR: &str = "\u{1f}";
/// The hash field holding a document's ID (not in the schema: a `#` is never part of
/// a column name, so it cannot clash with an indexed field).
const ID_FIELD: &str = "#id";

/// The RediSearch engine of one search pool (see the module docs).
#[derive(Clone)]
pub(crate) struct RediSearchBackend {
    pool: String,
    redis: RedisClient,
    prefix: String,
}

impl std::fmt::Debug for RediSearchBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RediSearchBackend")
            .field("pool", &self.pool)
            .field("redis", &self.redis.pool_name())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The words of a text as both engines index it: runs of Unicode letters and digits,
/// lower-cased, joined by one space.
fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The hash field of an indexed field: its name after `_` (see `create_command`).
fn hash_field(name: &str) -> String {
    format!("_{name}")
}

/// Appends `text` with every character that is not a letter or a digit escaped by a
/// backslash (DIALECT 2: an escaped character is always literal).
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A field name as a query attribute (`@name`): column names are ASCII letters,
/// digits and `_`; anything else is escaped all the same.
fn attribute_into(out: &mut String, name: &str) {
    out.push('@');
    for c in name.chars() {
        if !(c.is_ascii_alphanumeric() || c == '_') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A number as exact decimal text (`inf` as RediSearch spells it).
fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-inf".to_string()
    } else {
        format!("{v}")
    }
}

/// A range bound of `@f:[min max]`.
fn bound(b: &Bound<f64>, unbounded: &str) -> String {
    match b {
        Bound::Unbounded => unbounded.to_string(),
        Bound::Included(v) => number(*v),
        Bound::Excluded(v) if v.is_infinite() => number(*v),
        Bound::Excluded(v) => format!("({}", number(*v)),
    }
}

impl RediSearchBackend {
    /// The backend of search pool `pool` on the Redis pool `redis`; `key_prefix`
    /// namespaces its index names and document keys. Connects nothing.
    pub(crate) fn new(pool: &str, redis: RedisClient, key_prefix: &str) -> RediSearchBackend {
        RediSearchBackend {
            pool: pool.to_string(),
            redis,
            prefix: key_prefix.to_string(),
        }
    }

    fn index_key(&self, name: &str) -> String {
        format!("{}:idx:{name}", self.prefix)
    }

    fn def_key(&self, name: &str) -> String {
        format!("{}:idx:{name}:def", self.prefix)
    }

    fn doc_prefix(&self, name: &str) -> String {
        format!("{}:doc:{name}:", self.prefix)
    }

    fn error(&self, index: &str, reason: impl Into<String>) -> Error {
        Error::Search {
            pool: self.pool.clone(),
            index: index.to_string(),
            reason: reason.into(),
        }
    }

    /// A Redis error as a search error of `index`, keeping the server's message.
    fn map_err(&self, index: &str, e: Error) -> Error {
        match e {
            Error::Redis {
                pool,
                command,
                source,
            } => {
                let what = if source.is_connection_refusal() || source.is_io_error() {
                    "server unreachable: "
                } else if source.is_timeout() {
                    "no reply in time: "
                } else {
                    ""
                };
                let hint = if command.starts_with("FT.")
                    && source.to_string().contains("unknown command")
                {
                    " (the server has no RediSearch module: load redisearch.so, see \
                     scripts/services)"
                } else {
                    ""
                };
                self.error(
                    index,
                    format!("{what}`{command}` on Redis pool `{pool}` failed: {source}{hint}"),
                )
            }
            other => self.error(index, other.to_string()),
        }
    }

    /// An index lives on one server: a cluster pool cannot hold one.
    fn check_pool(&self, index: &str) -> Result<()> {
        if self.redis.is_cluster() {
            return Err(self.error(
                index,
                format!(
                    "Redis pool `{}` is a Redis Cluster; RediSearch needs a single server \
                     (or a Sentinel-watched master)",
                    self.redis.pool_name()
                ),
            ));
        }
        Ok(())
    }

    async fn run<T: ::redis::FromRedisValue>(&self, index: &str, cmd: &Cmd) -> Result<T> {
        self.check_pool(index)?;
        self.redis
            .query(cmd)
            .await
            .map_err(|e| self.map_err(index, e))
    }

    /// The `FT.CREATE` command of `index` (also the readable form of a create alter).
    pub(crate) fn create_command(&self, index: &SearchIndex) -> Cmd {
        let mut cmd = ::redis::cmd("FT.CREATE");
        cmd.arg(self.index_key(&index.name))
            .arg("ON")
            .arg("HASH")
            .arg("PREFIX")
            .arg(1)
            .arg(self.doc_prefix(&index.name))
            .arg("STOPWORDS")
            .arg(0)
            .arg("SCHEMA");
        for field in &index.fields {
            // `_name AS name`: a bare column name could be read as an option of the
            // field before it (`age NUMERIC sortable NUMERIC`); after `AS` it cannot.
            cmd.arg(hash_field(&field.name)).arg("AS").arg(&field.name);
            match field.kind {
                SearchFieldKind::Text => {
                    cmd.arg("TEXT").arg("NOSTEM");
                }
                SearchFieldKind::Numeric => {
                    cmd.arg("NUMERIC");
                }
                SearchFieldKind::Tag => {
                    cmd.arg("TAG")
                        .arg("SEPARATOR")
                        .arg(TAG_SEPARATOR)
                        .arg("CASESENSITIVE");
                }
            }
            if field.sortable {
                cmd.arg("SORTABLE");
            }
        }
        cmd
    }

    /// `FT.CREATE …` as text, for alters and messages (the tag separator shown as
    /// `"\x1f"`).
    pub(crate) fn describe_create(&self, index: &SearchIndex) -> String {
        let cmd = self.create_command(index);
        let mut out = String::new();
        for arg in cmd.args_iter() {
            let ::redis::Arg::Simple(bytes) = arg else {
                continue;
            };
            let text = String::from_utf8_lossy(bytes);
            if !out.is_empty() {
                out.push(' ');
            }
            if text == TAG_SEPARATOR {
                out.push_str("\"\\x1f\"");
            } else {
                out.push_str(&text);
            }
        }
        out
    }

    /// The query string of a search; `None` when it can match nothing (a tag filter
    /// without a usable value).
    fn render_query(&self, index: &SearchIndex, query: &CompiledQuery) -> Result<Option<String>> {
        let mut out = String::new();
        if let Some(node) = &query.text {
            out.push('(');
            self.render_node(index, node, &mut out)?;
            out.push(')');
        }
        for filter in &query.filters {
            if !out.is_empty() {
                out.push(' ');
            }
            match filter {
                Filter::Range { field, min, max } => {
                    attribute_into(&mut out, self.field_of(index, *field)?);
                    out.push_str(":[");
                    out.push_str(&bound(min, "-inf"));
                    out.push(' ');
                    out.push_str(&bound(max, "+inf"));
                    out.push(']');
                }
                Filter::AnyTag { field, values } => {
                    // RediSearch trims stored tag values and drops empty ones: do the
                    // same to the wanted values.
                    let values: Vec<&str> = values
                        .iter()
                        .map(|v| v.trim())
                        .filter(|v| !v.is_empty())
                        .collect();
                    if values.is_empty() {
                        return Ok(None);
                    }
                    attribute_into(&mut out, self.field_of(index, *field)?);
                    out.push_str(":{");
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            out.push_str(" | ");
                        }
                        escape_into(&mut out, v);
                    }
                    out.push('}');
                }
            }
        }
        if out.is_empty() {
            out.push('*');
        }
        Ok(Some(out))
    }

    fn render_node(&self, index: &SearchIndex, node: &QueryNode, out: &mut String) -> Result<()> {
        let empty = || self.error(&index.name, "empty term in a compiled query");
        match node {
            QueryNode::Term(t) => {
                if t.is_empty() {
                    return Err(empty());
                }
                escape_into(out, t);
            }
            QueryNode::Prefix(p) => {
                if p.is_empty() {
                    return Err(empty());
                }
                escape_into(out, p);
                out.push('*');
            }
            QueryNode::Phrase(words) => {
                if words.iter().any(String::is_empty) || words.is_empty() {
                    return Err(empty());
                }
                out.push('"');
                for (i, w) in words.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    escape_into(out, w);
                }
                out.push('"');
            }
            QueryNode::And(nodes) | QueryNode::Or(nodes) => {
                if nodes.is_empty() {
                    return Err(self.error(&index.name, "empty group in a compiled query"));
                }
                let joint = if matches!(node, QueryNode::And(_)) {
                    " "
                } else {
                    " | "
                };
                out.push('(');
                for (i, n) in nodes.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joint);
                    }
                    self.render_node(index, n, out)?;
                }
                out.push(')');
            }
            QueryNode::Not(n) => {
                out.push_str("-(");
                self.render_node(index, n, out)?;
                out.push(')');
            }
            QueryNode::Field(field, n) => {
                attribute_into(out, self.field_of(index, *field)?);
                out.push_str(":(");
                self.render_node(index, n, out)?;
                out.push(')');
            }
        }
        Ok(())
    }

    /// The reply of `FT.SEARCH … NOCONTENT` as IDs: `[total, key, key, …]` (RESP2), or
    /// a map with `total_results`, `results` (maps with `id`) and `warning` (RESP3,
    /// where a warning such as a server-side timeout makes the result an error
    /// instead of a silently partial page).
    fn parse_hits(&self, index: &SearchIndex, reply: Value) -> Result<SearchHits> {
        let bad =
            |what: &str| self.error(&index.name, format!("unexpected FT.SEARCH reply: {what}"));
        let text = |v: &Value| match v {
            Value::BulkString(bytes) => std::str::from_utf8(bytes).ok().map(str::to_string),
            Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
            _ => None,
        };
        let (total, keys) = match reply {
            Value::Array(items) => {
                let mut items = items.into_iter();
                let total = match items.next() {
                    Some(Value::Int(n)) => n,
                    _ => return Err(bad("no total")),
                };
                (total, items.collect::<Vec<Value>>())
            }
            Value::Map(entries) => {
                let mut total = None;
                let mut keys = Vec::new();
                for (k, v) in entries {
                    match (text(&k).as_deref(), v) {
                        (Some("total_results"), Value::Int(n)) => total = Some(n),
                        (Some("results"), Value::Array(results)) => {
                            for result in results {
                                let Value::Map(fields) = result else {
                                    return Err(bad("a result that is not a map"));
                                };
                                let id = fields
                                    .into_iter()
                                    .find(|(k, _)| text(k).as_deref() == Some("id"))
                                    .map(|(_, v)| v)
                                    .ok_or_else(|| bad("a result without `id`"))?;
                                keys.push(id);
                            }
                        }
                        (Some("warning"), Value::Array(warnings)) if !warnings.is_empty() => {
                            let warnings: Vec<String> = warnings.iter().filter_map(text).collect();
                            return Err(self.error(
                                &index.name,
                                format!("FT.SEARCH warned: {}", warnings.join("; ")),
                            ));
                        }
                        _ => {}
                    }
                }
                (total.ok_or_else(|| bad("no total_results"))?, keys)
            }
            _ => return Err(bad("neither an array nor a map")),
        };
        let total = u64::try_from(total).map_err(|_| bad("negative total"))?;
        let prefix = self.doc_prefix(&index.name);
        let mut ids = Vec::with_capacity(keys.len());
        for key in &keys {
            let key = text(key).ok_or_else(|| bad("a key that is not a string"))?;
            let id = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.parse::<u64>().ok())
                .ok_or_else(|| bad(&format!("key `{key}` is not a document of this index")))?;
            ids.push(id);
        }
        Ok(SearchHits { ids, total })
    }

    async fn search_impl(&self, index: &SearchIndex, query: &CompiledQuery) -> Result<SearchHits> {
        let Some(text) = self.render_query(index, query)? else {
            return Ok(SearchHits::default());
        };
        let mut cmd = ::redis::cmd("FT.SEARCH");
        cmd.arg(self.index_key(&index.name))
            .arg(&text)
            .arg("NOCONTENT");
        if let Some((field, order)) = query.sort {
            cmd.arg("SORTBY")
                .arg(self.field_of(index, field)?)
                .arg(match order {
                    SortOrder::Asc => "ASC",
                    SortOrder::Desc => "DESC",
                });
        }
        let timeout_ms = self.redis.response_timeout().as_millis().max(1) as u64;
        cmd.arg("LIMIT")
            .arg(query.offset)
            .arg(query.limit)
            .arg("SCORER")
            .arg("BM25")
            .arg("TIMEOUT")
            .arg(timeout_ms)
            .arg("DIALECT")
            .arg(2);
        let reply: Value = self.run(&index.name, &cmd).await?;
        self.parse_hits(index, reply)
    }

    async fn list_impl(&self) -> Result<Vec<String>> {
        let all: Vec<String> = self.run("", &::redis::cmd("FT._LIST")).await?;
        let prefix = format!("{}:idx:", self.prefix);
        let mut names: Vec<String> = all
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains(':'))
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn drop_impl(&self, name: &str) -> Result<()> {
        let mut del = ::redis::cmd("DEL");
        del.arg(self.def_key(name));
        let _: i64 = self.run(name, &del).await?;
        let mut drop = ::redis::cmd("FT.DROPINDEX");
        drop.arg(self.index_key(name)).arg("DD");
        match self.redis.query::<Value>(&drop).await {
            Ok(_) => Ok(()),
            // `Unknown Index name` (redis-rs reads `Unknown` as the error code).
            Err(Error::Redis { source, .. })
                if source.to_string().to_ascii_lowercase().contains("unknown")
                    && source
                        .to_string()
                        .to_ascii_lowercase()
                        .contains("index name") =>
            {
                Ok(())
            }
            Err(e) => Err(self.map_err(name, e)),
        }?;
        self.delete_stray_docs(name).await
    }

    /// Deletes the document keys of index `name` that the index does not hold (so
    /// `FT.DROPINDEX … DD` left them): written while the index did not exist. Without
    /// this a new index would pick them up (`FT.CREATE` indexes the keys already under
    /// its prefix) and not start empty. `SCAN` walks the whole database once: only
    /// creates and drops pay it.
    async fn delete_stray_docs(&self, name: &str) -> Result<()> {
        let mut pattern = String::new();
        for c in self.doc_prefix(name).chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let mut cursor: u64 = 0;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run(name, &scan).await?;
            if !keys.is_empty() {
                let mut unlink = ::redis::cmd("UNLINK");
                unlink.arg(keys);
                let _: i64 = self.run(name, &unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn create_impl(&self, index: &SearchIndex) -> Result<()> {
        if index.fields.is_empty() {
            return Err(self.error(&index.name, "an index needs at least one field"));
        }
        // Drop first (the definition key before the index): a create cut short leaves
        // no definition, so the index reads as missing and is created again.
        self.drop_impl(&index.name).await?;
        let _: Value = self.run(&index.name, &self.create_command(index)).await?;
        let mut set = ::redis::cmd("SET");
        set.arg(self.def_key(&index.name)).arg(index.fingerprint());
        let _: Value = self.run(&index.name, &set).await?;
        Ok(())
    }

    async fn write_impl(&self, index: &SearchIndex, docs: &[Doc], deletes: &[u64]) -> Result<()> {
        self.check_pool(&index.name)?;
        // Check every field position before anything is sent.
        for doc in docs {
            for (position, _) in &doc.fields {
                self.field_of(index, *position)?;
            }
        }
        let prefix = self.doc_prefix(&index.name);
        let mut batch = Transaction::new(self);
        for doc in docs {
            let key = format!("{prefix}{}", doc.id);
            let mut hset = ::redis::cmd("HSET");
            hset.arg(&key).arg(ID_FIELD).arg(doc.id);
            let mut bytes = key.len();
            for (position, value) in &doc.fields {
                let name = hash_field(self.field_of(index, *position)?);
                let value = match value {
                    DocValue::Text(text) => words(text),
                    DocValue::Number(n) if n.is_nan() => String::new(),
                    DocValue::Number(n) => number(*n),
                    DocValue::Tags(tags) => tags.join(TAG_SEPARATOR),
                };
                // An empty value is no value (a NULL): the field stays absent.
                if !value.is_empty() {
                    bytes += name.len() + value.len();
                    hset.arg(name).arg(value);
                }
            }
            batch.flush_if_full(2, bytes, &index.name).await?;
            batch.pipe.del(&key).ignore();
            batch.pipe.cmd(hset).ignore();
            batch.bytes += bytes;
        }
        for id in deletes {
            let key = format!("{prefix}{id}");
            batch.flush_if_full(1, key.len(), &index.name).await?;
            batch.pipe.del(key).ignore();
        }
        batch.send(&index.name).await
    }

    fn field_of<'i>(&self, index: &'i SearchIndex, position: usize) -> Result<&'i str> {
        index
            .fields
            .get(position)
            .map(|f| f.name.as_str())
            .ok_or_else(|| self.error(&index.name, format!("no field at position {position}")))
    }

    async fn fingerprint_impl(&self, name: &str) -> Result<Option<String>> {
        let mut get = ::redis::cmd("GET");
        get.arg(self.def_key(name));
        let stored: Option<String> = self.run(name, &get).await?;
        match stored {
            // A definition without its index (dropped by hand) is no index.
            Some(fp) if self.list_impl().await?.iter().any(|n| n == name) => Ok(Some(fp)),
            _ => Ok(None),
        }
    }

    async fn count_impl(&self, index: &SearchIndex) -> Result<u64> {
        let mut cmd = ::redis::cmd("FT.SEARCH");
        cmd.arg(self.index_key(&index.name))
            .arg("*")
            .arg("NOCONTENT")
            .arg("LIMIT")
            .arg(0)
            .arg(0)
            .arg("DIALECT")
            .arg(2);
        let reply: Value = self.run(&index.name, &cmd).await?;
        Ok(self.parse_hits(index, reply)?.total)
    }
}

/// Most commands in one `MULTI`/`EXEC` of a write (a document is 2: DEL and HSET).
const TX_COMMANDS: usize = 2_000;
/// Most bytes of keys and values in one `MULTI`/`EXEC` of a write: a transaction must
/// be answered within the Redis pool's response timeout.
const TX_BYTES: usize = 4 << 20;

/// The `MULTI`/`EXEC` a write is filling: sent when the next document would make it too
/// big, so a big batch goes as several transactions (each document whole in one).
struct Transaction<'b> {
    backend: &'b RediSearchBackend,
    pipe: crate::redis::RedisPipeline,
    bytes: usize,
}

impl<'b> Transaction<'b> {
    fn new(backend: &'b RediSearchBackend) -> Self {
        let mut pipe = backend.redis.pipeline();
        pipe.atomic();
        Transaction {
            backend,
            pipe,
            bytes: 0,
        }
    }

    /// Sends what is queued when `commands` more commands of `bytes` would not fit.
    async fn flush_if_full(&mut self, commands: usize, bytes: usize, index: &str) -> Result<()> {
        if !self.pipe.is_empty()
            && (self.pipe.len() + commands > TX_COMMANDS || self.bytes + bytes > TX_BYTES)
        {
            let full = std::mem::replace(self, Transaction::new(self.backend));
            full.send(index).await?;
        }
        Ok(())
    }

    async fn send(self, index: &str) -> Result<()> {
        if self.pipe.is_empty() {
            return Ok(());
        }
        self.pipe
            .exec()
            .await
            .map_err(|e| self.backend.map_err(index, e))
    }
}

impl SearchBackend for RediSearchBackend {
    fn create_statement(&self, index: &SearchIndex) -> Option<String> {
        Some(self.describe_create(index))
    }

    fn describe(&self) -> String {
        format!(
            "RediSearch on Redis pool `{}` (keys `{}:…`)",
            self.redis.pool_name(),
            self.prefix
        )
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.list_impl())
    }

    fn stored_fingerprint<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(self.fingerprint_impl(name))
    }

    fn create<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create_impl(index))
    }

    fn drop_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.drop_impl(name))
    }

    fn write<'a>(
        &'a self,
        index: &'a SearchIndex,
        docs: &'a [Doc],
        deletes: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.write_impl(index, docs, deletes))
    }

    fn search<'a>(
        &'a self,
        index: &'a SearchIndex,
        query: &'a CompiledQuery,
    ) -> BoxFuture<'a, Result<SearchHits>> {
        Box::pin(self.search_impl(index, query))
    }

    fn count<'a>(&'a self, index: &'a SearchIndex) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.count_impl(index))
    }
}

#[cfg(test)]
mod tests {
    //! Against the RediSearch server of `scripts/services` (`BEEORM_SEARCH_REDIS_URL`,
    //! default `redis://127.0.0.1:6391`); every test has its own key prefix.

    use super::*;
    use crate::redis::{RedisConfig, Timeouts};
    use crate::search::SearchField;
    use std::time::Duration;

    const TITLE: usize = 0;
    const BODY: usize = 1;
    const AGE: usize = 2;
    const CITY: usize = 3;

    fn url() -> String {
        std::env::var("BEEORM_SEARCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6391".to_string())
    }

    fn client(address: &str) -> RedisClient {
        RedisClient::open(
            "search_redis",
            &RedisConfig::Server {
                address: address.to_string(),
                db: 0,
            },
            Timeouts {
                connect: Duration::from_millis(500),
                response: Duration::from_secs(2),
            },
        )
        .unwrap()
    }

    /// A backend with a key prefix of its own and the test index `items`: title (text,
    /// sortable), body (text), age (numeric, sortable), city (tag, sortable).
    fn setup(test: &str) -> (RediSearchBackend, SearchIndex) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("beeorm_test_rs_{test}_{}_{nanos}", std::process::id());
        let field = |name: &str, kind, sortable| SearchField {
            name: name.to_string(),
            kind,
            sortable,
        };
        let index = SearchIndex {
            name: "items".to_string(),
            pool: "search".to_string(),
            fields: vec![
                field("title", SearchFieldKind::Text, true),
                field("body", SearchFieldKind::Text, false),
                field("age", SearchFieldKind::Numeric, true),
                field("city", SearchFieldKind::Tag, true),
            ],
        };
        (
            RediSearchBackend::new("search", client(&url()), &prefix),
            index,
        )
    }

    fn doc(id: u64, fields: Vec<(usize, DocValue)>) -> Doc {
        Doc { id, fields }
    }

    /// A document with a title, an age and one city.
    fn full(id: u64, title: &str, age: f64, city: &str) -> Doc {
        doc(
            id,
            vec![
                (TITLE, text(title)),
                (AGE, DocValue::Number(age)),
                (CITY, tags(&[city])),
            ],
        )
    }

    fn text(s: &str) -> DocValue {
        DocValue::Text(s.to_string())
    }

    fn tags(values: &[&str]) -> DocValue {
        DocValue::Tags(values.iter().map(|v| v.to_string()).collect())
    }

    fn term(s: &str) -> QueryNode {
        QueryNode::Term(s.to_string())
    }

    fn query(text: Option<QueryNode>) -> CompiledQuery {
        CompiledQuery {
            text,
            filters: Vec::new(),
            sort: None,
            offset: 0,
            limit: 100,
        }
    }

    async fn ids(b: &RediSearchBackend, index: &SearchIndex, q: CompiledQuery) -> Vec<u64> {
        b.search(index, &q).await.unwrap().ids
    }

    async fn sorted_ids(b: &RediSearchBackend, index: &SearchIndex, q: CompiledQuery) -> Vec<u64> {
        let mut ids = ids(b, index, q).await;
        ids.sort_unstable();
        ids
    }

    async fn created(test: &str) -> (RediSearchBackend, SearchIndex) {
        let (b, index) = setup(test);
        b.create(&index).await.unwrap();
        (b, index)
    }

    #[tokio::test]
    async fn create_list_fingerprint_drop() {
        let (b, index) = setup("lifecycle");
        assert_eq!(b.list().await.unwrap(), Vec::<String>::new());
        assert_eq!(b.stored_fingerprint("items").await.unwrap(), None);
        b.create(&index).await.unwrap();
        let mut other = index.clone();
        other.name = "others".to_string();
        b.create(&other).await.unwrap();
        assert_eq!(b.list().await.unwrap(), vec!["items", "others"]);
        assert_eq!(
            b.stored_fingerprint("items").await.unwrap(),
            Some(index.fingerprint())
        );
        // Another prefix sees none of them.
        let (b2, _) = setup("lifecycle_other");
        assert_eq!(b2.list().await.unwrap(), Vec::<String>::new());

        // Re-creating with a changed definition replaces the index and its documents.
        b.write(&index, &[doc(1, vec![(TITLE, text("hello"))])], &[])
            .await
            .unwrap();
        assert_eq!(b.count(&index).await.unwrap(), 1);
        let mut changed = index.clone();
        changed.fields[AGE].sortable = false;
        b.create(&changed).await.unwrap();
        assert_eq!(
            b.stored_fingerprint("items").await.unwrap(),
            Some(changed.fingerprint())
        );
        assert_ne!(changed.fingerprint(), index.fingerprint());
        assert_eq!(b.count(&changed).await.unwrap(), 0);

        b.drop_index("items").await.unwrap();
        assert_eq!(b.list().await.unwrap(), vec!["others"]);
        assert_eq!(b.stored_fingerprint("items").await.unwrap(), None);
        // Dropping a missing index is not an error.
        b.drop_index("items").await.unwrap();
        b.drop_index("others").await.unwrap();
        assert_eq!(b.list().await.unwrap(), Vec::<String>::new());
        assert!(b.describe().contains("search_redis"));
    }

    #[tokio::test]
    async fn create_starts_empty_and_drop_leaves_no_document() {
        let (b, index) = setup("stray");
        // Written while the index does not exist (its documents are plain hashes).
        b.write(&index, &[doc(1, vec![(TITLE, text("early"))])], &[])
            .await
            .unwrap();
        let key = format!("{}1", b.doc_prefix("items"));
        let exists = |key: String| {
            let redis = b.redis.clone();
            async move {
                let mut cmd = ::redis::cmd("EXISTS");
                cmd.arg(key);
                redis.query::<i64>(&cmd).await.unwrap()
            }
        };
        assert_eq!(exists(key.clone()).await, 1);
        b.create(&index).await.unwrap();
        assert_eq!(exists(key.clone()).await, 0);
        assert_eq!(b.count(&index).await.unwrap(), 0);
        b.write(&index, &[doc(2, vec![(TITLE, text("later"))])], &[])
            .await
            .unwrap();
        b.drop_index("items").await.unwrap();
        assert_eq!(exists(format!("{}2", b.doc_prefix("items"))).await, 0);
        assert_eq!(exists(b.def_key("items")).await, 0);
    }

    #[tokio::test]
    async fn glob_characters_in_the_prefix_match_only_themselves() {
        let (plain, index) = setup("glob");
        let wild = RediSearchBackend::new(
            "search",
            plain.redis.clone(),
            &format!("{}*?[a]", plain.prefix),
        );
        let other = RediSearchBackend::new(
            "search",
            plain.redis.clone(),
            // What `*?[a]` would match as a pattern.
            &format!("{}xya", plain.prefix),
        );
        other.create(&index).await.unwrap();
        other
            .write(&index, &[doc(1, vec![(TITLE, text("kept"))])], &[])
            .await
            .unwrap();
        wild.create(&index).await.unwrap();
        wild.drop_index("items").await.unwrap();
        assert_eq!(other.count(&index).await.unwrap(), 1);
        other.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn fields_named_like_keywords() {
        let (b, mut index) = setup("keywords");
        let field = |name: &str, kind| SearchField {
            name: name.to_string(),
            kind,
            sortable: true,
        };
        index.fields = vec![
            field("numeric", SearchFieldKind::Numeric),
            field("sortable", SearchFieldKind::Numeric),
            field("text", SearchFieldKind::Text),
            field("as", SearchFieldKind::Tag),
            field("separator", SearchFieldKind::Text),
        ];
        b.create(&index).await.unwrap();
        b.write(
            &index,
            &[
                doc(
                    1,
                    vec![
                        (0, DocValue::Number(1.0)),
                        (1, DocValue::Number(2.0)),
                        (2, text("hello")),
                        (3, tags(&["x"])),
                        (4, text("world")),
                    ],
                ),
                doc(2, vec![(1, DocValue::Number(1.0)), (4, text("hello"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        let mut q = query(Some(QueryNode::Field(2, Box::new(term("hello")))));
        q.filters = vec![
            Filter::Range {
                field: 1,
                min: Bound::Included(2.0),
                max: Bound::Unbounded,
            },
            Filter::AnyTag {
                field: 3,
                values: vec!["x".into()],
            },
        ];
        assert_eq!(ids(&b, &index, q).await, vec![1]);
        let mut q = query(Some(term("hello")));
        q.sort = Some((1, SortOrder::Asc));
        assert_eq!(ids(&b, &index, q).await, vec![2, 1]);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn describe_create_shows_the_schema() {
        let (b, index) = setup("describe");
        let text = b.describe_create(&index);
        assert!(
            text.starts_with("FT.CREATE beeorm_test_rs_describe_"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "STOPWORDS 0 SCHEMA _title AS title TEXT NOSTEM SORTABLE _body AS body TEXT \
                 NOSTEM _age AS age NUMERIC SORTABLE _city AS city TAG SEPARATOR \"\\x1f\" \
                 CASESENSITIVE SORTABLE"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn create_without_fields_is_an_error() {
        let (b, mut index) = setup("nofields");
        index.fields.clear();
        let err = b.create(&index).await.unwrap_err();
        assert!(
            matches!(&err, Error::Search { pool, index, reason }
                if pool == "search" && index == "items" && reason.contains("at least one field")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn write_replace_and_delete() {
        let (b, index) = created("write").await;
        b.write(
            &index,
            &[
                full(1, "Alpha", 5.0, "Paris"),
                doc(2, vec![(TITLE, text("alpha beta"))]),
                // Every field NULL: still a document (counted, found by `*`).
                doc(3, vec![]),
                doc(u64::MAX, vec![(BODY, text("largest id"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(b.count(&index).await.unwrap(), 4);
        assert_eq!(
            sorted_ids(&b, &index, query(None)).await,
            vec![1, 2, 3, u64::MAX]
        );
        assert_eq!(
            sorted_ids(&b, &index, query(Some(term("alpha")))).await,
            vec![1, 2]
        );
        assert_eq!(
            ids(&b, &index, query(Some(term("largest")))).await,
            vec![u64::MAX]
        );

        // Replace: the city became NULL, the title changed; nothing of before lingers.
        b.write(&index, &[doc(1, vec![(TITLE, text("gamma"))])], &[])
            .await
            .unwrap();
        assert_eq!(ids(&b, &index, query(Some(term("alpha")))).await, vec![2]);
        assert_eq!(ids(&b, &index, query(Some(term("gamma")))).await, vec![1]);
        let mut by_city = query(None);
        by_city.filters.push(Filter::AnyTag {
            field: CITY,
            values: vec!["Paris".to_string()],
        });
        assert_eq!(ids(&b, &index, by_city).await, Vec::<u64>::new());
        let mut by_age = query(None);
        by_age.filters.push(Filter::Range {
            field: AGE,
            min: Bound::Unbounded,
            max: Bound::Unbounded,
        });
        assert_eq!(ids(&b, &index, by_age).await, Vec::<u64>::new());

        // Write and delete in one batch; deleting a missing ID is not an error.
        b.write(
            &index,
            &[doc(4, vec![(TITLE, text("delta"))])],
            &[2, 3, 999],
        )
        .await
        .unwrap();
        assert_eq!(
            sorted_ids(&b, &index, query(None)).await,
            vec![1, 4, u64::MAX]
        );
        b.write(&index, &[], &[1, 4, u64::MAX]).await.unwrap();
        assert_eq!(b.count(&index).await.unwrap(), 0);
        // An empty batch sends nothing.
        b.write(&index, &[], &[]).await.unwrap();
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn a_big_batch_goes_whole() {
        let (b, index) = created("big_batch").await;
        b.write(&index, &[doc(9_999, vec![(TITLE, text("gone"))])], &[])
            .await
            .unwrap();
        // 1,600 documents of 5 KiB (several transactions: 4 MiB each at most), and
        // a delete after them.
        let body = "lorem ipsum ".repeat(450);
        let docs: Vec<Doc> = (1..=1_600)
            .map(|i| {
                doc(
                    i,
                    vec![
                        (TITLE, text(&format!("doc{i}"))),
                        (BODY, text(&body)),
                        (AGE, DocValue::Number(i as f64)),
                    ],
                )
            })
            .collect();
        b.write(&index, &docs, &[9_999]).await.unwrap();
        assert_eq!(b.count(&index).await.unwrap(), 1_600);
        for i in [1, 700, 800, 1_000, 1_600] {
            let want = vec![i];
            assert_eq!(
                ids(&b, &index, query(Some(term(&format!("doc{i}"))))).await,
                want
            );
        }
        assert!(ids(&b, &index, query(Some(term("gone")))).await.is_empty());
        b.drop_index("items").await.unwrap();
        assert_eq!(b.list().await.unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn query_nodes() {
        let (b, index) = created("nodes").await;
        b.write(
            &index,
            &[
                doc(1, vec![(TITLE, text("quick brown fox"))]),
                doc(2, vec![(TITLE, text("brown quick fox"))]),
                doc(3, vec![(TITLE, text("quick red brown fox"))]),
                doc(4, vec![(BODY, text("quick prefix"))]),
                doc(5, vec![(TITLE, text("prelude apre"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        let q = |n| query(Some(n));
        let not = |n| QueryNode::Not(Box::new(n));
        let field = |f, n| QueryNode::Field(f, Box::new(n));
        let phrase = |w: &[&str]| QueryNode::Phrase(w.iter().map(|w| w.to_string()).collect());
        let cases: Vec<(QueryNode, Vec<u64>)> = vec![
            (term("quick"), vec![1, 2, 3, 4]),
            (QueryNode::Prefix("pre".into()), vec![4, 5]),
            // A phrase: adjacent and in order.
            (phrase(&["quick", "brown"]), vec![1]),
            (QueryNode::And(vec![term("quick"), term("red")]), vec![3]),
            (
                QueryNode::Or(vec![term("red"), term("prelude")]),
                vec![3, 5],
            ),
            (
                QueryNode::And(vec![term("quick"), not(term("red"))]),
                vec![1, 2, 4],
            ),
            // `quick` only in the title: not document 4 (body).
            (field(TITLE, term("quick")), vec![1, 2, 3]),
            (field(BODY, term("quick")), vec![4]),
            // Or binds inside And: quick AND (red OR prefix).
            (
                QueryNode::And(vec![
                    term("quick"),
                    QueryNode::Or(vec![term("red"), term("prefix")]),
                ]),
                vec![3, 4],
            ),
            // A field on a group, with a negated phrase inside (1 and 3 hold `brown fox`).
            (
                field(
                    TITLE,
                    QueryNode::And(vec![term("fox"), not(phrase(&["brown", "fox"]))]),
                ),
                vec![2],
            ),
        ];
        for (node, want) in cases {
            assert_eq!(
                sorted_ids(&b, &index, q(node.clone())).await,
                want,
                "{node:?}"
            );
        }
        // Stop words are words like any other; nothing is stemmed.
        b.write(
            &index,
            &[doc(6, vec![(TITLE, text("The running of it"))])],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(ids(&b, &index, q(term("the"))).await, vec![6]);
        assert_eq!(ids(&b, &index, q(term("it"))).await, vec![6]);
        assert_eq!(ids(&b, &index, q(term("run"))).await, Vec::<u64>::new());
        // An empty term is refused, not sent.
        let err = b.search(&index, &q(term(""))).await.unwrap_err();
        assert!(matches!(err, Error::Search { .. }), "{err}");
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn ranking_is_bm25() {
        let (b, index) = created("ranking").await;
        let long = format!(
            "apple {}",
            (0..40)
                .map(|i| format!("filler{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        b.write(
            &index,
            &[
                doc(1, vec![(TITLE, text(&long))]),
                doc(2, vec![(TITLE, text("apple apple apple pie"))]),
                doc(3, vec![(TITLE, text("pear"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            ids(&b, &index, query(Some(term("apple")))).await,
            vec![2, 1]
        );
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn range_bounds() {
        let (b, index) = created("ranges").await;
        b.write(
            &index,
            &[
                doc(1, vec![(AGE, DocValue::Number(10.0))]),
                doc(2, vec![(AGE, DocValue::Number(20.5))]),
                doc(3, vec![(AGE, DocValue::Number(-30.0))]),
                doc(4, vec![(TITLE, text("no age"))]),
                doc(5, vec![(AGE, DocValue::Number(f64::NAN))]),
                doc(6, vec![(AGE, DocValue::Number(0.1))]),
            ],
            &[],
        )
        .await
        .unwrap();
        let range = |min, max| {
            let mut q = query(None);
            q.filters.push(Filter::Range {
                field: AGE,
                min,
                max,
            });
            q
        };
        use Bound::{Excluded as Ex, Included as In, Unbounded as Un};
        assert_eq!(
            sorted_ids(&b, &index, range(In(10.0), In(20.5))).await,
            vec![1, 2]
        );
        assert_eq!(
            sorted_ids(&b, &index, range(Ex(10.0), In(20.5))).await,
            vec![2]
        );
        assert_eq!(
            sorted_ids(&b, &index, range(In(10.0), Ex(20.5))).await,
            vec![1]
        );
        assert_eq!(
            sorted_ids(&b, &index, range(Un, Ex(10.0))).await,
            vec![3, 6]
        );
        assert_eq!(sorted_ids(&b, &index, range(Ex(0.1), Un)).await, vec![1, 2]);
        assert_eq!(
            sorted_ids(&b, &index, range(In(0.1), In(0.1))).await,
            vec![6]
        );
        // Unbounded both ways: every document that has the field (NULL and NaN not).
        assert_eq!(
            sorted_ids(&b, &index, range(Un, Un)).await,
            vec![1, 2, 3, 6]
        );
        assert_eq!(
            sorted_ids(&b, &index, range(In(f64::NEG_INFINITY), Ex(f64::INFINITY))).await,
            vec![1, 2, 3, 6]
        );
        // Two filters: both must hold.
        let mut both = range(In(0.0), Un);
        both.filters.push(Filter::Range {
            field: AGE,
            min: Un,
            max: In(10.0),
        });
        assert_eq!(sorted_ids(&b, &index, both).await, vec![1, 6]);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn tags_any_of_exact_values() {
        let (b, index) = created("tags").await;
        let values = [
            "New York",
            "new york",
            "a,b;c",
            "{x}|@y:-(z)[w]\"q'\\*~%$",
            "تهران",
            "a_b",
            "  padded  ",
        ];
        let docs: Vec<Doc> = values
            .iter()
            .enumerate()
            .map(|(i, v)| doc(i as u64 + 1, vec![(CITY, tags(&[v]))]))
            .chain([doc(20, vec![(CITY, tags(&["Rome", "Oslo", "تهران"]))])])
            .collect();
        b.write(&index, &docs, &[]).await.unwrap();
        let any = |values: &[&str]| {
            let mut q = query(None);
            q.filters.push(Filter::AnyTag {
                field: CITY,
                values: values.iter().map(|v| v.to_string()).collect(),
            });
            q
        };
        for (i, v) in values.iter().enumerate() {
            let want = if *v == "تهران" {
                vec![i as u64 + 1, 20]
            } else {
                vec![i as u64 + 1]
            };
            assert_eq!(sorted_ids(&b, &index, any(&[v])).await, want, "tag {v:?}");
        }
        // Exact: no prefix, no case folding, no word match.
        assert!(sorted_ids(&b, &index, any(&["New"])).await.is_empty());
        assert!(sorted_ids(&b, &index, any(&["NEW YORK"])).await.is_empty());
        // Stored values are trimmed (RediSearch), and so are the wanted ones.
        assert_eq!(sorted_ids(&b, &index, any(&["padded"])).await, vec![7]);
        assert_eq!(
            sorted_ids(&b, &index, any(&["Oslo", "a_b"])).await,
            vec![6, 20]
        );
        // No usable value: nothing matches, no error.
        assert!(sorted_ids(&b, &index, any(&[])).await.is_empty());
        assert!(sorted_ids(&b, &index, any(&["  "])).await.is_empty());
        assert_eq!(b.search(&index, &any(&[""])).await.unwrap().total, 0);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn sort_by_numeric_tag_and_text() {
        let (b, index) = created("sort").await;
        b.write(
            &index,
            &[
                full(1, "banana", 3.0, "b"),
                full(2, "Apple", -1.5, "c"),
                full(3, "cherry", 100.0, "a"),
                doc(4, vec![(BODY, text("nothing sortable"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        let sorted = |field, order| {
            let mut q = query(None);
            q.sort = Some((field, order));
            q
        };
        use SortOrder::{Asc, Desc};
        // A document without the field comes last in both orders.
        assert_eq!(ids(&b, &index, sorted(AGE, Asc)).await, vec![2, 1, 3, 4]);
        assert_eq!(ids(&b, &index, sorted(AGE, Desc)).await, vec![3, 1, 2, 4]);
        assert_eq!(ids(&b, &index, sorted(CITY, Asc)).await, vec![3, 1, 2, 4]);
        assert_eq!(ids(&b, &index, sorted(CITY, Desc)).await, vec![2, 1, 3, 4]);
        // Text sorts by its lower-cased words.
        assert_eq!(ids(&b, &index, sorted(TITLE, Asc)).await, vec![2, 1, 3, 4]);
        assert_eq!(ids(&b, &index, sorted(TITLE, Desc)).await, vec![3, 1, 2, 4]);
        // Sort with a text query and a filter.
        let mut q = sorted(AGE, Desc);
        q.text = Some(QueryNode::Or(vec![term("apple"), term("banana")]));
        q.filters.push(Filter::Range {
            field: AGE,
            min: Bound::Unbounded,
            max: Bound::Included(50.0),
        });
        assert_eq!(ids(&b, &index, q).await, vec![1, 2]);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn pager_and_total() {
        let (b, index) = created("pager").await;
        let docs: Vec<Doc> = (1..=25)
            .map(|i| {
                doc(
                    i,
                    vec![(TITLE, text("page")), (AGE, DocValue::Number(i as f64))],
                )
            })
            .collect();
        b.write(&index, &docs, &[]).await.unwrap();
        let page = |offset, limit| {
            let mut q = query(Some(term("page")));
            q.sort = Some((AGE, SortOrder::Asc));
            q.offset = offset;
            q.limit = limit;
            q
        };
        let hits = b.search(&index, &page(0, 10)).await.unwrap();
        assert_eq!(hits.ids, (1..=10).collect::<Vec<u64>>());
        assert_eq!(hits.total, 25);
        let hits = b.search(&index, &page(20, 10)).await.unwrap();
        assert_eq!(hits.ids, (21..=25).collect::<Vec<u64>>());
        assert_eq!(hits.total, 25);
        let hits = b.search(&index, &page(30, 10)).await.unwrap();
        assert_eq!((hits.ids.len(), hits.total), (0, 25));
        // Limit 0: just the total.
        let hits = b.search(&index, &page(0, 0)).await.unwrap();
        assert_eq!((hits.ids.len(), hits.total), (0, 25));
        assert_eq!(b.count(&index).await.unwrap(), 25);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn persian_text() {
        let (b, index) = created("persian").await;
        b.write(
            &index,
            &[
                // A ZWNJ inside a word and a Persian comma: both cut words, as in tantivy.
                doc(1, vec![(TITLE, text("کتاب\u{200c}های فارسی، خوب"))]),
                doc(
                    2,
                    vec![(TITLE, text("فارسی‌زبان")), (BODY, text("سلام دنیا"))],
                ),
                doc(3, vec![(TITLE, text("English words_here"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            sorted_ids(&b, &index, query(Some(term("فارسی")))).await,
            vec![1, 2]
        );
        assert_eq!(ids(&b, &index, query(Some(term("کتاب")))).await, vec![1]);
        assert_eq!(ids(&b, &index, query(Some(term("خوب")))).await, vec![1]);
        assert_eq!(
            ids(
                &b,
                &index,
                query(Some(QueryNode::Phrase(vec!["سلام".into(), "دنیا".into()])))
            )
            .await,
            vec![2]
        );
        assert_eq!(
            ids(&b, &index, query(Some(QueryNode::Prefix("فار".into()))))
                .await
                .len(),
            2
        );
        // `_` separates words too (not a letter or digit).
        assert_eq!(ids(&b, &index, query(Some(term("here")))).await, vec![3]);
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn hostile_terms_never_become_syntax() {
        let (b, index) = created("hostile").await;
        b.write(
            &index,
            &[
                doc(1, vec![(TITLE, text("plain words")), (CITY, tags(&["x"]))]),
                doc(2, vec![(TITLE, text("other"))]),
            ],
            &[],
        )
        .await
        .unwrap();
        let hostile = [
            "@",
            ":",
            "-",
            "|",
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            "\"",
            "'",
            "\\",
            "*",
            "~",
            "%",
            "@title:(plain)",
            "plain|other",
            "-plain",
            "(plain",
            "plain)",
            "{x}",
            "[1 2]",
            "\"plain words\"",
            "plain*",
            "~plain",
            "%plain%",
            "\\",
            "$param",
            "=>{$slop:5}",
            "plain words",
            " ",
            "\t\n",
            "سلام@دنیا",
        ];
        for h in hostile {
            for node in [
                term(h),
                QueryNode::Prefix(h.to_string()),
                QueryNode::Phrase(vec!["plain".into(), h.to_string()]),
                QueryNode::And(vec![term("plain"), QueryNode::Not(Box::new(term(h)))]),
            ] {
                let hits = b.search(&index, &query(Some(node.clone()))).await;
                let hits = match hits {
                    Ok(hits) => hits,
                    Err(e) => panic!("{node:?}: {e}"),
                };
                // Literal text with punctuation is never a stored word; `plain AND NOT h`
                // is just `plain`.
                let want: Vec<u64> = match &node {
                    QueryNode::And(_) => vec![1],
                    _ => vec![],
                };
                assert_eq!(hits.ids, want, "{node:?}");
            }
            let mut tag = query(None);
            tag.filters.push(Filter::AnyTag {
                field: CITY,
                values: vec![h.to_string()],
            });
            let hits = b.search(&index, &tag).await;
            assert!(
                matches!(&hits, Ok(h) if h.total == 0),
                "tag {h:?}: {hits:?}"
            );
        }
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn server_errors_are_typed() {
        let (b, index) = setup("errors");
        // Never created: the server's message, with pool and index.
        let err = b.search(&index, &query(None)).await.unwrap_err();
        assert!(
            matches!(&err, Error::Search { pool, index, reason }
                if pool == "search" && index == "items" && reason.contains("no such index")
                    && reason.contains("search_redis")),
            "{err}"
        );
        let err = b.count(&index).await.unwrap_err();
        assert!(matches!(err, Error::Search { .. }), "{err}");
        // A NaN bound is a server-side syntax error, still typed.
        let (b, index) = created("errors_nan").await;
        let mut q = query(None);
        q.filters.push(Filter::Range {
            field: AGE,
            min: Bound::Included(f64::NAN),
            max: Bound::Unbounded,
        });
        let err = b.search(&index, &q).await.unwrap_err();
        assert!(
            matches!(&err, Error::Search { index, .. } if index == "items"),
            "{err}"
        );
        // A field position the index does not have.
        let err = b
            .write(&index, &[doc(1, vec![(9, text("x"))])], &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Search { reason, .. } if reason.contains("position 9")),
            "{err}"
        );
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn resp3_replies_are_read_too() {
        let (b, index) = created("resp3").await;
        let resp3 = RediSearchBackend::new(
            "search",
            client(&format!("{}/?protocol=resp3", url().trim_end_matches('/'))),
            &b.prefix,
        );
        resp3
            .write(
                &index,
                &[
                    doc(1, vec![(TITLE, text("one")), (AGE, DocValue::Number(1.0))]),
                    doc(
                        2,
                        vec![(TITLE, text("two one")), (AGE, DocValue::Number(2.0))],
                    ),
                ],
                &[],
            )
            .await
            .unwrap();
        let mut q = query(Some(term("one")));
        q.sort = Some((AGE, SortOrder::Desc));
        for backend in [&b, &resp3] {
            let hits = backend.search(&index, &q).await.unwrap();
            assert_eq!((hits.ids, hits.total), (vec![2, 1], 2));
            assert_eq!(backend.count(&index).await.unwrap(), 2);
        }
        // The RESP3 connection really speaks RESP3: a map reply.
        let mut hello = ::redis::cmd("FT.SEARCH");
        hello.arg(b.index_key("items")).arg("*").arg("NOCONTENT");
        let reply: Value = resp3.redis.query(&hello).await.unwrap();
        assert!(matches!(reply, Value::Map(_)), "{reply:?}");
        b.drop_index("items").await.unwrap();
    }

    #[tokio::test]
    async fn a_server_without_the_module_is_named() {
        // The plain Redis of the test suite has no RediSearch module.
        let plain = std::env::var("BEEORM_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
        let b = RediSearchBackend::new("search", client(&plain), "beeorm_test_rs_nomodule");
        let (_, index) = setup("nomodule");
        for err in [
            b.list().await.unwrap_err(),
            b.search(&index, &query(None)).await.unwrap_err(),
        ] {
            assert!(
                matches!(&err, Error::Search { reason, .. }
                    if reason.contains("no RediSearch module")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn dead_server_is_a_typed_error() {
        // Nothing listens on port 1.
        let b = RediSearchBackend::new("search", client("redis://127.0.0.1:1"), "beeorm_dead");
        let (_, index) = setup("dead");
        let check = |err: Error| {
            assert!(
                matches!(&err, Error::Search { pool, index, reason }
                    if pool == "search" && (index == "items" || index.is_empty())
                        && reason.contains("search_redis")),
                "{err}"
            );
        };
        check(b.search(&index, &query(None)).await.unwrap_err());
        check(b.write(&index, &[doc(1, vec![])], &[]).await.unwrap_err());
        check(b.create(&index).await.unwrap_err());
        check(b.drop_index("items").await.unwrap_err());
        check(b.list().await.unwrap_err());
        check(b.stored_fingerprint("items").await.unwrap_err());
        check(b.count(&index).await.unwrap_err());
    }

    #[tokio::test]
    async fn cluster_pool_is_refused() {
        let redis = RedisClient::open(
            "cluster",
            &RedisConfig::Cluster {
                nodes: vec!["127.0.0.1:7000".to_string()],
            },
            Timeouts::default(),
        )
        .unwrap();
        let b = RediSearchBackend::new("search", redis, "beeorm_cluster");
        let (_, index) = setup("cluster");
        let err = b.write(&index, &[doc(1, vec![])], &[]).await.unwrap_err();
        assert!(
            matches!(&err, Error::Search { reason, .. } if reason.contains("Redis Cluster")),
            "{err}"
        );
        let err = b.search(&index, &query(None)).await.unwrap_err();
        assert!(matches!(err, Error::Search { .. }), "{err}");
        let err = b.list().await.unwrap_err();
        assert!(matches!(err, Error::Search { .. }), "{err}");
    }

    /// Figures for the report (not asserted; run with `--ignored --nocapture`):
    /// indexing 10,000 documents (3 text, 1 numeric, 1 tag field) in batches of 1,000,
    /// and the median latency of a 2-term query with a filter, a sort and a page of 20.
    #[tokio::test]
    #[ignore = "measurement, not a test"]
    async fn measure_indexing_and_query() {
        let (b, mut index) = setup("measure");
        index.fields = vec![
            SearchField {
                name: "title".into(),
                kind: SearchFieldKind::Text,
                sortable: true,
            },
            SearchField {
                name: "summary".into(),
                kind: SearchFieldKind::Text,
                sortable: false,
            },
            SearchField {
                name: "body".into(),
                kind: SearchFieldKind::Text,
                sortable: false,
            },
            SearchField {
                name: "age".into(),
                kind: SearchFieldKind::Numeric,
                sortable: true,
            },
            SearchField {
                name: "city".into(),
                kind: SearchFieldKind::Tag,
                sortable: true,
            },
        ];
        b.create(&index).await.unwrap();
        // A small LCG; words skewed towards the low numbers (some frequent, many rare).
        let mut state: u64 = 42;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut sentence = |n: u64| {
            (0..n)
                .map(|_| {
                    let w = (next() % 1000) * (next() % 1000) / 1000;
                    format!("word{w}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let cities = ["Tehran", "Paris", "New York", "Oslo", "Rome"];
        let docs: Vec<Doc> = (1..=10_000u64)
            .map(|id| {
                doc(
                    id,
                    vec![
                        (0, text(&sentence(5))),
                        (1, text(&sentence(15))),
                        (2, text(&sentence(60))),
                        (3, DocValue::Number((id % 80) as f64)),
                        (4, tags(&[cities[(id % 5) as usize]])),
                    ],
                )
            })
            .collect();
        let start = std::time::Instant::now();
        for batch in docs.chunks(1000) {
            b.write(&index, batch, &[]).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(b.count(&index).await.unwrap(), 10_000);
        println!(
            "indexing: 10000 docs in {:.3} s = {:.0} docs/s",
            secs,
            10_000.0 / secs
        );
        let q = CompiledQuery {
            text: Some(QueryNode::And(vec![term("word3"), term("word10")])),
            filters: vec![Filter::Range {
                field: 3,
                min: Bound::Included(20.0),
                max: Bound::Excluded(60.0),
            }],
            sort: Some((3, SortOrder::Desc)),
            offset: 0,
            limit: 20,
        };
        let hits = b.search(&index, &q).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..300 {
            let start = std::time::Instant::now();
            b.search(&index, &q).await.unwrap();
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "query (2 terms, range filter, sort, page of 20; {} matches): median {:?}, p90 {:?}",
            hits.total,
            times[times.len() / 2],
            times[times.len() * 9 / 10]
        );
        b.drop_index("items").await.unwrap();
    }

    #[test]
    fn words_and_escaping() {
        assert_eq!(
            words("  Hello, WORLD!\u{200c}x_y 42 "),
            "hello world x y 42"
        );
        assert_eq!(words("...!"), "");
        let mut out = String::new();
        escape_into(&mut out, "a b-c@é");
        assert_eq!(out, "a\\ b\\-c\\@é");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(1e21), "1000000000000000000000");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(bound(&Bound::Excluded(1.5), "-inf"), "(1.5");
        assert_eq!(bound(&Bound::Unbounded, "+inf"), "+inf");
    }
}
