"""Fuzz ``load_spec`` and preflight with ~300 mutated example specs (tests/fuzz_specs.py).

Each mutant must load, or fail with a SpecError whose every line names a field path (or the
file); never another exception, never slower than a per-spec limit, and memory stays bounded.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fuzz_specs import iter_mutants, prepare_workdir, reproducers, seed_corpus, write_mutant
from synthcv.preflight import check_resources
from synthcv.spec import SpecError, load_spec

N_MUTANTS = 300
SEED = 20260
PER_SPEC_S = 10.0  # wall-clock limit of one load_spec + check_resources
TOTAL_S = 55.0
MAX_RSS_GROWTH_MB = 200  # beyond what the valid examples need (measured: 0)

# A problem line starts with where it is: a field path (keys, [indices]), (top level), (file),
# or a file-level YAML/read message; then ": ".
_QUOTED = r'\["(?:[^"\\]|\\.)*"\]'  # a key that is not a plain word: ["a b"]
_PATH = rf"(\(top level\)|\(file\)|(?:[\w\-]+|{_QUOTED})(?:\.[\w\-]+|\[\d+\]|{_QUOTED})*)"
PROBLEM = re.compile(
    rf"^({_PATH}|YAML syntax error at (line \d+, column \d+|character \d+)|file not found): "
)


class _TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise _TooSlow


def _check(name: str, spec, workdir: Path) -> str:
    """'loaded', 'load-error' or 'preflight-error'; AssertionError on anything else."""
    source = spec if isinstance(spec, dict) else write_mutant(name, spec, workdir)
    try:
        loaded = load_spec(source)
    except SpecError as exc:
        bad = [p for p in exc.problems if not PROBLEM.match(p)]
        assert exc.problems and not bad, f"{name}: lines without a field path: {bad}"
        return "load-error"
    problems = check_resources(loaded)
    bad = [p for p in problems if not PROBLEM.match(p)]
    assert not bad, f"{name}: preflight lines without a field path: {bad}"
    return "preflight-error" if problems else "loaded"


def _run(cases, workdir: Path) -> tuple[Counter, list[str]]:
    outcomes: Counter = Counter()
    failures: list[str] = []
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name, spec in cases:
            t = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, PER_SPEC_S)
            try:
                outcomes[_check(name, spec, workdir)] += 1
            except _TooSlow:
                failures.append(f"{name}: over {PER_SPEC_S} s")
            except AssertionError as exc:
                failures.append(str(exc)[:500])
            except Exception as exc:  # the point of the test: nothing but SpecError escapes
                failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert time.monotonic() - t < PER_SPEC_S + 1
    finally:
        signal.signal(signal.SIGALRM, old)
    return outcomes, failures


def measure_mutants(workdir: str) -> dict:
    """Load and preflight every mutant; outcomes, failures, seconds and max-RSS growth. Runs in
    a fresh interpreter (see the test), because a process's peak RSS only ever rises: inside a
    long pytest session an earlier test's peak would hide this one's growth, and alone the
    same growth would be counted from a lower start. The unmutated examples are loaded and
    preflighted first, so what is measured is the mutants' cost, not importing bpy (~200 MB)
    or building every bundled HDRI once."""
    _run(seed_corpus(), Path(workdir))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.monotonic()
    mutants = list(iter_mutants(N_MUTANTS, seed=SEED))
    outcomes, failures = _run(mutants, Path(workdir))
    return {
        "count": len(mutants),
        "outcomes": dict(outcomes),
        "failures": failures,
        "elapsed": time.monotonic() - t,
        "grown_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024,
    }


def test_mutated_specs_load_or_fail_cleanly(tmp_path, capsys):
    workdir = prepare_workdir(tmp_path / "work")
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import test_fuzz_spec as t; "
        f"print(json.dumps(t.measure_mutants({str(workdir)!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TOTAL_S * 3
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    outcomes, failures, elapsed, grown = (
        Counter(r["outcomes"]),
        r["failures"],
        r["elapsed"],
        r["grown_mb"],
    )
    with capsys.disabled():
        print(
            f"\nfuzz: {N_MUTANTS} mutants in {elapsed:.1f} s: {outcomes['loaded']} load and pass "
            f"preflight, {outcomes['load-error']} clean load errors, "
            f"{outcomes['preflight-error']} clean preflight errors, {len(failures)} failures; "
            f"max RSS grew {grown:.0f} MB"
        )
    assert r["count"] == N_MUTANTS
    assert not failures, "\n".join(failures)
    assert sum(outcomes.values()) == N_MUTANTS
    assert outcomes["loaded"] > 0 and outcomes["load-error"] > 0
    assert elapsed < TOTAL_S
    assert grown < MAX_RSS_GROWTH_MB


def test_reproducers_fail_cleanly(tmp_path):
    workdir = prepare_workdir(tmp_path / "work")
    outcomes, failures = _run(list(reproducers()), workdir)
    assert not failures, "\n".join(failures)
    assert outcomes["loaded"] == 0  # every reproducer is refused, at load or in preflight


def test_mutants_are_deterministic():
    a = [n for n, _ in iter_mutants(40, seed=1)]
    assert a == [n for n, _ in iter_mutants(40, seed=1)]
    assert a != [n for n, _ in iter_mutants(40, seed=2)]


@pytest.mark.parametrize("seed", [0])
def test_written_mutants_are_files_the_cli_can_take(tmp_path, seed):
    workdir = prepare_workdir(tmp_path / "work")
    for name, spec in iter_mutants(30, seed=seed):
        path = write_mutant(name, spec, workdir)
        assert path.is_file() and path.stat().st_size < 10**6
