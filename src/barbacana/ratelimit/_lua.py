"""Lua transcriptions of the five algorithms, one script per algorithm.

Each script is a line-for-line port of the matching ``check`` in
``_algorithms.py`` (same operations in the same order, so the same doubles),
wrapped in one frame:

* ``KEYS``: one counter per meter, all carrying the identity's hash tag;
* ``ARGV``: ``now`` (empty in production: the script reads Redis ``TIME``, so
  every instance uses one clock), ``cost``, then ``amount, window`` per key;
* phase one checks every key; phase two, only if all admit, writes every key
  and sets its expiry (state is self-describing: expiry only frees memory);
* the reply is ``{allowed, remaining, reset_ms, retry_ms, ...}`` in integers.

Floats are stored with ``%.17g`` so that they read back exactly.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

_HEAD = """
local now
-- Expiry only frees memory: a key outlives its state's meaning by a grace period.
-- With a test's injected time, Redis still expires keys on its own clock, so the
-- grace is an hour: a slow test must not see a key vanish that its clock still needs.
local grace = 1000
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
  grace = 3600000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local cost = tonumber(ARGV[2])
local ok = true
local out = {0}
local st = {}
local ttl = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount = tonumber(ARGV[2 * i + 1])
  local window = tonumber(ARGV[2 * i + 2])
  local allowed, remaining, reset, retry
"""

_TAIL = """
  if not allowed then ok = false end
  out[3 * i - 1] = remaining
  out[3 * i] = math.ceil(reset * 1000)
  out[3 * i + 1] = 0
  if retry > 0 then out[3 * i + 1] = math.ceil((retry + 0.000001) * 1000) end
end
if ok then
  out[1] = 1
  for i = 1, #KEYS do
    commit(KEYS[i], st[i], now, cost)
    redis.call('PEXPIRE', KEYS[i], math.ceil(ttl[i] * 1000) + grace)
  end
end
return out
"""

_FIXED_WINDOW = (
    """
local function commit(key, s, now, cost)
  redis.call('HSET', key, 'k', s[1], 'c', s[2])
end
"""
    + _HEAD
    + """
  local k = math.floor(now / window)
  local count = 0
  local h = redis.call('HMGET', key, 'k', 'c')
  if h[1] and tonumber(h[1]) == k then count = tonumber(h[2]) end
  reset = math.max(0, (k + 1) * window - now)
  if count + cost <= amount then
    count = count + cost
    allowed, remaining, retry = true, amount - count, 0
  else
    allowed, remaining, retry = false, amount - count, reset
  end
  st[i] = {k, count}
  ttl[i] = reset
"""
    + _TAIL
)

_SLIDING_WINDOW_LOG = (
    """
local function commit(key, s, now, cost)
  local v = string.format('%.17g', now)
  for j = 1, cost do redis.call('RPUSH', key, v) end
end
"""
    + _HEAD
    + """
  local cut = now - window
  while true do
    local head = redis.call('LINDEX', key, 0)
    if head and tonumber(head) <= cut then redis.call('LPOP', key) else break end
  end
  local n = redis.call('LLEN', key)
  if n + cost <= amount then
    allowed, remaining, reset, retry = true, amount - n - cost, window, 0
    st[i] = true
    ttl[i] = window
  else
    allowed, remaining = false, amount - n
    retry = math.max(0, tonumber(redis.call('LINDEX', key, n + cost - amount - 1)) + window - now)
    reset = math.max(0, tonumber(redis.call('LINDEX', key, -1)) + window - now)
    ttl[i] = reset
  end
"""
    + _TAIL
)

_SLIDING_WINDOW_COUNTER = (
    """
local function commit(key, s, now, cost)
  redis.call('HSET', key, 'k', s[1], 'c', s[2], 'p', s[3])
end
"""
    + _HEAD
    + """
  local k = math.floor(now / window)
  local curr, prev = 0, 0
  local h = redis.call('HMGET', key, 'k', 'c', 'p')
  if h[1] then
    local sk = tonumber(h[1])
    if sk == k then
      curr, prev = tonumber(h[2]), tonumber(h[3])
    elseif sk == k - 1 then
      prev = tonumber(h[2])
    end
  end
  local start = k * window
  local elapsed = now - start
  local used = prev * ((window - elapsed) / window) + curr
  local free = amount - used
  local left = math.max(0, start + window - now)
  if cost <= free then
    curr = curr + cost
    allowed, remaining, reset, retry = true, math.floor(free - cost), left + window, 0
  else
    allowed = false
    if curr + cost > amount then
      retry = left + math.max(0, window - (amount - cost) * window / curr)
    else
      retry = math.max(0, window - (amount - cost - curr) * window / prev - elapsed)
    end
    if curr > 0 then reset = left + window else reset = left end
    remaining = math.max(0, math.floor(free))
  end
  st[i] = {k, curr, prev}
  ttl[i] = left + window
"""
    + _TAIL
)

_TOKEN_BUCKET = (
    """
local function commit(key, s, now, cost)
  redis.call('HSET', key, 't', string.format('%.17g', s[1]), 'l', string.format('%.17g', s[2]))
end
"""
    + _HEAD
    + """
  local rate = amount / window
  local tokens = amount
  local last = now
  local h = redis.call('HMGET', key, 't', 'l')
  if h[1] then
    tokens, last = tonumber(h[1]), tonumber(h[2])
    local elapsed = now - last
    if elapsed > 0 then
      tokens = math.min(amount, tokens + elapsed * rate)
      last = now
    end
  end
  if tokens >= cost then
    tokens = tokens - cost
    reset = (amount - tokens) / rate
    allowed, remaining, retry = true, math.floor(tokens), 0
  else
    reset = (amount - tokens) / rate
    allowed, remaining, retry = false, math.floor(tokens), (cost - tokens) / rate
  end
  st[i] = {tokens, last}
  ttl[i] = reset
"""
    + _TAIL
)

_LEAKY_BUCKET = (
    """
local function commit(key, s, now, cost)
  redis.call('SET', key, string.format('%.17g', s))
end
"""
    + _HEAD
    + """
  local rate = amount / window
  local u = now * rate
  local tat = u
  local v = redis.call('GET', key)
  if v then
    v = tonumber(v)
    if v > u then tat = v end
  end
  local new = tat + cost
  if new - u <= amount then
    reset = (new - u) / rate
    allowed, remaining, retry = true, math.floor(amount - (new - u)), 0
  else
    reset = (tat - u) / rate
    allowed, remaining = false, math.max(0, math.floor(amount - (tat - u)))
    retry = (new - u - amount) / rate
  end
  st[i] = new
  ttl[i] = reset
"""
    + _TAIL
)

#: Script source by algorithm code (see ``Algorithm.code``).
SCRIPTS: dict[str, str] = {
    "fw": _FIXED_WINDOW,
    "swl": _SLIDING_WINDOW_LOG,
    "swc": _SLIDING_WINDOW_COUNTER,
    "tb": _TOKEN_BUCKET,
    "gcra": _LEAKY_BUCKET,
}
