"""The two files that configure authentication and authorization, read once at start.

Bearer tokens (`--auth-tokens`): one `IDENTITY TOKEN` pair per line; `#` starts a comment.
Tokens are secrets, so they only ever come from a file (never a flag or a variable), only their
SHA-256 digests are kept in memory, and no message ever repeats one. An identity may have
several tokens (to rotate them).

Authorization policy (`--auth-policy`): TOML, one `[[grant]]` table per grant:

    [[grant]]
    identity = "orders-api"        # "*" grants every authenticated identity
    prefix = "orders/"             # "" is every key
    rights = ["read", "write", "lock"]

Every problem raises AuthFileError with one line naming the file and the line or grant.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from typing import Any

from lockservice.core.access import AccessPolicy, Grant, Right

__all__ = ["AuthFileError", "load_policy", "load_tokens", "token_digest"]

_IDENTITY = re.compile(r"[A-Za-z0-9._~:/@+=,!\-]{1,256}")
# RFC 6750 b64token.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MIN_TOKEN_CHARS = 16
_GRANT_KEYS = {"identity", "prefix", "rights"}


class AuthFileError(ValueError):
    """One line naming the file, and the line or grant, that cannot work."""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def load_tokens(path: str) -> dict[bytes, str]:
    """Token digest -> identity."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AuthFileError(f"cannot read {path}: {error.__class__.__name__}") from None
    identities: dict[bytes, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        where = f"{path} line {number}"
        if len(fields) != 2:
            raise AuthFileError(f"{where}: expected IDENTITY TOKEN separated by spaces")
        identity, token = fields
        if _IDENTITY.fullmatch(identity) is None:
            raise AuthFileError(f"{where}: the identity may only use A-Z a-z 0-9 . _ ~ : / @ + = , ! -")
        if _TOKEN.fullmatch(token) is None or len(token) < _MIN_TOKEN_CHARS:
            raise AuthFileError(
                f"{where}: the token must be at least {_MIN_TOKEN_CHARS} characters of "
                "A-Z a-z 0-9 - . _ ~ + / (as `openssl rand -hex 32` makes)"
            )
        digest = token_digest(token)
        if digest in identities:
            raise AuthFileError(f"{where}: this token is already given to another line")
        identities[digest] = identity
    return identities


def _grant(index: int, table: Any, path: str) -> Grant:
    where = f"{path} grant {index + 1}"
    if not isinstance(table, dict):
        raise AuthFileError(f"{where}: must be a [[grant]] table")
    unknown = sorted(set(table) - _GRANT_KEYS)
    if unknown:
        raise AuthFileError(f"{where}: unknown key {unknown[0]!r} (expected identity, prefix, rights)")
    identity = table.get("identity")
    if not isinstance(identity, str) or not identity:
        raise AuthFileError(f"{where}: identity must be a non-empty string")
    prefix = table.get("prefix", "")
    if not isinstance(prefix, str):
        raise AuthFileError(f"{where}: prefix must be a string")
    rights = table.get("rights")
    known = {right.value: right for right in Right}
    if not isinstance(rights, list) or not rights or not all(r in known for r in rights):
        raise AuthFileError(f"{where}: rights must be a non-empty list of {', '.join(known)}")
    return Grant(identity=identity, prefix=prefix, rights=frozenset(known[r] for r in rights))


def load_policy(path: str) -> AccessPolicy:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise AuthFileError(f"cannot read {path}: {error.__class__.__name__}") from None
    except tomllib.TOMLDecodeError as error:
        raise AuthFileError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - {"grant"})
    if unknown:
        raise AuthFileError(f"{path}: unknown key {unknown[0]!r} (expected [[grant]] tables)")
    grants = data.get("grant", [])
    if not isinstance(grants, list):
        raise AuthFileError(f"{path}: grant must be an array of tables, written [[grant]]")
    return AccessPolicy(_grant(index, table, path) for index, table in enumerate(grants))
