"""Coverage-guided fuzzing of the config loaders with atheris (libFuzzer), beside the
hypothesis properties of tests/test_config_fuzz.py.

    pip install atheris        # not a dependency of the project: only this script needs it
    python -m benchmarks.fuzz_config -atheris_runs=200000    # libFuzzer flags pass through
    python -m benchmarks.fuzz_config --web -max_total_time=300

Each input is taken as a YAML file (the exporter's config, or with `--web` the web config)
and loaded: the loader must return a config or raise `ConfigError` with one line per
problem, each starting with the file name. Any other exception is a finding: atheris stops
and writes the input to `crash-*`. The seed corpus is the shipped example configs (with
`--web`, a web config using every section).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = {
    name: (ROOT / "config" / name).read_bytes()
    for name in ("speed-kings.example.yaml", "speed-kings.minimal.yaml")
}
WEB_SEEDS = {
    "web.yaml": b"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: $2b$12$hNf2lSsxfm0.i4a.1kVpSOVyBCfIB51VRjgBUyv6kdnyTlgWj81Ay
""",
}


def main() -> int:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    web = "--web" in sys.argv
    argv = [arg for arg in sys.argv if arg != "--web"]
    with atheris.instrument_imports():
        from speed_kings.config import ConfigError, load_config
        from speed_kings.webconfig import load_web_config

    loader = load_web_config if web else load_config
    folder = Path(tempfile.mkdtemp(prefix="speedkings-atheris-"))
    path = folder / "fuzz.yaml"
    corpus = folder / "corpus"
    corpus.mkdir()
    for name, seed in (WEB_SEEDS if web else SEEDS).items():
        (corpus / name).write_bytes(seed)

    def one(data: bytes) -> None:
        path.write_bytes(data)
        try:
            loader(path)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            if len(lines) != len(exc.problems) or not all(
                line.startswith(f"{path}: ") for line in lines
            ):
                raise AssertionError(f"badly shaped message: {exc!s}") from None

    if not any(not arg.startswith("-") for arg in argv[1:]):
        argv.append(str(corpus))
    atheris.Setup(argv, one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
