//! [`RediSearchBackend`]: the search indexes of one search pool kept by the RediSearch
//! module of a Redis (Valkey) server, reached through a registered Redis pool's
//! [`RedisClient`] (so its connect/response timeouts and its tracing apply).
//!
//! # Layout on the server
//! * index `<prefix>:idx:<name>`, over the hashes whose key starts with
//!   `<prefix>:doc:<name>:`; a document is the hash `<prefix>:doc:<name>:<id>` (the ID
//!   in decimal), with one hash field per indexed field (named as the column) and the
//!   field `#id` (the ID again, not indexed) so that a document whose fields are all
//!   NULL still exists and is counted;
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
//!   value containing the separator character U+001F is stored as two values.
//! * Ranking: `SCORER BM25`; numbers are stored and compared as `f64` written in exact
//!   decimal (Rust's shortest round-trip form).
//! * Queries use `DIALECT 2`, where a backslash makes any character literal: every
//!   character of a term, prefix, phrase word or tag value that is not a letter or a
//!   digit is escaped, so user text never becomes query syntax.
//! * Writes go in one `MULTI`/`EXEC` transaction (DEL + HSET per document, DEL per
//!   deleted ID): a concurrent search sees the batch completely or not at all — with a
//!   plain pipeline it could run between a document's DEL and its HSET and miss it. The
//!   transaction is a single request, so a dropped future does not leave half a batch.
//! * A Redis Cluster pool is refused (typed error on every call): an index lives on one
//!   server and sees only that server's keys. A single server or Sentinel pool works.
//!
//! Known limits: a prefix query expands to at most the server's `MAXEXPANSIONS` terms
//! (200 by default); a query running longer than the server's timeout returns what it
//! found so far when the server's `ON_TIMEOUT` policy is `RETURN` (each search asks for
//! the Redis pool's response timeout).

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
                self.error(
                    index,
                    format!("{what}`{command}` on Redis pool `{pool}` failed: {source}"),
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
            cmd.arg(&field.name);
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

    /// The `[total, key, key, …]` reply of `FT.SEARCH … NOCONTENT` as IDs.
    fn parse_hits(&self, index: &SearchIndex, reply: Value) -> Result<SearchHits> {
        let bad = |what: &str| self.error(&index.name, format!("unexpected FT.SEARCH reply: {what}"));
        let Value::Array(items) = reply else {
            return Err(bad("not an array"));
        };
        let mut items = items.into_iter();
        let total = match items.next() {
            Some(Value::Int(n)) => u64::try_from(n).map_err(|_| bad("negative total"))?,
            _ => return Err(bad("no total")),
        };
        let prefix = self.doc_prefix(&index.name);
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            let key = match item {
                Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|_| bad("key"))?,
                Value::SimpleString(s) => s,
                _ => return Err(bad("a key that is not a string")),
            };
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
        match self.run::<Value>(name, &drop).await {
            Ok(_) => Ok(()),
            Err(Error::Search { reason, .. })
                if reason.contains("Unknown Index name") || reason.contains("no such index") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn create_impl(&self, index: &SearchIndex) -> Result<()> {
        if index.fields.is_empty() {
            return Err(self.error(&index.name, "an index needs at least one field"));
        }
        // Drop first (the definition key before the index): a create cut short leaves
        // no definition, so the index reads as missing and is created again.
        self.drop_impl(&index.name).await?;
        let _: Value = self
            .run(&index.name, &self.create_command(index))
            .await?;
        let mut set = ::redis::cmd("SET");
        set.arg(self.def_key(&index.name)).arg(index.fingerprint());
        let _: Value = self.run(&index.name, &set).await?;
        Ok(())
    }

    async fn write_impl(&self, index: &SearchIndex, docs: &[Doc], deletes: &[u64]) -> Result<()> {
        self.check_pool(&index.name)?;
        if docs.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let prefix = self.doc_prefix(&index.name);
        let mut pipe = self.redis.pipeline();
        pipe.atomic();
        for doc in docs {
            let key = format!("{prefix}{}", doc.id);
            pipe.del(&key).ignore();
            let mut hset = ::redis::cmd("HSET");
            hset.arg(&key).arg(ID_FIELD).arg(doc.id);
            for (position, value) in &doc.fields {
                let name = &self.field_of(index, *position)?;
                match value {
                    DocValue::Text(text) => {
                        let text = words(text);
                        if !text.is_empty() {
                            hset.arg(name).arg(text);
                        }
                    }
                    DocValue::Number(n) if n.is_nan() => {}
                    DocValue::Number(n) => {
                        hset.arg(name).arg(number(*n));
                    }
                    DocValue::Tags(tags) => {
                        if !tags.is_empty() {
                            hset.arg(name).arg(tags.join(TAG_SEPARATOR));
                        }
                    }
                }
            }
            pipe.cmd(hset).ignore();
        }
        for id in deletes {
            pipe.del(format!("{prefix}{id}")).ignore();
        }
        pipe.exec().await.map_err(|e| self.map_err(&index.name, e))
    }

    fn field_of<'i>(&self, index: &'i SearchIndex, position: usize) -> Result<&'i str> {
        index
            .fields
            .get(position)
            .map(|f| f.name.as_str())
            .ok_or_else(|| {
                self.error(
                    &index.name,
                    format!("no field at position {position}"),
                )
            })
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
