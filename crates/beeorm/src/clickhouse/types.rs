//! The compatibility table between ClickHouse column types and the Rust types a row
//! field serializes as (its [`Shape`]). One table for reads and writes: RowBinary
//! is the same both ways.
//!
//! | ClickHouse | Rust field |
//! | --- | --- |
//! | `UInt8` | `u8`, `bool` |
//! | `UInt16` / `UInt32` / `UInt64` | `u16` / `u32` / `u64` |
//! | `Int8` / `Int16` / `Int32` / `Int64` | `i8` / `i16` / `i32` / `i64` |
//! | `Float32` / `Float64` | `f32` / `f64` |
//! | `String` | `String`, `&str`, `Vec<u8>`, bytes (`serde_bytes`) |
//! | `FixedString(N)` | `[u8; N]` |
//! | `Date` | `u16` (days since 1970-01-01), or `clickhouse::serde::chrono::date` |
//! | `DateTime`, `DateTime('tz')` | `u32` (Unix seconds), or `clickhouse::serde::chrono::datetime` |
//! | `Enum8(…)` / `Enum16(…)` | `i8` or `u8` / `i16` or `u16` (e.g. a `serde_repr` enum) |
//! | `Decimal(P, S)` | `i32` (P ≤ 9), `i64` (P ≤ 18), `i128` (P ≤ 38): the value × 10^S |
//! | `UUID` | `clickhouse::serde::uuid` (two `u64`) |
//! | `Nullable(T)` | `Option<T>` |
//! | `Array(T)` | `Vec<T>` |
//! | `LowCardinality(T)` | as `T` |
//! | `Tuple(T1, …)` | `(T1, …)` or a nested struct |
//!
//! Anything else (a `Map`, `DateTime64`, an `Option` on a column that is not
//! `Nullable`, …) is a mismatch.

use super::shape::Shape;

/// A parsed column type: a name and its arguments (`Nullable(Array(Int32))`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChType {
    pub(crate) name: String,
    pub(crate) args: Vec<Arg>,
}

/// An argument of a column type: a nested type, or a literal (a number, a quoted
/// string, `'a' = 1`) kept as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Type(ChType),
    Literal(String),
}

impl ChType {
    /// Parses `text` as DESCRIBE prints it; never fails (an odd type is kept by name
    /// and then matches nothing).
    pub(crate) fn parse(text: &str) -> ChType {
        let text = text.trim();
        let Some(open) = text.find('(') else {
            return ChType {
                name: text.to_string(),
                args: Vec::new(),
            };
        };
        let name = text[..open].trim().to_string();
        let inner = text[open + 1..]
            .strip_suffix(')')
            .unwrap_or(&text[open + 1..]);
        let args = split_args(inner)
            .into_iter()
            .map(|a| {
                let a = a.trim();
                let is_type =
                    a.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && !a.contains('=');
                if is_type {
                    Arg::Type(ChType::parse(a))
                } else {
                    Arg::Literal(a.to_string())
                }
            })
            .collect();
        ChType { name, args }
    }

    fn inner(&self, i: usize) -> Option<&ChType> {
        match self.args.get(i) {
            Some(Arg::Type(t)) => Some(t),
            _ => None,
        }
    }

    fn number(&self, i: usize) -> Option<usize> {
        match self.args.get(i) {
            Some(Arg::Literal(l)) => l.parse().ok(),
            _ => None,
        }
    }
}

/// Splits on top-level commas, outside parentheses and quotes.
fn split_args(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start, mut quote, mut escaped) =
        (Vec::new(), 0i32, 0, false, false);
    for (i, c) in s.char_indices() {
        if quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => quote = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(&s[start..]);
    }
    out
}

/// Whether a field of shape `shape` reads and writes a column of type `ty` exactly.
pub(crate) fn compatible(shape: &Shape, ty: &ChType) -> bool {
    use Shape as S;
    match (ty.name.as_str(), shape) {
        ("LowCardinality", _) => ty.inner(0).is_some_and(|t| compatible(shape, t)),
        ("Nullable", S::Option(None)) => true,
        ("Nullable", S::Option(Some(s))) => ty.inner(0).is_some_and(|t| compatible(s, t)),
        ("Array", S::Seq(None)) => true,
        ("Array", S::Seq(Some(s))) => ty.inner(0).is_some_and(|t| compatible(s, t)),
        ("Tuple", S::Tuple(items)) => {
            items.len() == ty.args.len()
                && items
                    .iter()
                    .enumerate()
                    .all(|(i, s)| ty.inner(i).is_some_and(|t| compatible(s, t)))
        }
        ("FixedString", S::Tuple(items)) => {
            ty.number(0) == Some(items.len()) && items.iter().all(|s| *s == S::U8)
        }
        ("String", S::Str | S::Bytes) => true,
        ("String", S::Seq(Some(s))) => **s == S::U8,
        ("UInt8", S::U8 | S::Bool)
        | ("UInt16", S::U16)
        | ("UInt32", S::U32)
        | ("UInt64", S::U64)
        | ("Int8", S::I8)
        | ("Int16", S::I16)
        | ("Int32", S::I32)
        | ("Int64", S::I64)
        | ("Float32", S::F32)
        | ("Float64", S::F64)
        | ("Date", S::U16)
        | ("DateTime", S::U32)
        | ("Enum8", S::I8 | S::U8)
        | ("Enum16", S::I16 | S::U16) => true,
        ("UUID", S::Tuple(items)) => items.as_slice() == [S::U64, S::U64],
        ("Decimal", s) => match ty.number(0) {
            Some(p) if p <= 9 => *s == S::I32,
            Some(p) if p <= 18 => *s == S::I64,
            Some(p) if p <= 38 => *s == S::I128,
            _ => false,
        },
        ("Decimal32", s) => *s == S::I32,
        ("Decimal64", s) => *s == S::I64,
        ("Decimal128", s) => *s == S::I128,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(shape: Shape, ty: &str) -> bool {
        compatible(&shape, &ChType::parse(ty))
    }

    fn opt(s: Shape) -> Shape {
        Shape::Option(Some(Box::new(s)))
    }

    fn seq(s: Shape) -> Shape {
        Shape::Seq(Some(Box::new(s)))
    }

    #[test]
    fn the_table_holds() {
        assert!(ok(Shape::U64, "UInt64"));
        assert!(!ok(Shape::U32, "UInt64"));
        assert!(!ok(Shape::I64, "UInt64"));
        assert!(ok(Shape::Bool, "UInt8"));
        assert!(ok(Shape::Str, "String"));
        assert!(ok(seq(Shape::U8), "String"));
        assert!(!ok(Shape::Str, "FixedString(3)"));
        assert!(ok(Shape::Tuple(vec![Shape::U8; 3]), "FixedString(3)"));
        assert!(!ok(Shape::Tuple(vec![Shape::U8; 2]), "FixedString(3)"));
        assert!(ok(opt(Shape::Str), "Nullable(String)"));
        assert!(ok(Shape::Option(None), "Nullable(UInt8)"));
        assert!(!ok(opt(Shape::Str), "String"));
        assert!(!ok(Shape::Str, "Nullable(String)"));
        assert!(ok(seq(opt(Shape::U8)), "Array(Nullable(UInt8))"));
        assert!(!ok(seq(Shape::U8), "Array(Nullable(UInt8))"));
        assert!(ok(Shape::Str, "LowCardinality(String)"));
        assert!(ok(Shape::U32, "DateTime"));
        assert!(ok(Shape::U32, "DateTime('Europe/Moscow')"));
        assert!(ok(Shape::U16, "Date"));
        assert!(ok(Shape::I8, "Enum8(\'a\' = 1, \'b,(\' = 2)"));
        assert!(ok(Shape::I64, "Decimal(18, 2)"));
        assert!(ok(Shape::I64, "Decimal(10, 2)"));
        assert!(ok(Shape::I32, "Decimal(9, 2)"));
        assert!(!ok(Shape::I32, "Decimal(10, 2)"));
        assert!(ok(
            Shape::Tuple(vec![Shape::Str, Shape::U8]),
            "Tuple(String, UInt8)"
        ));
        assert!(ok(Shape::Tuple(vec![Shape::U64, Shape::U64]), "UUID"));
        assert!(!ok(Shape::U64, "Map(String, UInt64)"));
    }
}
