"""JSON bodies: answers (serialized once, without a second validation pass) and errors in
the shape each client family expects - text-embeddings-inference's ``{"error",
"error_type"}`` on the server's own routes, OpenAI's ``{"error": {"message", "type",
"param", "code"}}`` under ``/v1/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response

_TAGS = {
    "str": "a text",
    "list[str]": "a list of texts",
    "list[list[str]]": "a list of [text] or [text, text_pair] lists",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "none": "null",
}


def json_bytes(value: Any) -> bytes:
    """JSON of plain values and NumPy arrays (a float32 vector as the shortest decimals that
    read back as the same float32s)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


class FastJSONResponse(Response):
    """``application/json`` from plain Python values and NumPy arrays."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def error_response(
    path: str,
    status: int,
    kind: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if path.startswith("/v1/"):
        family = "invalid_request_error" if status < 500 else "server_error"
        body: dict[str, Any] = {
            "error": {"message": message, "type": family, "param": param, "code": kind}
        }
    else:
        body = {"error": message, "error_type": kind}
    return FastJSONResponse(body, status_code=status, headers=headers)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_of(value: Any) -> str:
    names = {str: "a text", bool: "a boolean", int: "an integer", float: "a number",
             list: "a list", dict: "an object", type(None): "null",
             bytes: "a body that is not JSON"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def describe_validation(errors: Sequence[dict[str, Any]], body: Any) -> tuple[int, str, str]:
    """(status, kind, message) for a request that failed validation: 400 when the body is
    not JSON, else 422 with one sentence per wrong field saying what it should be."""
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "not JSON")
            position = error["loc"][1] if len(error.get("loc", ())) > 1 else "?"
            return (
                400,
                "invalid_json",
                f"the body is not valid JSON ({detail} at character {position}): send one JSON "
                'object, e.g. {"inputs": "some text"}',
            )
    by_field: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        loc = [str(x) for x in error.get("loc", ())]
        field = loc[1] if len(loc) > 1 and loc[0] == "body" else ".".join(loc) or "body"
        by_field.setdefault(field, []).append(error)
    parts = []
    for field, errs in by_field.items():
        first = errs[0]
        kind = first.get("type", "")
        if field == "body":
            if kind == "missing":
                parts.append('the body is empty: send a JSON object, e.g. {"inputs": "some text"}')
            else:
                parts.append(
                    "the body must be a JSON object sent with Content-Type: application/json, "
                    f"got {_kind_of(body)}"
                )
        elif kind == "missing":
            parts.append(f"`{field}` is required")
        elif kind == "extra_forbidden":
            parts.append(f"`{field}` is not a field of this request (misspelt?)")
        else:
            got = body.get(field) if isinstance(body, dict) else first.get("input")
            tags = []
            for err in errs:
                loc = [str(x) for x in err.get("loc", ())]
                if len(loc) > 2 and loc[2] in _TAGS and _TAGS[loc[2]] not in tags:
                    tags.append(_TAGS[loc[2]])
            if len(tags) > 1:
                expected = ", ".join(tags[:-1]) + " or " + tags[-1]
                parts.append(f"`{field}` must be {expected}; got {_kind_of(got)} {_shown(got)}")
            else:
                where = ".".join(str(x) for x in first.get("loc", ())[1:]) or field
                parts.append(
                    f"`{where}`: {first.get('msg', 'invalid')} (got {_shown(first.get('input'))})"
                )
    return 422, "validation", "; ".join(parts)


__all__ = ["FastJSONResponse", "describe_validation", "error_response", "json_bytes"]
