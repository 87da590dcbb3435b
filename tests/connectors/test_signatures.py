"""The shared webhook authentication helpers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors.signatures import (
    SignatureError,
    StaleRequest,
    secrets_equal,
    sign_timestamped,
    verify_sha256_header,
    verify_timestamped,
    wechat_signature,
)

BODY = b'{"hello": "world"}'


def test_hub_signature_matches_an_independent_hmac() -> None:
    header = "sha256=" + hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()

    verify_sha256_header(header, "s3cret", BODY)
    verify_sha256_header(header.upper().replace("SHA256=", "sha256="), "s3cret", BODY)


@pytest.mark.parametrize(
    "header", [None, "", "sha256=", "sha1=abc", "sha256=" + "0" * 64, "sha256=ünïcode"]
)
def test_hub_signature_refuses_missing_wrong_or_non_ascii(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_sha256_header(header, "s3cret", BODY)


def test_secrets_equal_handles_none_and_non_ascii_without_raising() -> None:
    assert secrets_equal("abc", "abc")
    assert not secrets_equal(None, "abc")
    assert not secrets_equal("äbc", "abc")


def test_timestamped_signature_round_trips_and_covers_the_timestamp() -> None:
    signature = sign_timestamped("k", 1_700_000_000, BODY)

    verify_timestamped("k", signature, "1700000000", BODY, now=1_700_000_100, max_skew_s=300)
    with pytest.raises(SignatureError):  # same signature, another timestamp
        verify_timestamped("k", signature, "1700000001", BODY, now=1_700_000_100, max_skew_s=300)


@pytest.mark.parametrize("timestamp", ["1699999000", "1700001000", "99999999999999", "-5", "x"])
def test_timestamped_signature_refuses_stale_or_malformed_timestamps(timestamp: str) -> None:
    signature = sign_timestamped(
        "k", int(timestamp) if timestamp.lstrip("-").isdigit() else 0, BODY
    )

    with pytest.raises(SignatureError):
        verify_timestamped("k", signature, timestamp, BODY, now=1_700_000_100, max_skew_s=300)


def test_an_old_but_correctly_signed_request_is_a_stale_request() -> None:
    signature = sign_timestamped("k", 1_699_000_000, BODY)

    with pytest.raises(StaleRequest):
        verify_timestamped("k", signature, "1699000000", BODY, now=1_700_000_000, max_skew_s=300)


def test_wechat_signature_is_sha1_of_the_sorted_parts() -> None:
    expected = hashlib.sha1(b"".join(sorted([b"tok", b"1700000000", b"42"]))).hexdigest()

    assert wechat_signature("tok", "1700000000", "42") == expected
