"""The worker's heartbeat: every few seconds each worker host tells Redis it is alive, how many
jobs it runs at once and which isolation tiers it can serve; the API reads the live ones."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import redis

from sandbox.config import HostConfig
from sandbox.spec import TIERS
from sandbox.tiers import probe

log = logging.getLogger("stockade.worker")

KEY = "workers"  # after the prefix: hash {hostname: Beat as JSON}
INTERVAL_S = 5.0
# Three beats missed and a worker counts as gone (its entry is dropped by the next reader).
STALE_S = 3 * INTERVAL_S


@dataclass(frozen=True)
class Beat:
    """One worker host as it last reported itself. `tiers` maps every tier to None when it
    is served, or to the reason it is not."""

    hostname: str
    pid: int
    concurrency: int
    tiers: dict[str, str | None]
    started_at: float
    seen_at: float
    version: str = ""

    @property
    def served_tiers(self) -> list[str]:
        return [t for t, why in self.tiers.items() if why is None]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Beat:
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def served_tiers(beats: list[Beat]) -> list[str]:
    """Every tier at least one of these workers serves, weakest first."""
    served = {t for b in beats for t in b.served_tiers}
    return [t for t in TIERS if t in served]


def read_live(client: redis.Redis, prefix: str) -> list[Beat]:
    """The live workers; entries of workers that stopped beating are removed on the way."""
    raw = cast(dict[bytes, bytes], client.hgetall(prefix + KEY))
    now = time.time()
    beats: list[Beat] = []
    stale: list[bytes] = []
    for host, text in raw.items():
        try:
            beat = Beat.from_json(text)
        except (ValueError, TypeError):
            stale.append(host)
            continue
        if now - beat.seen_at <= STALE_S:
            beats.append(beat)
        else:
            stale.append(host)
    if stale:
        client.hdel(prefix + KEY, *stale)
    return sorted(beats, key=lambda b: b.hostname)


def probe_tiers() -> dict[str, str | None]:
    """Which tiers this host can serve (None) or why not, probed once at start-up."""
    config = HostConfig.from_env()
    return {tier: probe(tier, config) for tier in TIERS}


class Heartbeat:
    """A daemon thread in the worker's main process; stop() removes the entry at once, so
    a worker shut down cleanly disappears from /workers without waiting for STALE_S."""

    def __init__(self, redis_url: str, prefix: str, hostname: str, concurrency: int) -> None:
        self.client: redis.Redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.key = prefix + KEY
        self.hostname = hostname
        self.concurrency = concurrency
        self.tiers = probe_tiers()
        for tier, why in self.tiers.items():
            if why is not None:
                log.info("tier %s not served here: %s", tier, why)
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def beat(self) -> Beat:
        try:
            v = version("stockade")
        except PackageNotFoundError:
            v = ""
        b = Beat(
            self.hostname,
            os.getpid(),
            self.concurrency,
            self.tiers,
            self.started_at,
            time.time(),
            v,
        )
        self.client.hset(self.key, self.hostname, b.to_json())
        return b

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as e:
                # Redis away: the API shows this worker gone until the next beat lands.
                log.warning("heartbeat: %s", e)
            self._stop.wait(INTERVAL_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=INTERVAL_S)
        try:
            self.client.hdel(self.key, self.hostname)
        except redis.RedisError:
            pass
        self.client.close()


def as_dict(b: Beat) -> dict[str, Any]:
    """A worker as /workers shows it."""
    return {
        "hostname": b.hostname,
        "concurrency": b.concurrency,
        "tiers": b.served_tiers,
        "tiers_unavailable": {t: why for t, why in b.tiers.items() if why is not None},
        "started_at": b.started_at,
        "last_seen_at": b.seen_at,
        "version": b.version,
    }
