"""`--web-config`: the exporter-toolkit web-config.yml (TLS, basic auth, headers).

Real HTTPS over loopback with certificates `openssl` makes here (a test CA signing a server
and a client certificate), real bcrypt, and `speed-kings run --demo --web-config` as a real
process read with urllib as Prometheus would scrape it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest

from speed_kings.config import ConfigError
from speed_kings.logs import make_logger
from speed_kings.web import WebServer
from speed_kings.webconfig import (
    UNAUTHENTICATED_PATHS,
    BasicAuth,
    WebConfig,
    load_web_config,
)
from tests.fake_status import FakeStatus, busy_snapshot
from tests.procs import SPEED_KINGS, DaemonProcess, clean_environ, free_port

PASSWORD = "correct horse battery staple"
WRONG = "hunter2-wrong-password-7c1e"
HASH_FIX = (
    "give the bcrypt hash of the password, never the password: python -c 'import bcrypt; "
    'print(bcrypt.hashpw(b"PASSWORD", bcrypt.gensalt()).decode())\''
)
PATH_FIX = "check the path (a relative path is from the web config file's folder)"


# --- certificates ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path  # the test CA: signs server and client
    cert: Path  # server, for localhost and 127.0.0.1
    key: Path
    client_cert: Path
    client_key: Path
    other_key: Path  # a key that belongs to no certificate here
    encrypted_key: Path  # the server key under a passphrase


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=speed-kings test CA",
            "-keyout", d / "ca.key", "-out", d / "ca.pem")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", d / f"{name}.key",
                "-out", d / f"{name}.csr")  # fmt: skip
        openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem",
                "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", d / f"{name}.ext", "-out", d / f"{name}.pem")  # fmt: skip
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", d / "other.key")  # fmt: skip
    openssl("pkey", "-in", d / "server.key", "-aes256", "-passout", "pass:secret",
            "-out", d / "encrypted.key")  # fmt: skip
    return Pki(
        d,
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "other.key",
        d / "encrypted.key",
    )


def client_context(pki: Pki, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if client_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def bcrypt_hash(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def web_yml(
    folder: Path,
    pki: Pki | None = None,
    *,
    users: dict[str, str] | None = None,
    extra: str = "",
    tls: str = "",
) -> Path:
    """A web config in `folder`, certificate paths relative to it (as users write them)."""
    lines = []
    if pki is not None:
        for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"):
            (folder / name).write_bytes((pki.dir / name).read_bytes())
        lines += ["tls_server_config:", "  cert_file: server.pem", "  key_file: server.key"]
        lines += [f"  {line}" for line in tls.splitlines()]
    if users:
        lines.append("basic_auth_users:")
        lines += [f"  {user}: '{h}'" for user, h in users.items()]
    return write(folder / "web.yml", "\n".join(lines) + "\n" + extra)


def problems(folder: Path, text: str) -> str:
    path = write(folder / "web.yml", text)
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    return str(info.value)


# --- invalid files: exact messages ---------------------------------------------------------
def test_missing_cert_file(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    text = f"tls_server_config:\n  cert_file: missing.pem\n  key_file: {pki.key}\n"
    assert problems(tmp_path, text) == (
        f"{f}: tls_server_config.cert_file: file not found: {tmp_path}/missing.pem; fix: {PATH_FIX}"
    )


def test_bad_hash_never_shows_the_value(tmp_path: Path) -> None:
    """A value that is not a bcrypt hash is usually the password itself."""
    f = tmp_path / "web.yml"
    text = "basic_auth_users:\n  alice: plaintext-password-123\n  bob: 12345678\n"
    message = problems(tmp_path, text)
    assert message == (
        f"{f}: basic_auth_users.alice: not a bcrypt hash (value not shown: it may be a "
        f"password); fix: {HASH_FIX}\n"
        f"{f}: basic_auth_users.bob: not a bcrypt hash (value not shown: it may be a "
        f"password); fix: {HASH_FIX}"
    )
    assert "plaintext-password-123" not in message and "12345678" not in message


def test_truncated_hash_is_rejected(tmp_path: Path) -> None:
    good = bcrypt_hash("pw")
    assert problems(tmp_path, f"basic_auth_users:\n  alice: '{good[:-1]}'\n").endswith(
        f"basic_auth_users.alice: not a bcrypt hash (value not shown: it may be a password); "
        f"fix: {HASH_FIX}"
    )


def test_unknown_keys_list_the_allowed_ones(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    text = (
        f"tls_server_config:\n  cert_fle: {pki.cert}\n  key_file: {pki.key}\n"
        "basic_auth_user: {}\n"
    )
    assert problems(tmp_path, text) == (
        f"{f}: tls_server_config: required key 'cert_file' is missing\n"
        f"{f}: tls_server_config.cert_fle: unknown key 'cert_fle'; fix: use one of: "
        "cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version "
        "(did you mean 'cert_file'?)\n"
        f"{f}: basic_auth_user: unknown key 'basic_auth_user'; fix: use one of: "
        "tls_server_config, http_server_config, basic_auth_users (did you mean "
        "'basic_auth_users'?)"
    )


def test_unknown_header(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    text = "http_server_config:\n  headers:\n    X-Frame-Option: deny\n"
    assert problems(tmp_path, text) == (
        f"{f}: http_server_config.headers.X-Frame-Option: unknown key 'X-Frame-Option'; "
        "fix: use one of: Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, "
        "X-XSS-Protection, Strict-Transport-Security (did you mean 'X-Frame-Options'?)"
    )


def test_header_values_checked_as_exporter_toolkit(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    text = "http_server_config:\n  headers:\n    X-Frame-Options: allow\n"
    assert problems(tmp_path, text) == (
        f"{f}: http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin "
        "(or blank for none), got 'allow'"
    )


def test_exporter_toolkit_keys_we_do_not_implement(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    text = (
        f"tls_server_config:\n  cert_file: {pki.cert}\n  key_file: {pki.key}\n"
        "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
        "rate_limit: {interval: 1s, burst: 10}\n"
    )
    assert problems(tmp_path, text) == (
        f"{f}: tls_server_config.cipher_suites: exporter-toolkit's 'cipher_suites' is not "
        "supported (Python's OpenSSL defaults are used); fix: remove it\n"
        f"{f}: rate_limit: exporter-toolkit's 'rate_limit' is not supported: rate limit in "
        "the reverse proxy if you need it; fix: remove it"
    )


def test_user_name_with_a_colon_is_not_shown(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    message = problems(tmp_path, f"basic_auth_users:\n  'alice:s3cret': '{bcrypt_hash('x')}'\n")
    assert message == (
        f"{f}: basic_auth_users: user name #1 is empty or contains ':' (not shown: it may hold "
        "a password); fix: use a non-empty name without ':' (basic auth splits user and "
        "password at the first ':'); the password's bcrypt hash goes after the name"
    )


def test_key_that_is_not_the_certificates(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    text = f"tls_server_config:\n  cert_file: {pki.cert}\n  key_file: {pki.other_key}\n"
    assert problems(tmp_path, text) == (
        f"{f}: tls_server_config.key_file: {pki.other_key} is not the key of the certificate "
        f"in {pki.cert}; fix: give the private key that was issued with cert_file"
    )


def test_encrypted_key_fails_instead_of_prompting(tmp_path: Path, pki: Pki) -> None:
    """OpenSSL would ask for the passphrase on the terminal; a daemon must not wait for it."""
    f = tmp_path / "web.yml"
    text = f"tls_server_config:\n  cert_file: {pki.cert}\n  key_file: {pki.encrypted_key}\n"
    assert problems(tmp_path, text) == (
        f"{f}: tls_server_config.key_file: {pki.encrypted_key} is encrypted with a passphrase; "
        f"fix: give an unencrypted key: openssl pkey -in {pki.encrypted_key} "
        "-out encrypted-plain.pem"
    )


def test_files_swapped_say_what_is_missing(tmp_path: Path, pki: Pki) -> None:
    """The key file given as cert_file: named, never quoted (it is a private key)."""
    f = tmp_path / "web.yml"
    text = f"tls_server_config:\n  cert_file: {pki.key}\n  key_file: {pki.cert}\n"
    message = problems(tmp_path, text)
    assert message == (
        f"{f}: tls_server_config.cert_file: {pki.key} holds no PEM certificate; "
        "fix: give a PEM-encoded certificate\n"
        f"{f}: tls_server_config.key_file: {pki.cert} holds no PEM private key; "
        "fix: give a PEM-encoded private key"
    )
    assert "BEGIN" not in message


def test_client_auth_needs_a_ca_and_a_ca_needs_client_auth(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    base = f"tls_server_config:\n  cert_file: {pki.cert}\n  key_file: {pki.key}\n"
    assert problems(tmp_path, base + "  client_auth_type: RequireAndVerifyClientCert\n") == (
        f"{f}: tls_server_config.client_ca_file: client_auth_type RequireAndVerifyClientCert "
        "needs client_ca_file; fix: name the PEM file of the CA that signs client certificates"
    )
    assert problems(tmp_path, base + f"  client_ca_file: {pki.ca}\n") == (
        f"{f}: tls_server_config.client_auth_type: client_ca_file is set but client_auth_type "
        "is NoClientCert: client certificates would not be checked; fix: set "
        "client_auth_type: RequireAndVerifyClientCert (or drop client_ca_file)"
    )
    assert problems(tmp_path, base + "  client_auth_type: RequireAnyClientCert\n") == (
        f"{f}: tls_server_config.client_auth_type: must be one of 'NoClientCert', "
        "'VerifyClientCertIfGiven' or 'RequireAndVerifyClientCert', got 'RequireAnyClientCert'"
    )


def test_tls_versions(tmp_path: Path, pki: Pki) -> None:
    f = tmp_path / "web.yml"
    base = f"tls_server_config:\n  cert_file: {pki.cert}\n  key_file: {pki.key}\n"
    assert problems(tmp_path, base + "  min_version: TLS11\n") == (
        f"{f}: tls_server_config.min_version: must be one of 'TLS12' or 'TLS13', got 'TLS11'"
    )
    assert problems(tmp_path, base + "  min_version: TLS13\n  max_version: TLS12\n") == (
        f"{f}: tls_server_config.min_version: min_version TLS13 is above max_version TLS12"
    )


def test_empty_missing_and_broken_files(tmp_path: Path) -> None:
    f = tmp_path / "web.yml"
    assert problems(tmp_path, "# nothing\n") == (
        f"{f}: the file is empty; fix: set tls_server_config and/or basic_auth_users (see "
        "docs/security.md), or drop --web-config"
    )
    assert problems(tmp_path, "- a list\n") == (
        f"{f}: expected a mapping of settings at the top level, got a list"
    )
    assert problems(tmp_path, "basic_auth_users: {}\nbasic_auth_users: {}\n") == (
        f"{f}: line 2, column 1: invalid YAML: duplicate key 'basic_auth_users' (first on "
        "line 1); fix: keep one of the two entries"
    )
    with pytest.raises(ConfigError) as info:
        load_web_config(tmp_path / "nope.yml")
    assert str(info.value) == (
        f"{tmp_path}/nope.yml: web config file not found; fix: check the --web-config path"
    )


def test_valid_file_loads(tmp_path: Path, pki: Pki) -> None:
    h = bcrypt_hash(PASSWORD)
    path = web_yml(
        tmp_path,
        pki,
        users={"prometheus": h},
        tls="min_version: TLS13",
        extra="http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n"
        "    X-XSS-Protection: ''\n",
    )
    config = load_web_config(path)
    assert config.tls and config.basic_auth
    assert config.ssl_context is not None
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.ssl_context.verify_mode == ssl.CERT_NONE
    assert dict(config.users) == {"prometheus": h.encode()}
    assert dict(config.headers) == {"X-Frame-Options": "deny"}  # blank: unset
    assert h not in repr(config)


# --- basic auth -------------------------------------------------------------------------------
async def test_basic_auth_caches_successes_only() -> None:
    auth = BasicAuth({"alice": bcrypt_hash(PASSWORD).encode()})
    assert await auth.check(basic("alice", PASSWORD))
    assert await auth.check(basic("alice", PASSWORD))
    assert auth.bcrypt_runs == 1  # the second one came from the cache
    assert not await auth.check(basic("alice", WRONG))
    assert not await auth.check(basic("alice", WRONG))
    assert auth.bcrypt_runs == 3  # failures are never cached
    assert not await auth.check(basic("mallory", PASSWORD))
    assert auth.bcrypt_runs == 4  # an unknown user costs a bcrypt too: no timing oracle


async def test_basic_auth_cache_is_bounded() -> None:
    users = {f"u{i}": bcrypt_hash(f"pw{i}").encode() for i in range(3)}
    auth = BasicAuth(users, cache_size=2)
    for i in range(3):
        assert await auth.check(basic(f"u{i}", f"pw{i}"))
    assert await auth.check(basic("u2", "pw2"))
    assert auth.bcrypt_runs == 3
    assert await auth.check(basic("u0", "pw0"))  # evicted: verified again
    assert auth.bcrypt_runs == 4


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:" + PASSWORD.encode()).decode(),
        basic("alice", PASSWORD + "x"),
        basic("alice", "x" * 100),  # past bcrypt's 72 bytes: refused, not an error
        basic("Alice", PASSWORD),  # user names are case-sensitive
    ],
)
async def test_basic_auth_refuses(header: str | None) -> None:
    auth = BasicAuth({"alice": bcrypt_hash(PASSWORD).encode()})
    assert not await auth.check(header)


async def test_bcrypt_does_not_block_the_event_loop() -> None:
    """Probe timestamps are taken on the event loop: a scrape's bcrypt (cost 12, ~0.25 s)
    must run beside it, not in it."""
    auth = BasicAuth({"alice": bcrypt_hash(PASSWORD, rounds=12).encode()})
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - before - 0.005)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    assert await auth.check(basic("alice", PASSWORD))
    took = time.monotonic() - started
    task.cancel()
    print(f"\nbcrypt cost 12: {took * 1000:.0f} ms; worst loop lag {max(lags) * 1000:.1f} ms")
    assert took > 0.05 and len(lags) > 5
    assert max(lags) < 0.05


# --- the server, in process, over HTTPS --------------------------------------------------------
@asynccontextmanager
async def serving(config: WebConfig, **kwargs: Any) -> AsyncIterator[tuple[str, FakeStatus]]:
    fake = FakeStatus(busy_snapshot())
    server = WebServer(fake, "127.0.0.1", 0, web_config=config, **kwargs)
    url = await server.start()
    try:
        yield url, fake
    finally:
        await server.stop()


async def get(
    url: str, context: ssl.SSLContext | bool, *, auth: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": auth} if auth else {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, ssl=context, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


PROTECTED = [
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("GET", "/"),
    ("GET", "/api/probes"),
    ("GET", "/api/status"),
    ("POST", "/-/reload"),
    ("GET", "/-/reload"),
    ("GET", "/no-such-page"),
]


async def test_https_and_basic_auth_on_every_route(tmp_path: Path, pki: Pki) -> None:
    config = load_web_config(web_yml(tmp_path, pki, users={"prometheus": bcrypt_hash(PASSWORD)}))
    context = client_context(pki)
    async with serving(config) as (url, fake):
        assert url.startswith("https://127.0.0.1:")
        # /healthz stays open: container HEALTHCHECKs have no password.
        assert {"/healthz"} == UNAUTHENTICATED_PATHS
        status, headers, body = await get(url + "/healthz", context)
        assert (status, body, "WWW-Authenticate" in headers) == (200, "ok", False)
        for method, path in PROTECTED:
            for auth in (None, basic("prometheus", WRONG), basic("nobody", PASSWORD)):
                status, headers, body = await get(url + path, context, auth=auth, method=method)
                assert (status, headers.get("WWW-Authenticate")) == (
                    401,
                    'Basic realm="speed-kings"',
                ), (method, path, auth is None)
                assert body == "401 Unauthorized\n"
        assert fake.reload_calls == 0  # refused before the handler
        good = basic("prometheus", PASSWORD)
        status, headers, body = await get(url + "/metrics", context, auth=good)
        assert status == 200 and "speedkings_build_info" in body
        assert (await get(url + "/", context, auth=good))[0] == 200
        assert (await get(url + "/api/status", context, auth=good))[0] == 200
        assert (await get(url + "/-/reload", context, auth=good, method="POST"))[0] == 200
        assert fake.reload_calls == 1
        assert (await get(url + "/no-such-page", context, auth=good))[0] == 404


async def test_plain_http_and_unknown_ca_are_refused(tmp_path: Path, pki: Pki) -> None:
    config = load_web_config(web_yml(tmp_path, pki))
    async with serving(config) as (url, _):
        with pytest.raises(aiohttp.ClientError):
            await get(url.replace("https://", "http://") + "/healthz", False)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(url + "/healthz", ssl.create_default_context())  # not our CA
        assert (await get(url + "/metrics", client_context(pki)))[0] == 200  # no users: open


async def test_min_version_tls13(tmp_path: Path, pki: Pki) -> None:
    config = load_web_config(web_yml(tmp_path, pki, tls="min_version: TLS13"))
    old = client_context(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    async with serving(config) as (url, _):
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/healthz", old)
        assert (await get(url + "/healthz", client_context(pki)))[0] == 200


async def test_client_certificates(tmp_path: Path, pki: Pki) -> None:
    tls = "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: ca.pem"
    config = load_web_config(web_yml(tmp_path, pki, tls=tls))
    async with serving(config) as (url, _):
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/metrics", client_context(pki))
        status, _, body = await get(url + "/metrics", client_context(pki, client_cert=True))
        assert status == 200 and "speedkings_build_info" in body


async def test_headers_on_every_response_page_keeps_its_csp(tmp_path: Path, pki: Pki) -> None:
    extra = (
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        "    Content-Security-Policy: default-src 'self'\n"
        "    Strict-Transport-Security: max-age=31536000\n"
    )
    config = load_web_config(
        web_yml(tmp_path, pki, users={"prometheus": bcrypt_hash(PASSWORD)}, extra=extra)
    )
    context = client_context(pki)
    async with serving(config) as (url, _):
        for path, auth in (("/metrics", None), ("/metrics", basic("prometheus", PASSWORD))):
            _, headers, _ = await get(url + path, context, auth=auth)
            assert headers["X-Frame-Options"] == "deny"
            assert headers["Strict-Transport-Security"] == "max-age=31536000"
            assert headers["Content-Security-Policy"] == "default-src 'self'"
        _, headers, _ = await get(url + "/", context, auth=basic("prometheus", PASSWORD))
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert headers["X-Frame-Options"] == "deny"


async def test_passwords_never_reach_the_log(tmp_path: Path, pki: Pki) -> None:
    """The debug access log records refusals (method, path, 401), never credentials."""
    config = load_web_config(web_yml(tmp_path, pki, users={"prometheus": bcrypt_hash(PASSWORD)}))
    stream = io.StringIO()
    logger = make_logger(fmt="json", level="debug", stream=stream)
    context = client_context(pki)
    async with serving(config, logger=logger) as (url, _):
        for password in (WRONG, PASSWORD):
            await get(url + "/metrics?x=1", context, auth=basic("prometheus", password))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["path"], e["status"]) for e in events] == [
        ("http_request", "/metrics", 401),
        ("http_request", "/metrics", 200),
    ]
    log = stream.getvalue()
    for secret in (WRONG, PASSWORD, basic("prometheus", WRONG)[6:], "hunter2"):
        assert secret not in log


def test_no_web_config_is_todays_server() -> None:
    """Without --web-config nothing changes: plain HTTP, no auth, no extra headers."""

    async def main() -> None:
        server = WebServer(FakeStatus(busy_snapshot()), "127.0.0.1", 0)
        url = await server.start()
        try:
            assert url.startswith("http://")
            status, headers, _ = await get(url + "/metrics", False)
            assert status == 200 and "WWW-Authenticate" not in headers
            assert "X-Frame-Options" not in headers
        finally:
            await server.stop()

    asyncio.run(main())


# --- `speed-kings run --demo --web-config` as a real process ----------------------------------
def urlopen(
    url: str, context: ssl.SSLContext, auth: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read().decode()


@contextmanager
def https_daemon(args: list[str], out_dir: Path, pki: Pki) -> Iterator[tuple[DaemonProcess, str]]:
    daemon = DaemonProcess(args, out_dir=out_dir, env=clean_environ())
    url = f"https://127.0.0.1:{daemon.port}"
    context = client_context(pki)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert daemon.proc.poll() is None, daemon.output()[-3000:]
            try:
                if urlopen(url + "/healthz", context)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, daemon.output()[-3000:]
            time.sleep(0.1)
        yield daemon, url
    finally:
        daemon.stop()


def test_demo_process_serves_https_with_basic_auth(tmp_path: Path, pki: Pki) -> None:
    path = web_yml(
        tmp_path,
        pki,
        users={"prometheus": bcrypt_hash(PASSWORD, rounds=10)},
        extra="http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    context = client_context(pki)
    good = basic("prometheus", PASSWORD)
    args = ["--demo", "--web-config", str(path)]
    with https_daemon(args, tmp_path / "out", pki) as (daemon, url):
        for path_ in ("/metrics", "/", "/api/status", "/readyz"):
            status, headers, _ = urlopen(url + path_, context)
            assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="speed-kings"')
            assert urlopen(url + path_, context, basic("prometheus", WRONG))[0] == 401
        status, headers, body = urlopen(url + "/metrics", context, good)
        assert status == 200 and "speedkings_build_info" in body
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, _, page = urlopen(url + "/", context, good)
        assert status == 200 and "sim-" in page
        assert urlopen(url + "/-/reload", context, good, method="POST")[0] == 200
        # Prometheus scrapes every 15 s: after the first, the cache answers (no bcrypt).
        started = time.monotonic()
        for _ in range(20):
            assert urlopen(url + "/metrics", context, good)[0] == 200
        per_scrape = (time.monotonic() - started) / 20
        print(f"\nweb-config demo: cached scrape {per_scrape * 1000:.1f} ms")
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/healthz", timeout=5)
        code, _ = daemon.terminate()
        assert code == 0
        listening = next(e for e in daemon.events() if e["event"] == "listening")
        assert listening["url"] == url
        assert (listening["tls"], listening["basic_auth_users"]) == (True, 1)
        output = daemon.output()
        assert "Traceback" not in output
        assert WRONG not in output and PASSWORD not in output


def test_basic_auth_without_tls_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{bcrypt_hash(PASSWORD)}'\n"
    )
    daemon = DaemonProcess(
        ["--demo", "--web-config", str(path)], out_dir=tmp_path, env=clean_environ()
    )
    try:
        daemon.wait_healthy()  # plain HTTP, /healthz open
        assert urlopen(daemon.url + "/metrics", ssl.create_default_context())[0] == 401
        daemon.terminate()
        events = [e["event"] for e in daemon.events()]
        assert "basic_auth_without_tls" in events
    finally:
        daemon.stop()


def test_invalid_web_config_stops_the_start(tmp_path: Path, pki: Pki) -> None:
    path = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n"
        "basic_auth_users:\n  prometheus: not-a-hash\n",
    )
    done = subprocess.run(
        [
            *SPEED_KINGS,
            "run",
            "--demo",
            "--web-config",
            str(path),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environ(),
    )
    assert done.returncode == 1, done.stderr
    # Structure first (as the exporter config): files are checked once it is valid.
    assert done.stderr == (
        f"{path}: basic_auth_users.prometheus: not a bcrypt hash (value not shown: it may be "
        f"a password); fix: {HASH_FIX}\n"
    )
    path.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n")
    done = subprocess.run(
        [
            *SPEED_KINGS,
            "run",
            "--demo",
            "--web-config",
            str(path),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environ(),
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"{path}: tls_server_config.cert_file: file not found: {tmp_path}/missing.pem; "
        f"fix: {PATH_FIX}\n"
        f"{path}: tls_server_config.key_file: file not found: {tmp_path}/server.key; "
        f"fix: {PATH_FIX}\n"
    )
    assert "not-a-hash" not in done.stderr and "Traceback" not in done.stderr
