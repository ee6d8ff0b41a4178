//! Trimming: an entry leaves the stream once every consumer group Redis knows for it
//! (registered or not) has acknowledged it.
//!
//! One Lua script, atomic, so that no group can be created or move between the look
//! and the cut: for each group of `XINFO GROUPS`, the lowest ID it still needs is the
//! lowest of its pending entries (`XPENDING` summary) or, when none pends, the ID
//! right after its last delivered one; `XTRIM MINID` to the lowest of those deletes
//! only entries every group has acknowledged. A stream without groups is left alone.

use std::sync::OnceLock;

use crate::redis::{RedisClient, Script};
use crate::Result;

const TRIM: &str = r#"
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function parse(id)
  return string.match(id, '^(%d+)-(%d+)$')
end
local function id_less(x, y)
  local xm, xs = parse(x)
  local ym, ys = parse(y)
  if xm ~= ym then return less(xm, ym) end
  return less(xs, ys)
end
local function incr(d)
  local b = {string.byte(d, 1, -1)}
  local i = #b
  while i >= 1 do
    if b[i] == 57 then
      b[i] = 48
      i = i - 1
    else
      b[i] = b[i] + 1
      return string.char(unpack(b))
    end
  end
  return '1' .. string.char(unpack(b))
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return -1 end
local min = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local low
  if tonumber(info['pending']) > 0 then
    low = redis.call('XPENDING', KEYS[1], info['name'])[2]
  else
    local ms, seq = parse(info['last-delivered-id'])
    if seq == '18446744073709551615' then
      low = incr(ms) .. '-0'
    else
      low = ms .. '-' .. incr(seq)
    end
  end
  if min == nil or id_less(low, min) then min = low end
end
return redis.call('XTRIM', KEYS[1], 'MINID', min)
"#;

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(TRIM))
}

/// Trims `stream` to what some group still needs; returns how many entries went
/// (`None`: the stream has no group, nothing was trimmed).
pub(crate) async fn trim(client: &RedisClient, stream: &str) -> Result<Option<u64>> {
    let n: i64 = client.eval(script(), stream, Vec::<&str>::new()).await?;
    Ok(u64::try_from(n).ok())
}
