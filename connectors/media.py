"""Fetching a customer's file from its provider, within a size cap.

Each channel module fetches its own files (`fetch_media`) through `download`, which
streams the body and stops as soon as it passes the cap: an oversized file is never
read whole, let alone stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from connectors.config import DeliveryError, raise_for_retry, transport_errors


class MediaTooLarge(Exception):
    """The file is over the size cap (known from the provider, or found while reading)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"file of {size if size is not None else 'over'} bytes, cap {limit}")
        self.size = size
        self.limit = limit


class MediaGone(DeliveryError):
    """The provider no longer has the file (expired or unknown media id): it cannot be
    fetched however often we try."""


@dataclass(frozen=True)
class Fetched:
    """A file's bytes and the type the provider declared (not trusted: sniffed later)."""

    data: bytes
    declared_type: str


def check_size(size: object, limit: int) -> None:
    """MediaTooLarge when a size the provider reports is over the cap."""
    if isinstance(size, int) and not isinstance(size, bool) and size > limit:
        raise MediaTooLarge(size, limit)


async def download(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    what: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Fetched:
    """GET the file, refusing it (MediaTooLarge) as soon as it passes `max_bytes`.
    429 / 5xx / connection errors are ProviderUnavailable (retried later)."""
    with transport_errors(what):
        async with http.stream("GET", url, headers=headers, params=params) as response:
            raise_for_retry(response, what)
            if response.status_code in (404, 410):
                raise MediaGone(f"{what}: HTTP {response.status_code}")
            if not response.is_success:
                raise DeliveryError(f"{what}: HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit():
                check_size(int(declared), max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(None, max_bytes)
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
    return Fetched(b"".join(chunks), content_type)


@dataclass(frozen=True)
class OutgoingFile:
    """A file sent with a reply (an agent's image), read back from the object store."""

    data: bytes
    content_type: str
    filename: str
    link: str = ""  # a public link to it ("" when the gateway has no public address)
