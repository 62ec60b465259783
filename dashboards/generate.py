"""Write the Speed Kings Grafana dashboards (dashboards/*.json) from the code in
speed_kings_dashboards/.

    python dashboards/generate.py            # (re)write dashboards/*.json
    python dashboards/generate.py --check    # exit 1 if a committed file is out of date
    python dashboards/generate.py --out DIR  # write somewhere else
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from speed_kings_dashboards import render_all  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the files that differ from the generated ones",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    rendered = render_all()
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"out of date: {out / name} (run: python dashboards/generate.py)")
        if stale:
            return 1
        print(f"{len(rendered)} dashboards up to date in {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
