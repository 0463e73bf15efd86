"""Do the tests notice a broken assistant? The fast suite (`pytest -m "not slow"`) run under each broken
`Answerer` of tests/broken_answerer.py: one that refuses every question ("refuse") and one that answers every
question with a made-up claim citing the top passage ("answer").

For each mode it prints how many tests touch answers (called `Answerer.stream` with a valid question), how
many of those failed (noticed the broken assistant), the share, and the touched tests that still passed.
With `--modes real refuse answer` the real Answerer runs first and the tests it fails too are not counted.
Issue 29's bar: each broken Answerer fails at least half of the fast tests that touch answers.

Run: PYTHONPATH=. .venv/bin/python bench/broken_answerer.py [--modes real refuse answer]
[--files tests/test_answer.py ...] [--json out.json]. The whole fast suite takes minutes per mode on 2 cores;
`--files` runs only those files."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("refuse", "answer", "real")


def measure(mode: str, files: list[str], extra: list[str]) -> dict[str, Any]:
    """Run the fast tests under the broken answerer `mode`; its plugin's report (touched, failed)."""
    with tempfile.TemporaryDirectory(prefix="broken-answerer-") as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "ASSISTANT_BROKEN_ANSWERER": mode,
            "ASSISTANT_BROKEN_REPORT": str(report),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        }
        command = [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider", *extra, *files]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if not report.exists():
            sys.exit(f"pytest wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    result["summary"] = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    return result


def show(result: dict[str, Any], failing: set[str]) -> None:
    """`failing`: touched tests that fail with the real Answerer too (not counted as noticing)."""
    touched, failed = result["touched"], set(result["failed"])
    if result["mode"] == "real":
        print(f"== real: {len(touched)} tests touch answers; {len(failed)} of them fail with the real Answerer")
        for test in sorted(failed):
            print(f"   fails anyway: {test}")
        return
    touched = [t for t in touched if t not in failing]
    failed -= failing
    share = len(failed) / len(touched) if touched else 0.0
    print(f"== {result['mode']}: {len(failed)} of {len(touched)} tests that touch answers noticed ({share:.0%})")
    print(f"   pytest: {result['summary']}")
    for test in touched:
        if test not in failed:
            print(f"   still passed: {test}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=["refuse", "answer"],
        help="real: the real Answerer, run first; the tests it fails are then left out of the counts",
    )  # fmt: skip
    parser.add_argument("--files", nargs="+", default=[], help="only these test files (default: all of tests/)")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = parser.parse_args()
    modes = sorted(args.modes, key=lambda m: m != "real")
    results = [measure(mode, args.files, args.pytest_args) for mode in modes]
    failing = {t for r in results if r["mode"] == "real" for t in r["failed"]}
    for result in results:
        show(result, failing)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
