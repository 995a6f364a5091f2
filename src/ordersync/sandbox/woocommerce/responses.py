"""What both API versions of the sandbox share: error types, JSON responses, request bodies, dates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ordersync.sandbox.woocommerce.auth import ApiKey
from ordersync.sandbox.woocommerce.render import encode
from ordersync.sandbox.woocommerce.store import WooCommerceStore

V3 = "/wp-json/wc/v3"
V2 = "/wc-api/v2"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}(:?\d{2})?)?$")


class ApiError(Exception):
    """A refusal in WooCommerce's terms; the app renders it in the envelope of the API version called."""

    def __init__(self, status: int, code: str, message: str, data: Any = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.data = {"status": status} if data is None else data


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        encode(body), status_code=status, media_type="application/json; charset=UTF-8", headers=headers
    )


def raw_response(body: bytes, status: int = 200, headers: Any = None) -> Response:
    return Response(body, status_code=status, media_type="application/json; charset=UTF-8", headers=headers)


def v3_error(status: int, code: str, message: str, data: Any = None) -> Response:
    return json_response(
        {"code": code, "message": message, "data": {"status": status} if data is None else data}, status
    )


def v2_error(status: int, code: str, message: str) -> Response:
    return json_response({"errors": [{"code": code, "message": message}]}, status)


def invalid_params(params: dict[str, tuple[str, str]]) -> ApiError:
    """WordPress's ``rest_invalid_param``: one message per parameter and a details entry each."""
    return ApiError(
        400,
        "rest_invalid_param",
        f"Invalid parameter(s): {', '.join(params)}",
        {
            "status": 400,
            "params": {name: message for name, (_, message) in params.items()},
            "details": {
                name: {"code": code, "message": message, "data": None}
                for name, (code, message) in params.items()
            },
        },
    )


def enum_message(name: str, values: tuple[str, ...]) -> str:
    return f"{name} is not one of {', '.join(values[:-1])}, and {values[-1]}."


async def read_body(request: Request, legacy: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if legacy:
            raise ApiError(400, "woocommerce_api_invalid_json", "Invalid JSON body passed.") from None
        raise ApiError(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
            {"status": 400, "json_error_code": 4, "json_error_message": "Syntax error"},
        ) from None
    if not isinstance(body, dict):
        return {}
    return body


def parse_date(value: str) -> datetime | None:
    if not _ISO.match(value.strip()):
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class Ctx:
    request: Request
    store: WooCommerceStore
    key: ApiKey | None

    @property
    def base(self) -> str:
        """The site URL links are built from: the shop's configured one, as WordPress uses its home
        URL, else the address the request came to."""
        if self.store.site_url:
            return self.store.site_url
        url = self.request.url
        return f"{url.scheme}://{url.netloc}"


class _HasId(Protocol):
    id: int


Child = TypeVar("Child", bound=_HasId)


def find_by_id(items: Iterable[Child], wanted: int, missing: ApiError) -> Child:
    """A note or refund of an order by its id, or the API's own 404."""
    for item in items:
        if item.id == wanted:
            return item
    raise missing
