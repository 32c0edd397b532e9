"""Request bodies: raw values with a size limit, and JSON objects read field by field.

Every mistake is a clear 4xx: a body over its limit is 413, a non-JSON body on a JSON route
415, malformed JSON, a wrong type, bad base64 or an unknown field 400 naming the field (an
unknown field is refused because a misspelt `expected_version` must not turn a conditional
write into an unconditional one).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping

from starlette.requests import Request

from lockservice.http.failures import body_too_large, invalid_argument, unsupported_media_type

__all__ = ["JsonFields", "read_json", "read_value"]


async def read_value(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise invalid_argument("Content-Length", "Content-Length must be a non-negative integer")
        if int(declared) > limit:
            raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_json(request: Request, limit: int, allowed: Collection[str]) -> JsonFields:
    """The body as a JSON object with only `allowed` fields; an empty body is `{}`."""
    raw = await read_value(request, limit)
    if not raw.strip():
        return JsonFields({}, "body", allowed)
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise unsupported_media_type(content_type)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise invalid_argument("body", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise invalid_argument("body", "the body must be a JSON object")
    return JsonFields(data, "body", allowed)


class JsonFields:
    """A JSON object read with exact types. Absent and null fields read as None.

    A value is given either as text (`value`, stored as UTF-8) or as base64 (`value_base64`).
    """

    def __init__(self, data: Mapping[str, object], path: str, allowed: Collection[str]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise invalid_argument(
                f"{path}.{unknown[0]}", f"unknown field {unknown[0]!r}; expected one of {sorted(allowed)}"
            )
        self._data = data
        self._path = path

    @property
    def path(self) -> str:
        """Where this object is in the body, e.g. `body.compares[2]`."""
        return self._path

    def _field(self, name: str) -> str:
        return f"{self._path}.{name}"

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def string(self, name: str) -> str:
        value = self._data.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise invalid_argument(self._field(name), f"{self._field(name)} must be a string")
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
            raise invalid_argument(self._field(name), f"{self._field(name)} is not valid Unicode") from None
        return value

    def integer(self, name: str) -> int | None:
        """An integer; as in JSON Schema and proto3 JSON, a number with a zero fraction (5.0) is one."""
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_argument(self._field(name), f"{self._field(name)} must be an integer")
        if not -(2**63) <= value < 2**63:
            raise invalid_argument(self._field(name), f"{self._field(name)} is out of the 64-bit range")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise invalid_argument(self._field(name), f"{self._field(name)} must be true or false")
        return value

    def seconds(self, name: str, maximum: float = 315_576_000_000) -> float | None:
        """A number of seconds from 0 to `maximum` (by default, what a protobuf Duration holds)."""
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= maximum:
            raise invalid_argument(
                self._field(name), f"{self._field(name)} must be a number of seconds from 0 to {maximum:g}"
            )
        return float(value)

    def value(self, name: str) -> bytes | None:
        """`name` as UTF-8 text or `name_base64` as base64; at most one of them."""
        text, encoded = self._data.get(name), self._data.get(f"{name}_base64")
        if text is not None and encoded is not None:
            raise invalid_argument(self._field(name), f"give {name} or {name}_base64, not both")
        if text is not None:
            return self.string(name).encode()
        if encoded is None:
            return None
        encoded_field = self._field(f"{name}_base64")
        if not isinstance(encoded, str):
            raise invalid_argument(encoded_field, f"{encoded_field} must be a base64 string")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument(encoded_field, f"{encoded_field} is not valid base64") from None

    def object(self, name: str, allowed: Collection[str]) -> JsonFields | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise invalid_argument(self._field(name), f"{self._field(name)} must be an object")
        return JsonFields(value, self._field(name), allowed)

    def objects(self, name: str, allowed: Collection[str]) -> list[JsonFields]:
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid_argument(self._field(name), f"{self._field(name)} must be an array")
        items: list[JsonFields] = []
        for index, item in enumerate(value):
            path = f"{self._field(name)}[{index}]"
            if not isinstance(item, dict):
                raise invalid_argument(path, f"{path} must be an object")
            items.append(JsonFields(item, path, allowed))
        return items
