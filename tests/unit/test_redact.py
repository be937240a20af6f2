"""Keys never shown: what redact() masks in every error text the harness records, prints or writes."""

from __future__ import annotations

import base64
from urllib.parse import quote

from harness.errors import HarnessError, redact, remember_secret

KEY = "zq-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"  # not shaped like any provider's key: found only because remembered


def test_a_remembered_key_is_masked_as_is_url_encoded_and_base64_showing_at_most_its_last_4():
    remember_secret(KEY)
    for form in (KEY, quote(KEY, safe=""), base64.b64encode(KEY.encode()).decode().rstrip("=")):
        text = redact(f"401 from proxy: key '{form}' refused")
        assert form not in text and KEY[:-4] not in text and "***" in text
    assert redact(KEY).endswith(KEY[-4:])


def test_key_shaped_text_is_masked_even_when_never_seen(monkeypatch):
    text = redact(
        "headers: {'authorization': 'Bearer abcdefghijklmnop1234', 'api-key': 'qwertyuiop123456'} "
        "and sk-proj-ABCDEFGHIJKLMNOP0123"
    )
    for secret in ("abcdefghijklmnop1234", "qwertyuiop123456", "ABCDEFGHIJKLMNOP0123"):
        assert secret not in text
    assert "Bearer ***" in text


def test_environment_variables_named_like_secrets_are_masked_whoever_reads_them(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok_98765432109876543210")
    assert "98765432109876543210" not in redact("upstream said tok_98765432109876543210 is wrong")
    monkeypatch.setenv("MODEL_PATH_KEY", "/models/not-a-secret")  # a path is not masked
    assert "/models/not-a-secret" in redact("loading /models/not-a-secret")


def test_every_harness_error_message_is_redacted():
    remember_secret(KEY)
    assert KEY not in str(HarnessError(f"the provider echoed {KEY}"))
