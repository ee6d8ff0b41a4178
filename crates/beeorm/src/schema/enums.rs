//! Enums (A5): from a Rust enum (`#[derive(OrmEnum)]`), from a list, or from a map.

use std::collections::BTreeMap;

/// A fieldless Rust enum stored as a database `ENUM` (or, in a `Vec`, a `SET`).
/// Derive it with `#[derive(OrmEnum)]`; `#[orm(rename = "...")]` on a variant changes
/// its stored value and `#[orm(default)]` marks the default (else the first variant).
pub trait OrmEnum: Sized + Copy + 'static {
    /// The Rust type name.
    const NAME: &'static str;
    /// The stored values, in declaration order.
    fn fields() -> &'static [&'static str];
    /// The default variant (the first one unless marked `#[orm(default)]`).
    fn default_value() -> Self;
    /// The stored value of this variant.
    fn as_str(&self) -> &'static str;
    /// The variant stored as `value`, if any.
    fn from_str(value: &str) -> Option<Self>;
    /// Whether `value` is one of the stored values.
    fn has(value: &str) -> bool {
        Self::from_str(value).is_some()
    }
}

/// An enum known to the registry: registered from a Rust enum, a list or a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumDefinition {
    name: String,
    /// Key → stored value; a list or Rust enum maps each value to itself.
    mapping: BTreeMap<String, String>,
    fields: Vec<String>,
    default: String,
    /// A key given twice to `register_enum_map`, reported by `check()`.
    repeated_key: Option<String>,
}

impl EnumDefinition {
    pub(crate) fn from_enum<E: OrmEnum>() -> Self {
        let fields: Vec<String> = E::fields().iter().map(|s| s.to_string()).collect();
        EnumDefinition {
            name: E::NAME.to_string(),
            mapping: fields.iter().map(|f| (f.clone(), f.clone())).collect(),
            default: E::default_value().as_str().to_string(),
            fields,
            repeated_key: None,
        }
    }

    pub(crate) fn from_list(name: &str, values: &[&str]) -> Self {
        EnumDefinition {
            name: name.to_string(),
            mapping: values
                .iter()
                .map(|v| (v.to_string(), v.to_string()))
                .collect(),
            fields: values.iter().map(|v| v.to_string()).collect(),
            default: values.first().map(|v| v.to_string()).unwrap_or_default(),
            repeated_key: None,
        }
    }

    pub(crate) fn from_map(name: &str, map: &[(&str, &str)], default_key: &str) -> Self {
        let mapping: BTreeMap<String, String> = map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnumDefinition {
            name: name.to_string(),
            // Values in the order given: it becomes the order of the ENUM column.
            fields: map.iter().map(|(_, v)| v.to_string()).collect(),
            default: mapping.get(default_key).cloned().unwrap_or_default(),
            repeated_key: (mapping.len() != map.len()).then(|| {
                map.iter()
                    .enumerate()
                    .find(|(i, (k, _))| map[..*i].iter().any(|(p, _)| p == k))
                    .map(|(_, (k, _))| k.to_string())
                    .unwrap_or_default()
            }),
            mapping,
        }
    }

    /// Checks the values: non-empty, unique, storable, with a valid default.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let fail = |reason: String| Err(crate::Error::definition(&self.name, None, reason));
        if let Some(key) = &self.repeated_key {
            return fail(format!("key `{key}` is given twice"));
        }
        if self.fields.is_empty() {
            return fail("an enum needs at least one value".into());
        }
        for (i, f) in self.fields.iter().enumerate() {
            if f.is_empty() || f.contains(',') || f.contains('\'') || f.contains('\\') {
                return fail(format!(
                    "enum value `{f}` must be non-empty and contain no `,`, `'` or `\\`"
                ));
            }
            if self.fields[..i].contains(f) {
                return fail(format!("enum value `{f}` appears twice"));
            }
        }
        if self.default.is_empty() {
            return fail("the default key is not one of the enum's keys".into());
        }
        Ok(())
    }

    /// The enum's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default stored value.
    pub fn default_value(&self) -> &str {
        &self.default
    }

    /// The stored values.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Key → stored value.
    pub fn mapping(&self) -> &BTreeMap<String, String> {
        &self.mapping
    }

    /// Whether `value` is one of the stored values.
    pub fn has(&self, value: &str) -> bool {
        self.fields.iter().any(|f| f == value)
    }
}
