//! The compile step of a search: a [`SearchQuery`] and a [`Pager`] checked against
//! the entity's [`SearchIndex`] and turned into a [`CompiledQuery`] a backend runs
//! without further checks. Field names become positions; a filter or sort that does
//! not fit its field's kind (a range on a non-numeric field, tags on a non-tag field,
//! a sort on a field that is not `sortable`) is [`Error::SearchField`]; the text is
//! parsed (`query.rs`), its syntax errors are [`Error::SearchQuery`]. With the
//! Persian normaliser on, the text and the tag values are normalised first, as the
//! documents are (`document.rs`).

use std::ops::Bound;

use super::backend::{CompiledQuery, Filter};
use super::{SearchFieldKind, SearchIndex, SearchQuery};
use crate::{Error, Pager, Result};

/// Checks `query` against `index` and compiles it with the page of `pager`.
pub(crate) fn compile(
    index: &SearchIndex,
    query: &SearchQuery,
    pager: Pager,
    persian: bool,
) -> Result<CompiledQuery> {
    let field_error = |field: &str, reason: String| Error::SearchField {
        index: index.name.clone(),
        field: field.to_string(),
        reason,
    };
    let lookup = |field: &str, want: SearchFieldKind, what: &str| -> Result<usize> {
        let (pos, f) = index
            .field(field)
            .ok_or_else(|| field_error(field, "the index has no such field".into()))?;
        if f.kind != want {
            return Err(field_error(
                field,
                format!("{what} needs a {want:?} field; this one is {:?}", f.kind),
            ));
        }
        Ok(pos)
    };
    let text = if persian {
        crate::hooks::normalize_persian(&query.text).into_owned()
    } else {
        query.text.clone()
    };
    let parsed = super::query::parse(&text, index)?;
    let mut filters = Vec::with_capacity(query.ranges.len() + query.tags.len());
    for (field, min, max) in &query.ranges {
        let field_pos = lookup(field, SearchFieldKind::Numeric, "a range filter")?;
        for bound in [min, max] {
            if let Bound::Included(v) | Bound::Excluded(v) = bound {
                if v.is_nan() {
                    return Err(field_error(field, "a range bound is NaN".into()));
                }
            }
        }
        filters.push(Filter::Range {
            field: field_pos,
            min: *min,
            max: *max,
        });
    }
    for (field, values) in &query.tags {
        let field_pos = lookup(field, SearchFieldKind::Tag, "a tag filter")?;
        if values.is_empty() {
            return Err(field_error(
                field,
                "a tag filter needs at least one value".into(),
            ));
        }
        let values = values
            .iter()
            .map(|v| {
                if persian {
                    crate::hooks::normalize_persian(v).into_owned()
                } else {
                    v.clone()
                }
            })
            .collect();
        filters.push(Filter::AnyTag {
            field: field_pos,
            values,
        });
    }
    let sort = match &query.sort {
        None => None,
        Some((field, order)) => {
            let (pos, f) = index
                .field(field)
                .ok_or_else(|| field_error(field, "the index has no such field".into()))?;
            if !f.sortable {
                return Err(field_error(
                    field,
                    "results can only be sorted by a `sortable` field".into(),
                ));
            }
            Some((pos, *order))
        }
    };
    Ok(CompiledQuery {
        text: parsed,
        filters,
        sort,
        offset: pager.offset(),
        limit: pager.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{SearchField, SortOrder};

    fn index() -> SearchIndex {
        let field = |name: &str, kind, sortable| SearchField {
            name: name.into(),
            kind,
            sortable,
        };
        SearchIndex {
            name: "users".into(),
            pool: "default".into(),
            fields: vec![
                field("name", SearchFieldKind::Text, true),
                field("age", SearchFieldKind::Numeric, true),
                field("city", SearchFieldKind::Tag, false),
            ],
        }
    }

    fn reason(e: Error) -> (String, String) {
        match e {
            Error::SearchField { field, reason, .. } => (field, reason),
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn names_become_positions_and_the_pager_an_offset() {
        let q = SearchQuery::new("")
            .range("age", 18.0..=30.0)
            .tags("city", &["Tehran", "Shiraz"])
            .sort_by("age", SortOrder::Desc);
        let c = compile(&index(), &q, Pager::new(3, 10), false).unwrap();
        assert_eq!(c.text, None);
        assert_eq!(
            c.filters,
            vec![
                Filter::Range {
                    field: 1,
                    min: Bound::Included(18.0),
                    max: Bound::Included(30.0)
                },
                Filter::AnyTag {
                    field: 2,
                    values: vec!["Tehran".into(), "Shiraz".into()]
                },
            ]
        );
        assert_eq!(c.sort, Some((1, SortOrder::Desc)));
        assert_eq!((c.offset, c.limit), (20, 10));
    }

    #[test]
    fn kinds_are_checked() {
        let i = index();
        let p = Pager::new(1, 10);
        let (f, r) =
            reason(compile(&i, &SearchQuery::new("").range("name", ..1.0), p, false).unwrap_err());
        assert_eq!(f, "name");
        assert!(r.contains("Numeric"), "{r}");
        let (f, _) =
            reason(compile(&i, &SearchQuery::new("").tags("age", &["1"]), p, false).unwrap_err());
        assert_eq!(f, "age");
        let (f, r) = reason(
            compile(
                &i,
                &SearchQuery::new("").sort_by("city", SortOrder::Asc),
                p,
                false,
            )
            .unwrap_err(),
        );
        assert_eq!(f, "city");
        assert!(r.contains("sortable"), "{r}");
        let (f, r) =
            reason(compile(&i, &SearchQuery::new("").range("nope", ..1.0), p, false).unwrap_err());
        assert_eq!(f, "nope");
        assert!(r.contains("no such field"), "{r}");
        let empty: [&str; 0] = [];
        let (_, r) =
            reason(compile(&i, &SearchQuery::new("").tags("city", &empty), p, false).unwrap_err());
        assert!(r.contains("at least one"), "{r}");
        let (_, r) = reason(
            compile(&i, &SearchQuery::new("").range("age", f64::NAN..), p, false).unwrap_err(),
        );
        assert!(r.contains("NaN"), "{r}");
    }

    #[test]
    fn persian_normalising_applies_to_text_and_tags() {
        // Arabic Yeh and Kaf typed; Persian letters searched.
        let q = SearchQuery::new("علي").tags("city", &["كرج"]);
        let on = compile(&index(), &q, Pager::new(1, 5), true).unwrap();
        assert_eq!(
            on.text,
            Some(crate::search::query::QueryNode::Term("علی".into()))
        );
        assert_eq!(
            on.filters,
            vec![Filter::AnyTag {
                field: 2,
                values: vec!["کرج".into()]
            }]
        );
        let off = compile(&index(), &q, Pager::new(1, 5), false).unwrap();
        assert_eq!(
            off.text,
            Some(crate::search::query::QueryNode::Term("علي".into()))
        );
    }
}
