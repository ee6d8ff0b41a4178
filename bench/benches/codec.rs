//! The encoding of a cached row (issue 12, item 5: "chosen by measurement"): encode and
//! decode of one row, and its size, for each candidate:
//!
//! - `postcard`: beeorm's own `cache/codec.rs` (`encode_row` / `decode_row`), compiled
//!   here from its source file (the functions are crate-private);
//! - `serde_json`: the same serde mapping (`WireRow` / `RowSeed` of codec.rs) written
//!   as JSON text;
//! - `bitcode`: bitcode 0.6's derive on an enum mirroring `Value` (strings borrowed when
//!   encoding and decoding, as codec.rs does);
//! - `handwritten`: a tag + varint encoder and decoder written out by hand here, with no
//!   serde in between, that writes exactly the bytes postcard writes (checked before the
//!   run): what the serde layer costs.
//!
//! Rows: `row10` is a typical entity row (ID, two short strings, a `u32`, an `i64`, an
//! `f64`, a `bool`, a NULL `Option`, a `DateTime`, a `Decimal`), `row3` a small one (ID,
//! a string, an integer). Each operation starts from a buffer kept between iterations
//! (encode) or from the bytes (decode) and ends with the owned `Vec<Value>` a loader
//! would hand on (decode), so string copies are counted.
//!
//! codec.rs names `crate::Value`, and beeorm's `Value` is `#[non_exhaustive]` outside
//! beeorm, where an exhaustive `match` does not compile; so it is compiled here against
//! the identical enum below (same variants, same payload types), which is the same code
//! on the same data layout.
//!
//! ```text
//! cargo bench -p bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The sizes are printed once at start (`bytes per row`).

use std::hint::black_box;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rust_decimal::Decimal;
use serde::de::DeserializeSeed;

#[path = "../../crates/beeorm/src/cache/codec.rs"]
#[allow(dead_code, unused_imports)]
mod codec;

/// beeorm's `Value`, variant for variant (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// A 4-byte float.
    F32(f32),
    /// An 8-byte float.
    F64(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// Text.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time.
    DateTime(NaiveDateTime),
    /// A time of day.
    Time(NaiveTime),
    /// A JSON document.
    Json(serde_json::Value),
}

fn row10() -> Vec<Value> {
    let at = NaiveDate::from_ymd_opt(2024, 5, 17)
        .and_then(|d| d.and_hms_opt(13, 45, 12))
        .expect("valid date");
    vec![
        Value::U64(1_234_567),
        Value::String("Alice Example".into()),
        Value::String("alice@example.com".into()),
        Value::I64(42_000),
        Value::I64(-1_234_567_890_123),
        Value::F64(1234.5678),
        Value::Bool(true),
        Value::Null,
        Value::DateTime(at),
        Value::Decimal("12345.67".parse().expect("decimal")),
    ]
}

fn row3() -> Vec<Value> {
    vec![
        Value::U64(1_234_567),
        Value::String("short name".into()),
        Value::I64(42),
    ]
}

// --- serde_json of the same serde mapping ---------------------------------------------

fn json_encode(row: &[Value], out: &mut Vec<u8>) {
    serde_json::to_writer(out, &codec::WireRow(row)).expect("JSON");
}

fn json_decode(bytes: &[u8]) -> Vec<Value> {
    let diag = codec::Diag::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let row = codec::RowSeed(&diag).deserialize(&mut de).expect("decodes");
    de.end().expect("nothing after");
    row
}

// --- bitcode ------------------------------------------------------------------------------

/// `Value` for bitcode's derive: the same payloads as codec.rs (decimal as magnitude and
/// flags, dates as day/second/nanosecond numbers, floats as bits). Bytes are owned
/// (bitcode borrows `&str` but not `&[u8]`) and JSON is text; neither is in the rows.
#[derive(bitcode::Encode, bitcode::Decode)]
enum BWire<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F32(u32),
    F64(u64),
    Decimal(u128, u8),
    String(&'a str),
    Bytes(Vec<u8>),
    Date(i32),
    DateTime(i32, u32, u32),
    Time(u32, u32),
    Json(String),
}

fn to_bwire(v: &Value) -> BWire<'_> {
    use chrono::{Datelike, Timelike};
    match v {
        Value::Null => BWire::Null,
        Value::Bool(b) => BWire::Bool(*b),
        Value::I64(i) => BWire::I64(*i),
        Value::U64(u) => BWire::U64(*u),
        Value::F32(f) => BWire::F32(f.to_bits()),
        Value::F64(f) => BWire::F64(f.to_bits()),
        Value::Decimal(d) => BWire::Decimal(
            d.mantissa().unsigned_abs(),
            d.scale() as u8 | if d.is_sign_negative() { 0x80 } else { 0 },
        ),
        Value::String(s) => BWire::String(s),
        Value::Bytes(b) => BWire::Bytes(b.clone()),
        Value::Date(d) => BWire::Date(d.num_days_from_ce()),
        Value::DateTime(dt) => BWire::DateTime(
            dt.date().num_days_from_ce(),
            dt.time().num_seconds_from_midnight(),
            dt.time().nanosecond(),
        ),
        Value::Time(t) => BWire::Time(t.num_seconds_from_midnight(), t.nanosecond()),
        Value::Json(j) => BWire::Json(j.to_string()),
    }
}

fn from_bwire(w: BWire<'_>) -> Option<Value> {
    Some(match w {
        BWire::Null => Value::Null,
        BWire::Bool(b) => Value::Bool(b),
        BWire::I64(i) => Value::I64(i),
        BWire::U64(u) => Value::U64(u),
        BWire::F32(f) => Value::F32(f32::from_bits(f)),
        BWire::F64(f) => Value::F64(f64::from_bits(f)),
        BWire::Decimal(m, flags) => Value::Decimal(decimal(m, flags)?),
        BWire::String(s) => Value::String(s.to_owned()),
        BWire::Bytes(b) => Value::Bytes(b),
        BWire::Date(d) => Value::Date(NaiveDate::from_num_days_from_ce_opt(d)?),
        BWire::DateTime(d, s, n) => Value::DateTime(NaiveDateTime::new(
            NaiveDate::from_num_days_from_ce_opt(d)?,
            NaiveTime::from_num_seconds_from_midnight_opt(s, n)?,
        )),
        BWire::Time(s, n) => Value::Time(NaiveTime::from_num_seconds_from_midnight_opt(s, n)?),
        BWire::Json(j) => Value::Json(serde_json::from_str(&j).ok()?),
    })
}

fn decimal(magnitude: u128, flags: u8) -> Option<Decimal> {
    let mut d =
        Decimal::try_from_i128_with_scale(i128::try_from(magnitude).ok()?, u32::from(flags & 0x7f))
            .ok()?;
    d.set_sign_negative(flags & 0x80 != 0);
    Some(d)
}

fn bitcode_encode<'b>(row: &[Value], buf: &'b mut bitcode::Buffer) -> &'b [u8] {
    let wire: Vec<BWire<'_>> = row.iter().map(to_bwire).collect();
    buf.encode(&wire)
}

fn bitcode_decode(bytes: &[u8], buf: &mut bitcode::Buffer) -> Vec<Value> {
    let wire: Vec<BWire<'_>> = buf.decode(bytes).expect("decodes");
    wire.into_iter()
        .map(from_bwire)
        .collect::<Option<_>>()
        .expect("valid values")
}

// --- handwritten: postcard's bytes without serde ------------------------------------------

mod hand {
    use super::{decimal, Value};
    use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn varint128(out: &mut Vec<u8>, mut v: u128) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// The bytes codec.rs writes; JSON is not written by hand (not in the rows).
    pub fn encode(row: &[Value], out: &mut Vec<u8>) -> Option<()> {
        out.push(super::codec::CODEC_VERSION);
        varint(out, row.len() as u64);
        for v in row {
            match v {
                Value::Null => out.push(0),
                Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
                Value::I64(i) => {
                    out.push(2);
                    varint(out, zigzag(*i));
                }
                Value::U64(u) => {
                    out.push(3);
                    varint(out, *u);
                }
                Value::F32(f) => {
                    out.push(4);
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
                Value::F64(f) => {
                    out.push(5);
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
                Value::Decimal(d) => {
                    out.push(6);
                    varint128(out, d.mantissa().unsigned_abs());
                    out.push(d.scale() as u8 | if d.is_sign_negative() { 0x80 } else { 0 });
                }
                Value::String(s) => {
                    out.push(7);
                    bytes(out, s.as_bytes());
                }
                Value::Bytes(b) => {
                    out.push(8);
                    bytes(out, b);
                }
                Value::Date(d) => {
                    out.push(9);
                    varint(out, zigzag(i64::from(d.num_days_from_ce())) as u32 as u64);
                }
                Value::DateTime(dt) => {
                    out.push(10);
                    varint(
                        out,
                        zigzag(i64::from(dt.date().num_days_from_ce())) as u32 as u64,
                    );
                    varint(out, u64::from(dt.time().num_seconds_from_midnight()));
                    varint(out, u64::from(dt.time().nanosecond()));
                }
                Value::Time(t) => {
                    out.push(11);
                    varint(out, u64::from(t.num_seconds_from_midnight()));
                    varint(out, u64::from(t.nanosecond()));
                }
                Value::Json(_) => return None,
            }
        }
        Some(())
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn byte(&mut self) -> Option<u8> {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(b)
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.0.len() {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        /// A varint of at most `bits` bits, in at most ⌈bits / 7⌉ bytes (postcard's
        /// limits).
        fn varint(&mut self, bits: u32) -> Option<u128> {
            let mut out: u128 = 0;
            for i in 0..bits.div_ceil(7) {
                let b = self.byte()?;
                let chunk = u128::from(b & 0x7f);
                let shift = 7 * i;
                if shift + 7 > bits && chunk >> (bits - shift) != 0 {
                    return None;
                }
                out |= chunk << shift;
                if b & 0x80 == 0 {
                    return Some(out);
                }
            }
            None
        }

        fn u64(&mut self) -> Option<u64> {
            self.varint(64).map(|v| v as u64)
        }

        fn u32(&mut self) -> Option<u32> {
            self.varint(32).map(|v| v as u32)
        }

        fn i64(&mut self) -> Option<i64> {
            let z = self.u64()?;
            Some((z >> 1) as i64 ^ -((z & 1) as i64))
        }

        fn i32(&mut self) -> Option<i32> {
            let z = self.u32()?;
            Some((z >> 1) as i32 ^ -((z & 1) as i32))
        }

        fn len_prefixed(&mut self) -> Option<&'a [u8]> {
            let n = usize::try_from(self.u64()?).ok()?;
            self.take(n)
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<Vec<Value>> {
        let mut r = Reader(bytes);
        if r.byte()? != super::codec::CODEC_VERSION {
            return None;
        }
        let n = usize::try_from(r.u64()?).ok()?;
        let mut row = Vec::with_capacity(n.min(r.0.len()));
        for _ in 0..n {
            row.push(match r.u32()? {
                0 => Value::Null,
                1 => Value::Bool(match r.byte()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                }),
                2 => Value::I64(r.i64()?),
                3 => Value::U64(r.u64()?),
                4 => Value::F32(f32::from_le_bytes(r.take(4)?.try_into().ok()?)),
                5 => Value::F64(f64::from_le_bytes(r.take(8)?.try_into().ok()?)),
                6 => {
                    let m = r.varint(128)?;
                    Value::Decimal(decimal(m, r.byte()?)?)
                }
                7 => Value::String(std::str::from_utf8(r.len_prefixed()?).ok()?.to_owned()),
                8 => Value::Bytes(r.len_prefixed()?.to_vec()),
                9 => Value::Date(NaiveDate::from_num_days_from_ce_opt(r.i32()?)?),
                10 => {
                    let date = NaiveDate::from_num_days_from_ce_opt(r.i32()?)?;
                    let time = NaiveTime::from_num_seconds_from_midnight_opt(r.u32()?, r.u32()?)?;
                    Value::DateTime(NaiveDateTime::new(date, time))
                }
                11 => Value::Time(NaiveTime::from_num_seconds_from_midnight_opt(
                    r.u32()?,
                    r.u32()?,
                )?),
                _ => return None,
            });
        }
        r.0.is_empty().then_some(row)
    }
}

fn bench(c: &mut Criterion) {
    let rows = [("row10", row10()), ("row3", row3())];
    let mut bc = bitcode::Buffer::new();
    eprintln!("bytes per row:");
    for (name, row) in &rows {
        let mut postcard = Vec::new();
        codec::encode_row(row, &mut postcard);
        assert_eq!(&codec::decode_row(&postcard).expect("decodes"), row);
        let mut hand = Vec::new();
        hand::encode(row, &mut hand).expect("no JSON");
        assert_eq!(
            hand, postcard,
            "the handwritten encoder writes postcard's bytes"
        );
        assert_eq!(&hand::decode(&hand).expect("decodes"), row);
        let mut json = Vec::new();
        json_encode(row, &mut json);
        assert_eq!(&json_decode(&json), row);
        let bitcode = bitcode_encode(row, &mut bc).to_vec();
        assert_eq!(&bitcode_decode(&bitcode, &mut bitcode::Buffer::new()), row);
        eprintln!(
            "  {name}: postcard {} (handwritten: the same bytes), serde_json {}, bitcode {}",
            postcard.len(),
            json.len(),
            bitcode.len()
        );
    }

    let mut group = c.benchmark_group("codec/encode");
    for (name, row) in &rows {
        let mut out = Vec::with_capacity(256);
        group.bench_with_input(BenchmarkId::new("postcard", name), row, |b, row| {
            b.iter(|| {
                out.clear();
                codec::encode_row(black_box(row), &mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("handwritten", name), row, |b, row| {
            b.iter(|| {
                out.clear();
                black_box(hand::encode(black_box(row), &mut out));
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("serde_json", name), row, |b, row| {
            b.iter(|| {
                out.clear();
                json_encode(black_box(row), &mut out);
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("bitcode", name), row, |b, row| {
            b.iter(|| black_box(bitcode_encode(black_box(row), &mut bc).len()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("codec/decode");
    for (name, row) in &rows {
        let mut postcard = Vec::new();
        codec::encode_row(row, &mut postcard);
        let mut json = Vec::new();
        json_encode(row, &mut json);
        let bitcode = bitcode_encode(row, &mut bc).to_vec();
        group.bench_with_input(BenchmarkId::new("postcard", name), &postcard, |b, bytes| {
            b.iter(|| codec::decode_row(black_box(bytes)).expect("decodes"))
        });
        group.bench_with_input(
            BenchmarkId::new("handwritten", name),
            &postcard,
            |b, bytes| b.iter(|| hand::decode(black_box(bytes)).expect("decodes")),
        );
        group.bench_with_input(BenchmarkId::new("serde_json", name), &json, |b, bytes| {
            b.iter(|| json_decode(black_box(bytes)))
        });
        group.bench_with_input(BenchmarkId::new("bitcode", name), &bitcode, |b, bytes| {
            b.iter(|| bitcode_decode(black_box(bytes), &mut bc))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
