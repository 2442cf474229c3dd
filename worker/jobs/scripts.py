"""The store's Lua scripts: each runs atomically in Redis (EVALSHA), so no reader ever sees
half of a change, and a Redis that refuses writes refuses the first one, before anything."""

# Submissions stored and queued together, within two budgets, or not at all.
# KEYS: queued set, tokens index, the client's open set, the Celery queue, then one record
# key per submission. ARGV: queue cap, client cap (-1: none), created_at, K (fields per
# record), the K field names, then per submission: token, queue message ('' for none) and
# its K values. Returns {0, 0} when stored; {1, depth} when the queue is full; {2, held}
# when the client already holds its share. The checks come before the first write.
CREATE = """
local n = #KEYS - 4
local qcap, ccap = tonumber(ARGV[1]), tonumber(ARGV[2])
if qcap >= 0 then
  local depth = redis.call('SCARD', KEYS[1])
  if depth + n > qcap then return {1, depth} end
end
if ccap >= 0 then
  local held = redis.call('SCARD', KEYS[3])
  if held + n > ccap then return {2, held} end
end
local k = tonumber(ARGV[4])
local at = 5 + k
for i = 1, n do
  local token, message = ARGV[at], ARGV[at + 1]
  local hash = {}
  for j = 1, k do
    hash[2 * j - 1] = ARGV[4 + j]
    hash[2 * j] = ARGV[at + 1 + j]
  end
  redis.call('HSET', KEYS[4 + i], unpack(hash))
  redis.call('ZADD', KEYS[2], ARGV[3], token)
  redis.call('SADD', KEYS[1], token)
  redis.call('SADD', KEYS[3], token)
  if message ~= '' then redis.call('LPUSH', KEYS[4], message) end
  at = at + k + 2
end
return {0, 0}
"""

# Atomic status 2: attempts += 1, started_at, moved from the queued set to the running set.
# A final record is returned untouched (a redelivered task must not run it again).
START = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local status = tonumber(redis.call('HGET', KEYS[1], 'status_id'))
if status <= 2 then
  redis.call('HSET', KEYS[1], 'status_id', 2, 'started_at', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[2])
end
return redis.call('HGETALL', KEYS[1])
"""

# Atomic final status, counted once, latencies observed once, then the done message; the
# token leaves its client's open set (named in the record, as the histograms are named by a
# prefix: one Redis, never a cluster).
# KEYS: record, queued, running, counts, done channel, language counts.
# ARGV: token, status, result,
# message, now, ttl, hist prefix, compile_s, run_s, then the bucket bounds.
FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], 'status_id'))
local now = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'status_id', ARGV[2], 'result', ARGV[3], 'message', ARGV[4],
           'finished_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
local open = redis.call('HGET', KEYS[1], 'client_set')
if open and open ~= '' then redis.call('SREM', open, ARGV[1]) end
if old <= 2 then
  redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
  local lang = redis.call('HGET', KEYS[1], 'language_id')
  if lang then redis.call('HINCRBY', KEYS[6], lang, 1) end
  local function observe(name, v)
    if v == nil or v < 0 then return end
    local key = ARGV[7] .. name
    local bucket = '+Inf'
    for i = 10, #ARGV do
      if v <= tonumber(ARGV[i]) then bucket = ARGV[i]; break end
    end
    redis.call('HINCRBY', key, bucket, 1)
    redis.call('HINCRBY', key, 'count', 1)
    redis.call('HINCRBYFLOAT', key, 'sum', v)
  end
  local created = tonumber(redis.call('HGET', KEYS[1], 'created_at'))
  local started = tonumber(redis.call('HGET', KEYS[1], 'started_at'))
  if started then observe('queue_wait', started - created) end
  observe('end_to_end', now - created)
  observe('compile', tonumber(ARGV[8]))
  observe('run', tonumber(ARGV[9]))
end
redis.call('PUBLISH', KEYS[5], ARGV[2])
return 1
"""
