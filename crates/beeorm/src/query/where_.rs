//! [`Where`]: a condition in plain SQL with `?` placeholders (D2).
//!
//! `Where::new("`age` > ? AND `id` IN ?", (18, vec![1, 2, 3]))` renders
//! `` `age` > ? AND `id` IN (?,?,?) `` with four parameters: a list parameter expands to
//! one placeholder per item (an empty list to `(NULL)`, which matches nothing). The
//! condition may end with `ORDER BY …`; beeorm keeps that outside the parentheses it
//! puts around the condition when it adds its own (fake-delete filter).
//!
//! Any text is accepted (`≥`, Persian names, "café" in a comment): a `?` outside
//! quotes (`'…'`, `"…"`, `` `…` ``) is a placeholder, comments included, and a
//! placeholder count that does not match the parameters is an [`Error::Query`]
//! when the condition is used, never a panic.
//!
//! [`Error::Query`]: crate::Error::Query

use crate::Value;

/// One parameter: a value, or a list that expands to `(?,?,…)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A single value.
    One(Value),
    /// A list of values.
    List(Vec<Value>),
}

/// A type usable as one [`Where`] parameter: any value type, or a `Vec`, slice or
/// array of them (a list). `Vec<u8>` is bytes, not a list.
pub trait ToParam {
    /// The parameter.
    fn to_param(self) -> Param;
}

impl ToParam for Param {
    fn to_param(self) -> Param {
        self
    }
}

impl ToParam for Value {
    fn to_param(self) -> Param {
        Param::One(self)
    }
}

macro_rules! params_for {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(self) -> Param { Param::One(self.into()) }
        }
        impl ToParam for Option<$t> {
            fn to_param(self) -> Param { Param::One(self.into()) }
        }
        impl ToParam for Vec<$t> {
            fn to_param(self) -> Param { Param::List(self.into_iter().map(Into::into).collect()) }
        }
        impl ToParam for &[$t] {
            fn to_param(self) -> Param { Param::List(self.iter().cloned().map(Into::into).collect()) }
        }
        impl<const N: usize> ToParam for [$t; N] {
            fn to_param(self) -> Param { Param::List(self.into_iter().map(Into::into).collect()) }
        }
    )*};
}
params_for!(
    i8,
    i16,
    i32,
    i64,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    bool,
    String,
    &str,
    rust_decimal::Decimal,
    chrono::NaiveDate,
    chrono::NaiveDateTime,
    chrono::NaiveTime
);

impl ToParam for u8 {
    fn to_param(self) -> Param {
        Param::One(self.into())
    }
}

impl ToParam for Vec<u8> {
    fn to_param(self) -> Param {
        Param::One(Value::Bytes(self))
    }
}

impl ToParam for Vec<Value> {
    fn to_param(self) -> Param {
        Param::List(self)
    }
}

/// A set of parameters: `()`, one [`ToParam`], a tuple of them, or a `Vec<Param>`.
pub trait ToParams {
    /// The parameters in order.
    fn to_params(self) -> Vec<Param>;
}

impl ToParams for () {
    fn to_params(self) -> Vec<Param> {
        Vec::new()
    }
}

impl ToParams for Vec<Param> {
    fn to_params(self) -> Vec<Param> {
        self
    }
}

impl<T: ToParam> ToParams for T {
    fn to_params(self) -> Vec<Param> {
        vec![self.to_param()]
    }
}

macro_rules! tuple_params {
    ($(($($n:ident),+)),*) => {$(
        impl<$($n: ToParam),+> ToParams for ($($n,)+) {
            #[allow(non_snake_case)]
            fn to_params(self) -> Vec<Param> {
                let ($($n,)+) = self;
                vec![$($n.to_param()),+]
            }
        }
    )*};
}
tuple_params!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L)
);

/// An SQL condition with `?` parameters. Identifiers are written in backticks, as in
/// the Go originals; SQLite accepts them too.
#[derive(Debug, Clone, PartialEq)]
pub struct Where {
    condition: String,
    tail: String,
    params: Vec<Value>,
    error: Option<String>,
}

/// Byte offsets of `?` outside quotes and the start of a top-level `ORDER BY`,
/// `GROUP BY` or `LIMIT`.
fn scan(sql: &str) -> (Vec<usize>, Option<usize>) {
    let bytes = sql.as_bytes();
    let (mut marks, mut tail) = (Vec::new(), None);
    let (mut quote, mut depth) = (None::<u8>, 0i32);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'?' => marks.push(i),
                _ if depth == 0 && tail.is_none() => {
                    // Bytes, not `&sql[i..]`: `i` may be inside a multi-byte character
                    // (`≥`, a Persian name), and slicing a `str` there panics. The
                    // keywords are ASCII, so they never match part of such a character.
                    let rest = &bytes[i..];
                    let boundary =
                        i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_';
                    if boundary {
                        for kw in ["ORDER BY", "GROUP BY", "LIMIT"] {
                            if rest.len() >= kw.len()
                                && rest[..kw.len()].eq_ignore_ascii_case(kw.as_bytes())
                            {
                                tail = Some(i);
                            }
                        }
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    (marks, tail)
}

impl Where {
    /// A condition and its parameters (see the module docs).
    pub fn new(sql: &str, params: impl ToParams) -> Where {
        let params = params.to_params();
        let (marks, tail_at) = scan(sql);
        let mut w = Where {
            condition: String::new(),
            tail: String::new(),
            params: Vec::new(),
            error: None,
        };
        if marks.len() != params.len() {
            w.error = Some(format!(
                "`{sql}` has {} placeholder(s) but {} parameter(s) were given",
                marks.len(),
                params.len()
            ));
            return w;
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut last = 0;
        for (at, param) in marks.iter().zip(params) {
            out.push_str(&sql[last..*at]);
            last = at + 1;
            match param {
                Param::One(v) => {
                    out.push('?');
                    w.params.push(v);
                }
                Param::List(list) => {
                    let inside = sql[..*at].trim_end().ends_with('(')
                        && sql[at + 1..].trim_start().starts_with(')');
                    let marks = if list.is_empty() {
                        "NULL".to_string()
                    } else {
                        vec!["?"; list.len()].join(",")
                    };
                    if inside {
                        out.push_str(&marks);
                    } else {
                        out.push('(');
                        out.push_str(&marks);
                        out.push(')');
                    }
                    w.params.extend(list);
                }
            }
        }
        out.push_str(&sql[last..]);
        // The tail offset moved by the expansion: find it again in the output.
        let tail_at = tail_at.and_then(|_| scan(&out).1);
        match tail_at {
            Some(t) => {
                w.condition = out[..t].trim().to_string();
                w.tail = out[t..].trim().to_string();
            }
            None => w.condition = out.trim().to_string(),
        }
        w
    }

    /// No condition: every row.
    pub fn all() -> Where {
        Where::new("", ())
    }

    /// The condition part (without `ORDER BY …`), parameters expanded.
    pub fn condition(&self) -> &str {
        &self.condition
    }

    /// The `ORDER BY …` / `GROUP BY …` part, if any.
    pub fn tail(&self) -> &str {
        &self.tail
    }

    /// The parameters in placeholder order.
    pub fn params(&self) -> &[Value] {
        &self.params
    }

    /// The rendered SQL: condition then tail.
    pub fn sql(&self) -> String {
        match (self.condition.is_empty(), self.tail.is_empty()) {
            (_, true) => self.condition.clone(),
            (true, false) => self.tail.clone(),
            (false, false) => format!("{} {}", self.condition, self.tail),
        }
    }

    /// Writes the condition (without its tail) into a statement being built: each
    /// `?` outside quotes becomes the statement's next placeholder in its dialect's
    /// style (`$n` on PostgreSQL, numbered after the placeholders already written),
    /// backtick identifiers become the dialect's; `?` inside quotes stays text.
    pub(crate) fn write_condition(&self, w: &mut crate::sql::SqlWriter) {
        w.push_question_sql(&self.condition);
    }

    /// Writes the `ORDER BY …` / `GROUP BY …` tail like [`Where::write_condition`].
    pub(crate) fn write_tail(&self, w: &mut crate::sql::SqlWriter) {
        w.push_question_sql(&self.tail);
    }

    /// The error found by [`Where::new`], if any.
    pub(crate) fn check(&self) -> crate::Result<()> {
        match &self.error {
            Some(e) => Err(crate::Error::Query(e.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_expand_to_placeholders() {
        let w = Where::new("`age` > ? AND `id` IN ?", (18, vec![1, 2, 3]));
        assert_eq!(w.sql(), "`age` > ? AND `id` IN (?,?,?)");
        assert_eq!(
            w.params(),
            &[
                Value::from(18),
                Value::from(1),
                Value::from(2),
                Value::from(3)
            ]
        );
        let w = Where::new("`id` IN (?)", vec![4u64, 5]);
        assert_eq!(w.sql(), "`id` IN (?,?)");
        let w = Where::new("`id` IN ?", Vec::<u64>::new());
        assert_eq!(w.sql(), "`id` IN (NULL)");
        assert!(w.params().is_empty());
    }

    #[test]
    fn order_by_is_kept_apart_and_quotes_are_skipped() {
        let w = Where::new("`name` = '?' AND `a` = ? ORDER BY `id` DESC", 5);
        assert_eq!(w.condition(), "`name` = '?' AND `a` = ?");
        assert_eq!(w.tail(), "ORDER BY `id` DESC");
        let w = Where::new("ORDER BY `id`", ());
        assert_eq!(w.condition(), "");
        assert_eq!(w.tail(), "ORDER BY `id`");
        let w = Where::new("`reorder_by` = ?", 1);
        assert_eq!(w.tail(), "");
    }

    #[test]
    fn conditions_render_in_the_dialect_placeholder_style() {
        use crate::sql::SqlWriter;
        use crate::DialectKind;
        let w = Where::new(
            "`name` = '?' AND `a` IN ? AND `b` > ? ORDER BY `b` LIMIT ?",
            (vec![1, 2], 3, 10),
        );
        let mut pg = SqlWriter::new(DialectKind::Postgres);
        pg.push_str("SELECT 1 FROM t WHERE \"x\" = ");
        pg.param();
        pg.push_str(" AND (");
        w.write_condition(&mut pg);
        pg.push_str(") ");
        w.write_tail(&mut pg);
        assert_eq!(
            pg.finish(),
            "SELECT 1 FROM t WHERE \"x\" = $1 AND (\"name\" = '?' AND \"a\" IN ($2,$3) AND \"b\" > $4) ORDER BY \"b\" LIMIT $5"
        );
        let mut my = SqlWriter::new(DialectKind::MySql);
        w.write_condition(&mut my);
        assert_eq!(my.param_count(), 3);
        assert_eq!(my.finish(), "`name` = '?' AND `a` IN (?,?) AND `b` > ?");
    }

    #[test]
    fn placeholder_count_mismatch_is_an_error() {
        let w = Where::new("`a` = ? AND `b` = ?", 1);
        assert!(matches!(w.check(), Err(crate::Error::Query(m)) if m.contains("2 placeholder")));
    }
}
