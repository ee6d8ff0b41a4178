//! The Persian text normaliser (I2).
//!
//! Text typed on Arabic keyboards carries Arabic Yeh (U+064A), Arabic Kaf (U+0643) and
//! Alef Maksura (U+0649) where Persian Yeh (U+06CC) and Keheh (U+06A9) are meant; rows
//! saved with one form are not found with the other. Enabled with
//! `Registry::enable_persian_normalizer()`, it rewrites every text the ORM writes to a
//! free-text column — the entity's free-text fields before every insert and update,
//! and the text values of an upsert's update list — and the string parameters of
//! searches and queries.

use std::borrow::Cow;

use crate::schema::{ColumnType, TableSchema};
use crate::Value;

/// Rewrites Arabic Yeh (U+064A) and Alef Maksura (U+0649) to Persian Yeh (U+06CC), and
/// Arabic Kaf (U+0643) to Keheh (U+06A9). Borrows when there is nothing to change.
///
/// ```
/// assert_eq!(beeorm::hooks::normalize_persian("علي كريمي"), "علی کریمی");
/// ```
pub fn normalize_persian(s: &str) -> Cow<'_, str> {
    if !s.contains(['\u{064A}', '\u{0643}', '\u{0649}']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\u{064A}' | '\u{0649}' => '\u{06CC}',
                '\u{0643}' => '\u{06A9}',
                other => other,
            })
            .collect(),
    )
}

/// Normalises the text values in `(column, value)` pairs written to `schema`'s table
/// (an upsert's update list) that go to free-text columns; enum, set and JSON columns
/// keep their values, as the entity's fields of those kinds do.
pub(crate) fn normalize_written_values(schema: &TableSchema, values: &mut [(String, Value)]) {
    for (column, value) in values.iter_mut() {
        let Value::String(s) = value else { continue };
        let free_text = schema
            .columns()
            .iter()
            .find(|c| c.name == *column)
            .is_some_and(|c| matches!(c.ty, ColumnType::Varchar(_) | ColumnType::Text));
        if free_text {
            if let Cow::Owned(n) = normalize_persian(s) {
                *s = n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_letters_become_persian_and_others_stay() {
        assert_eq!(normalize_persian("مرتضي"), "مرتضی");
        assert_eq!(normalize_persian("كتاب"), "کتاب");
        assert_eq!(normalize_persian("موسى"), "موسی");
        assert!(matches!(normalize_persian("hello مرتضی"), Cow::Borrowed(_)));
    }
}
