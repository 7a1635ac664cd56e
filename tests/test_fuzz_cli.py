"""Drive a sample of the spec fuzzer's mutants (tests/fuzz_specs.py) through the real command
line, ``synthcv generate MUTANT --out DIR --count 2``: every one must end in a clean result —
exit 0 with an intact dataset, or exit 1/2 with a message and no manifest — never a traceback,
a crash (a signal), or a hang.

The mutants run in one child process (typer's CliRunner, so imports are paid once); the child
prints one JSON line per mutant, and a crash or hang of any of them fails this test with the
mutant's name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

N_SAMPLED = 20
SEED = 20260  # the spec fuzzer's seed: these are some of the mutants it checks through load_spec
PER_MUTANT_S = 60

DRIVER = textwrap.dedent(
    """
    import json, sys, signal, warnings
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from typer.testing import CliRunner
    from fuzz_specs import iter_mutants, prepare_workdir, write_mutant
    from synthcv.cli import _register, app
    from synthcv.format import open_dataset
    from synthcv.spec import load_spec


    # half the sample loads (and renders), half does not; valid specs of big images render
    # correctly but slowly (27 s per 16 Mpx sample on 2 cores): their validity is the load
    # fuzzer's business, not this test's
    def kind(path):
        try:
            s = load_spec(path)
        except Exception:
            return "bad"
        big = s.image.width * s.image.height * s.image.supersample**2 > (1 << 20)
        return "big" if big else "loads"

    warnings.simplefilter("ignore")
    _register()
    work = prepare_workdir(Path({work!r}))
    want = {{"loads": {n} // 2, "bad": {n} - {n} // 2}}
    for name, spec in iter_mutants(300, seed={seed}):
        if not any(want.values()):
            break
        path = write_mutant(name, spec, work)
        k = kind(path)
        if not want.get(k):
            continue
        want[k] -= 1
        out = work / ("out-" + name)
        signal.alarm({per})  # a hang kills the child: the parent names the last mutant started
        print(json.dumps({{"start": name}}), flush=True)
        res = CliRunner().invoke(
            app, ["generate", str(path), "--out", str(out), "--count", "2", "--no-track"]
        )
        signal.alarm(0)
        row = {{"name": name, "code": res.exit_code, "output": res.output[-2000:]}}
        exc = res.exception
        row["exception"] = None if exc is None or isinstance(exc, SystemExit) else repr(exc)
        row["manifest"] = (out / "manifest.json").exists()
        if res.exit_code == 0:
            row["verify"] = open_dataset(out).verify()
        print(json.dumps(row), flush=True)
    """
)


def test_sampled_mutants_through_generate_end_cleanly(tmp_path):
    script = DRIVER.format(
        tests=str(Path(__file__).parent),
        work=str(tmp_path / "work"),
        seed=SEED,
        n=N_SAMPLED,
        per=PER_MUTANT_S,
    )
    env_run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=PER_MUTANT_S * N_SAMPLED,
        env={**__import__("os").environ, "SYNTHCV_TRACKING": "0"},
    )
    lines = [json.loads(x) for x in env_run.stdout.splitlines() if x.startswith("{")]
    started = [x["start"] for x in lines if "start" in x]
    rows = [x for x in lines if "name" in x]
    assert env_run.returncode == 0, (
        f"the driver died (signal/crash/hang) in mutant {started[-1] if started else '?'}: "
        f"rc {env_run.returncode}\n{env_run.stderr[-3000:]}"
    )
    assert len(rows) == N_SAMPLED
    for r in rows:
        where = f"{r['name']}: {r['output']}"
        assert r["exception"] is None, where  # the CLI turned every error into a message
        assert "Traceback" not in r["output"], where
        assert r["code"] in (0, 1, 2), where
        if r["code"] == 0:
            assert r["manifest"] and r["verify"] == [], where
        else:
            assert not r["manifest"] and "error:" in r["output"], where
    codes = sorted(r["code"] for r in rows)
    assert codes.count(2) >= N_SAMPLED // 2 and 0 in codes, codes
