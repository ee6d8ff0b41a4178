//! Documents: an entity row (its column values as written to the database) turned
//! into the [`Doc`] of its search index, one [`DocValue`] per indexed field by the
//! field's kind:
//!
//! * Text: the string, Persian-normalised when the normaliser is on;
//! * Numeric: integers, floats and decimals as `f64`; dates (midnight UTC) and
//!   date-times (UTC by convention) as Unix seconds; years as the number;
//! * Tag: a bool as `"true"` / `"false"`, an enum or string as is (normalised like
//!   text), a set as one tag per member, a reference as its ID in decimal (a list of
//!   references: one tag per ID).
//!
//! NULL (and an empty set or list) leaves the field out of the document: no filter on
//! it matches, and it sorts as the backend places missing values.

use super::backend::{Doc, DocValue};
use super::SearchFieldKind;
use crate::schema::{ColumnType, TableSchema};
use crate::Value;

/// The document of row `id` of `schema`'s table; `value(column)` gives the value of
/// the column at that position of [`TableSchema::columns`] (`None`: unknown, left
/// out).
pub(crate) fn document<'v>(
    schema: &TableSchema,
    id: u64,
    value: impl Fn(usize) -> Option<&'v Value>,
    persian: bool,
) -> Doc {
    let mut fields = Vec::new();
    let Some(index) = schema.search_index() else {
        return Doc { id, fields };
    };
    for (pos, (field, &column)) in index.fields.iter().zip(schema.search_columns()).enumerate() {
        let (Some(v), Some(col)) = (value(column), schema.columns().get(column)) else {
            continue;
        };
        if let Some(dv) = convert(field.kind, col, v, persian) {
            fields.push((pos, dv));
        }
    }
    Doc { id, fields }
}

/// The document of a full row given as (column, value) pairs without the ID (a
/// change set's form).
pub(crate) fn document_from_named(
    schema: &TableSchema,
    id: u64,
    values: &[(String, Value)],
    persian: bool,
) -> Doc {
    document(
        schema,
        id,
        |column| {
            let name = &schema.columns().get(column)?.name;
            values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        },
        persian,
    )
}

fn text(s: &str, persian: bool) -> String {
    if persian {
        crate::hooks::normalize_persian(s).into_owned()
    } else {
        s.to_string()
    }
}

/// One value as its field's kind; `None`: left out (NULL, empty, or not convertible).
fn convert(
    kind: SearchFieldKind,
    column: &crate::schema::Column,
    v: &Value,
    persian: bool,
) -> Option<DocValue> {
    if v.is_null() {
        return None;
    }
    match kind {
        SearchFieldKind::Text => Some(DocValue::Text(text(&plain(v)?, persian))),
        SearchFieldKind::Numeric => number(v).map(DocValue::Number),
        SearchFieldKind::Tag => {
            let tags: Vec<String> = match (&column.ty, column.reference.as_ref()) {
                (_, Some(r)) if r.many => match v {
                    Value::Json(serde_json::Value::Array(ids)) => ids
                        .iter()
                        .filter_map(|id| id.as_u64().map(|n| n.to_string()))
                        .collect(),
                    other => {
                        let s = plain(other)?;
                        serde_json::from_str::<Vec<u64>>(&s)
                            .ok()?
                            .iter()
                            .map(u64::to_string)
                            .collect()
                    }
                },
                (ColumnType::Bool, _) => {
                    let b = match v {
                        Value::Bool(b) => *b,
                        other => other.as_i64()? != 0,
                    };
                    vec![b.to_string()]
                }
                (ColumnType::Set(_), _) => plain(v)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| text(s, persian))
                    .collect(),
                _ => vec![text(&plain(v)?, persian)],
            };
            (!tags.is_empty()).then_some(DocValue::Tags(tags))
        }
    }
}

/// A value as text (strings as they are, numbers in decimal).
fn plain(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok()?,
        Value::U64(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Json(serde_json::Value::String(s)) => s.clone(),
        Value::Json(j) => j.to_string(),
        Value::Null => return None,
        other => number(other)?.to_string(),
    })
}

/// A value as a number: dates and date-times as Unix seconds (UTC).
fn number(v: &Value) -> Option<f64> {
    use rust_decimal::prelude::ToPrimitive;
    Some(match v {
        Value::I64(n) => *n as f64,
        Value::U64(n) => *n as f64,
        Value::F32(f) => f64::from(*f),
        Value::F64(f) => *f,
        Value::Decimal(d) => d.to_f64()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Date(d) => d.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64,
        Value::DateTime(t) => {
            let utc = t.and_utc();
            utc.timestamp() as f64 + f64::from(utc.timestamp_subsec_micros()) / 1e6
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>() {
                n
            } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
                return number(&Value::DateTime(t));
            } else {
                let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
                return number(&Value::Date(d));
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(crate::Entity)]
    #[orm(table = "docs", search)]
    #[allow(dead_code)]
    struct Item {
        id: u64,
        #[orm(searchable)]
        name: String,
        #[orm(searchable)]
        note: Option<String>,
        #[orm(sortable)]
        age: u32,
        #[orm(searchable, decimal = "10,2")]
        price: rust_decimal::Decimal,
        #[orm(searchable)]
        born: chrono::NaiveDate,
        #[orm(searchable)]
        seen: chrono::NaiveDateTime,
        #[orm(searchable)]
        active: bool,
        #[orm(searchable, set = "colors")]
        colors: Vec<String>,
        #[orm(searchable = "tag")]
        code: String,
        plain: String,
    }

    fn schema() -> TableSchema {
        let enums = HashMap::from([(
            "colors".to_string(),
            crate::EnumDefinition::from_list("colors", &["red", "green"]),
        )]);
        TableSchema::build(&<Item as crate::Entity>::definition(), &enums).unwrap()
    }

    #[test]
    fn kinds_are_inferred_from_columns() {
        let s = schema();
        let kinds: Vec<(&str, SearchFieldKind, bool)> = s
            .search_index()
            .unwrap()
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind, f.sortable))
            .collect();
        use SearchFieldKind::*;
        assert_eq!(
            kinds,
            vec![
                ("name", Text, false),
                ("note", Text, false),
                ("age", Numeric, true),
                ("price", Numeric, false),
                ("born", Numeric, false),
                ("seen", Numeric, false),
                ("active", Tag, false),
                ("colors", Tag, false),
                ("code", Tag, false),
            ]
        );
    }

    #[test]
    fn values_convert_per_kind() {
        let s = schema();
        let born = chrono::NaiveDate::from_ymd_opt(1970, 1, 2).unwrap();
        let seen = born.and_hms_micro_opt(0, 0, 1, 500_000).unwrap();
        let row = vec![
            ("name".to_string(), Value::String("علي".into())),
            ("note".to_string(), Value::Null),
            ("age".to_string(), Value::I64(30)),
            (
                "price".to_string(),
                Value::Decimal("12.50".parse().unwrap()),
            ),
            ("born".to_string(), Value::Date(born)),
            ("seen".to_string(), Value::DateTime(seen)),
            ("active".to_string(), Value::Bool(true)),
            ("colors".to_string(), Value::String("red,green".into())),
            ("code".to_string(), Value::String("A 1, b".into())),
            ("plain".to_string(), Value::String("not indexed".into())),
        ];
        let doc = document_from_named(&s, 7, &row, true);
        assert_eq!(doc.id, 7);
        assert_eq!(
            doc.fields,
            vec![
                (0, DocValue::Text("علی".into())),
                (2, DocValue::Number(30.0)),
                (3, DocValue::Number(12.5)),
                (4, DocValue::Number(86_400.0)),
                (5, DocValue::Number(86_401.5)),
                (6, DocValue::Tags(vec!["true".into()])),
                (7, DocValue::Tags(vec!["red".into(), "green".into()])),
                (8, DocValue::Tags(vec!["A 1, b".into()])),
            ]
        );
        // The normaliser off: the text as written.
        let off = document_from_named(&s, 7, &row, false);
        assert_eq!(off.fields[0], (0, DocValue::Text("علي".into())));
    }

    #[test]
    fn database_forms_convert_too() {
        let s = schema();
        // SQLite-style reads: bool as an integer, dates as text, an empty set.
        let row = vec![
            ("active".to_string(), Value::I64(0)),
            ("born".to_string(), Value::String("1970-01-02".into())),
            (
                "seen".to_string(),
                Value::String("1970-01-01 00:01:00".into()),
            ),
            ("colors".to_string(), Value::String(String::new())),
        ];
        let doc = document_from_named(&s, 1, &row, false);
        assert_eq!(
            doc.fields,
            vec![
                (4, DocValue::Number(86_400.0)),
                (5, DocValue::Number(60.0)),
                (6, DocValue::Tags(vec!["false".into()])),
            ]
        );
    }
}
