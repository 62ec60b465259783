from __future__ import annotations

from speed_kings.keys import secrets_from_environ
from speed_kings.redact import REDACTED, Redactor
from speed_kings.wire.base import clip

A = "zz-canary-0123456789abcdef0123"
B = "zz-canary-fedcba9876543210fedc"  # same 10-character prefix as A


def test_keys_sharing_a_prefix_are_each_replaced_whole() -> None:
    out = Redactor([A, B])(f"first {A} then {B}.")
    assert out == f"first {REDACTED} then {REDACTED}."


def test_a_key_cut_by_a_clip_loses_its_surviving_half() -> None:
    text = clip("x" * 285 + " " + B + " and more", 300)
    assert B[:10] in text and B not in text  # the clip cut the key
    out = Redactor([A, B])(text)
    assert "fedcba" not in out and out.endswith(REDACTED + "…")


def test_a_prefix_followed_by_other_text_is_not_a_cut() -> None:
    assert Redactor([A])("zz-canary-is-a-word") == "zz-canary-is-a-word"


def test_secrets_from_environ_reads_values_and_files(tmp_path: object) -> None:
    from pathlib import Path

    key_file = Path(str(tmp_path)) / "key"
    key_file.write_text("file-secret-value\n")
    environ = {
        "GROQ_API_KEY": "env-secret-value",
        "MY_TOKEN_FILE": str(key_file),
        "HOME": "/root",
        "EMPTY_SECRET": "",
    }
    assert sorted(secrets_from_environ(environ)) == ["env-secret-value", "file-secret-value"]
