"""Who is asking: tokens compared in constant time, the owner digest a submission keeps, and
who may read, list or delete what."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import g, request

from worker.jobs.store import Record

# A digest names a token in Redis (a record's owner, a budget's key) without holding it.
_TAG = b"stockade-token:"
# Judge0's default AUTHN_HEADER and AUTHZ_HEADER; it takes each as a query parameter too.
TOKEN_HEADER = "X-Auth-Token"
USER_HEADER = "X-Auth-User"


def digest(token: str) -> str:
    return hashlib.sha256(_TAG + token.encode("utf-8", "surrogateescape")).hexdigest()


def digests(tokens: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(digest(t) for t in tokens)


def matches(presented: str | None, known: tuple[str, ...]) -> bool:
    """Whether `presented` is a token whose digest is in `known`. The digests all have one
    length and every one is compared with hmac.compare_digest, found or not: the time taken
    tells a guesser neither how near it came nor which token it hit."""
    if presented is None:
        return False
    mine = digest(presented)
    found = False
    for d in known:
        found |= hmac.compare_digest(d, mine)
    return found


@dataclass(frozen=True)
class Client:
    """The request's sender as the service knows it, after the checks of limits.py."""

    owner: str  # the digest of its verified token; "" when auth is off
    key: str  # what rate limits and budgets count: "token:<digest>" or "addr:<address>"
    authz: bool  # it sent a valid X-Auth-User (Judge0's AUTHZ): it may list and delete

    def may_read(self, rec: Record, owner_only: bool) -> bool:
        """Reading by token stays open (Judge0's rule: a token is an unguessable UUID)
        unless the operator asks for owner-only reads; an X-Auth-User token reads all."""
        return not owner_only or self.authz or hmac.compare_digest(rec.owner, self.owner)


def presented_token() -> str | None:
    """X-Auth-Token (Judge0's header, or its query parameter of the same name, as Judge0
    reads it), or an `Authorization: Bearer` token."""
    token = request.headers.get(TOKEN_HEADER) or request.args.get(TOKEN_HEADER)
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip() or None if auth.startswith("Bearer ") else None


def presented_user() -> str | None:
    """X-Auth-User (Judge0's AUTHZ header), or its query parameter of the same name."""
    return request.headers.get(USER_HEADER) or request.args.get(USER_HEADER) or None


def address() -> str:
    """The client's address: the peer's, or the one a trusted proxy reported (ProxyFix,
    STOCKADE_TRUSTED_PROXIES); never a header the client itself could have written."""
    return request.remote_addr or "unknown"


def current() -> Client:
    """The sender of this request (set by limits.check_request)."""
    client = g.get("stockade_client")
    if not isinstance(client, Client):
        # An exempt path (probes, docs) never reaches a handler that asks.
        raise RuntimeError("no client: the path is exempt from the request checks")
    return client


def remember(client: Client) -> None:
    g.stockade_client = client
