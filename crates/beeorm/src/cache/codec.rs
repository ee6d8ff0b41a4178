//! TEMPORARY stand-in (replaced by the codec branch).
use crate::Value;
pub(crate) const CODEC_VERSION: u8 = 1;
pub(crate) fn encode_row(row: &[Value], out: &mut Vec<u8>) {
    let _ = (row, out);
}
pub(crate) fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let _ = bytes;
    Err("stand-in".into())
}
