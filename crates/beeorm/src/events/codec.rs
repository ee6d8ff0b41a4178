//! The wire format of one stream entry.
//!
//! * A serialised event: field `_b` = the format version byte ([`VERSION`]) followed
//!   by the MessagePack encoding of the body with field names
//!   (`rmp_serde::to_vec_named`, so a struct may gain optional fields without
//!   breaking readers), then the metadata fields as given.
//! * A map event: its fields as given.
//!
//! Names starting with `_` are beeorm's ([`BODY`], [`KIND`]); users' map and
//! metadata keys may not start with it. A body whose version byte is not one this
//! build knows is refused, never guessed at.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// The field holding a serialised body.
pub(crate) const BODY: &str = "_b";
/// The field holding the kind tag of beeorm's own events (dirty, lazy).
pub(crate) const KIND: &str = "_t";
/// The body format version this build writes and reads.
pub(crate) const VERSION: u8 = 1;

/// Version byte + named MessagePack of `body`.
pub(crate) fn encode_body<T: Serialize + ?Sized>(stream: &str, body: &T) -> Result<Vec<u8>> {
    let mut out = vec![VERSION];
    rmp_serde::encode::write_named(&mut out, body).map_err(|e| Error::EventEncode {
        stream: stream.to_string(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a body written by [`encode_body`].
pub(crate) fn decode_body<T: DeserializeOwned>(stream: &str, id: &str, bytes: &[u8]) -> Result<T> {
    let err = |reason: String| Error::EventDecode {
        stream: stream.to_string(),
        id: id.to_string(),
        reason,
    };
    match bytes.split_first() {
        None => Err(err("the body field `_b` is empty".into())),
        Some((&VERSION, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| err(format!("MessagePack: {e}")))
        }
        Some((v, _)) => Err(err(format!(
            "body format version {v} is unknown to this build (it reads version {VERSION})"
        ))),
    }
}

/// Refuses a user's field name that is empty or reserved (starts with `_`).
pub(crate) fn check_user_key(call: &str, stream: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.starts_with('_') {
        return Err(Error::InvalidArgument {
            call: format!("{call}(\"{stream}\")"),
            reason: format!(
                "field name `{key}` is {}",
                if key.is_empty() {
                    "empty"
                } else {
                    "reserved: names starting with `_` are beeorm's"
                }
            ),
        });
    }
    Ok(())
}

/// The fields of a serialised event: body, then metadata.
pub(crate) fn body_fields<T: Serialize + ?Sized>(
    call: &str,
    stream: &str,
    body: &T,
    meta: &[(&str, &str)],
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut fields = Vec::with_capacity(1 + meta.len());
    fields.push((BODY.to_string(), encode_body(stream, body)?));
    for (k, v) in meta {
        check_user_key(call, stream, k)?;
        fields.push((k.to_string(), v.as_bytes().to_vec()));
    }
    Ok(fields)
}

/// The fields of a map event; at least one (Redis stores no empty entry).
pub(crate) fn map_fields<K: AsRef<str>, V: AsRef<[u8]>>(
    call: &str,
    stream: &str,
    fields: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (k, v) in fields {
        check_user_key(call, stream, k.as_ref())?;
        out.push((k.as_ref().to_string(), v.as_ref().to_vec()));
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument {
            call: format!("{call}(\"{stream}\")"),
            reason: "a map event needs at least one field".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        note: String,
    }

    #[test]
    fn bodies_round_trip_and_bad_bytes_are_typed_errors() {
        let o = Order {
            id: 7,
            note: "x".into(),
        };
        let bytes = encode_body("s", &o).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode_body::<Order>("s", "1-1", &bytes).unwrap(), o);
        for bad in [&[][..], &[2, 0x80][..], &[1, 0xc1][..], &[1][..]] {
            let e = decode_body::<Order>("s", "1-1", bad).unwrap_err();
            assert!(matches!(e, Error::EventDecode { .. }), "{bad:?}: {e}");
        }
        let e = decode_body::<Order>("s", "1-1", &[9, 1]).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
    }

    #[test]
    fn reserved_and_empty_keys_are_refused() {
        assert!(check_user_key("publish_map", "s", "ok").is_ok());
        for bad in ["", "_b", "_x"] {
            assert!(matches!(
                check_user_key("publish_map", "s", bad),
                Err(Error::InvalidArgument { .. })
            ));
        }
        let none: Vec<(&str, &str)> = Vec::new();
        assert!(map_fields("publish_map", "s", none).is_err());
    }
}
