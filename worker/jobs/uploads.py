"""Uploaded archives in Redis (problem packages, assignments): a zip and its summary under
their content's digest, the tokens that uploaded them, and each client's cap."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import redis

# KEYS: the upload, its owners, the client's uploads of this kind (digest -> when its upload
# expires). ARGV: zip, summary, now, ttl, owner, digest, cap.
_PUT = """
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
local held = redis.call('ZSCORE', KEYS[3], ARGV[6])
if not held and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then
  return -1
end
local new = redis.call('HSETNX', KEYS[1], 'zip', ARGV[1])
redis.call('HSETNX', KEYS[1], 'summary', ARGV[2])
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return new
"""


@dataclass
class UploadStore:
    """{prefix}<kind>:<digest> (zip, summary) and {prefix}<kind>:<digest>:owners (the digests
    of the tokens that uploaded it); {prefix}<kind>s:<client> counts a client's uploads."""

    kind: ClassVar[str]
    redis: redis.Redis
    prefix: str
    ttl_s: int

    def _key(self, name: str) -> str:
        return f"{self.prefix}{self.kind}:{name}"

    def put(
        self,
        name: str,
        zip_bytes: bytes,
        info: dict[str, Any],
        owner: str,
        client: str,
        cap: int,
    ) -> bool | None:
        """Stores it (kept as first stored: the same digest is the same files); True when new,
        None when the client already holds `cap` others uploaded within the TTL. Each upload
        adds its owner and restarts the TTL; one script, so that concurrent uploads of one
        client cannot pass its cap."""
        key = self._key(name)
        keys = [key, f"{key}:owners", f"{self.prefix}{self.kind}s:{client}"]
        summary = json.dumps(info, sort_keys=True)
        args: list[bytes | str | int] = [
            zip_bytes,
            summary,
            repr(time.time()),
            self.ttl_s,
            owner,
            name,
            cap,
        ]
        new = self.redis.register_script(_PUT)(keys=keys, args=args)
        return None if new == -1 else bool(new)

    def summary(self, name: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._key(name), "summary")
        return None if raw is None else dict(json.loads(raw))

    def owned_by(self, name: str, owner: str) -> bool:
        return bool(self.redis.sismember(f"{self._key(name)}:owners", owner))

    def touch(self, name: str) -> None:
        """A submission against it keeps it a TTL longer: its worker must still find it."""
        pipe = self.redis.pipeline()
        pipe.expire(self._key(name), self.ttl_s)
        pipe.expire(f"{self._key(name)}:owners", self.ttl_s)
        pipe.execute()

    def zip(self, name: str) -> bytes | None:
        raw = self.redis.hget(self._key(name), "zip")
        return raw if isinstance(raw, bytes) else None
