"""The command line's one error path (synthcv.cli.errors): every bad invocation prints a message
naming what is wrong and where, exits 2 (usage/input) or 1 (runtime), prints no traceback
unless ``--debug``, and leaves no manifest or temporary shard behind."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
import typer
from typer.testing import CliRunner

from conftest_dataset_fixture import write_fixture_dataset
from synthcv.format.layout import RUN_FILE

REPO = Path(__file__).resolve().parents[1]

TINY_SPEC = """\
count: 1
image: {width: 16, height: 12}
objects:
  classes:
    cube: {asset: {primitive: cube}}
"""
EXPERIMENT = """\
name: quick
seeds: [0]
data: {a: {kind: samples, path: a.npz}}
train: {sources: {a: 1.0}, epochs: 1}
eval: [a]
"""


def _app() -> typer.Typer:
    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    return app


def _words(text: str) -> str:
    """Output as one line of words: rich draws usage errors in a box and wraps them."""
    for ch in "│╭╮╰╯─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def _invoke(*args: str, env: dict[str, str] | None = None):
    env = {"SYNTHCV_TRACKING": "0", "SYNTHCV_DEBUG": "0", "COLUMNS": "300", **(env or {})}
    return CliRunner(env=env).invoke(_app(), [str(a) for a in args])


def _assert_clean(out: Path) -> None:
    """Nothing half-written: no manifest, no temporary shard or file."""
    assert not (out / "manifest.json").exists(), out
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name] if out.is_dir() else []
    assert leftovers == [], leftovers


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace of bad inputs next to good ones (tests chdir here and use short paths)."""
    root = tmp_path_factory.mktemp("cli-errors")
    write_fixture_dataset(root / "ds")
    corrupt = write_fixture_dataset(root / "ds_corrupt")
    for m in ("rgb", "instance"):
        (corrupt / f"shards/shard-000000/000000.{m}.png").write_bytes(b"garbage")
    noshard = write_fixture_dataset(root / "ds_noshard")
    for p in sorted((noshard / "shards/shard-000001").iterdir()):
        p.unlink()
    (noshard / "shards/shard-000001").rmdir()
    (root / "afile").write_text("x")
    (root / "adir").mkdir()
    (root / "tiny.yaml").write_text(TINY_SPEC)
    (root / "exp.yaml").write_text(EXPERIMENT)
    (root / "bad.yaml").write_text("{not: yaml: [\n")
    (root / "scalar.yaml").write_text("3\n")
    (root / "mapping.yaml").write_text("a: 1\n")
    (root / "twice.yaml").write_text("name: a\nseeds: [0]\nname: b\n")
    (root / "ops_unknown.yaml").write_text("- {op: blur, sigmaa: 1}\n")
    np.savez(root / "empty.npz", x=np.zeros(3))
    np.savez(root / "zero.npz", images=np.zeros((0, 8, 8), np.uint8))
    (root / "badrun").mkdir()
    (root / "badrun" / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(512))
    (root / "norun").mkdir()
    (root / "other_run").mkdir()
    (root / "other_run" / RUN_FILE).write_text(json.dumps({"spec_hash": "0" * 64}))
    return root


# (id, argv, exit code, words the message must contain, output path that must stay clean)
CASES = [
    # generate
    ("generate --out file", ["generate", "tiny.yaml", "--no-track", "--out", "afile"], 2,
     ["Invalid value for '--out'", "afile exists and is not a directory"], None),
    ("generate --out /dev/null", ["generate", "tiny.yaml", "--no-track", "-o", "/dev/null"], 2,
     ["'--out'", "/dev/null exists and is not a directory"], None),
    ("generate spec is a dir", ["generate", "adir", "--no-track", "--out", "g1"], 2,
     ["Invalid value for 'spec'", "'adir' is a directory"], "g1"),
    ("generate spec missing", ["generate", "nosuch.yaml", "--no-track", "--out", "g2"], 2,
     ["error: nosuch.yaml", "file not found"], "g2"),
    ("generate spec not YAML", ["generate", "bad.yaml", "--no-track", "--out", "g3"], 2,
     ["error: bad.yaml", "YAML syntax error"], "g3"),
    ("generate --out of another run", ["generate", "tiny.yaml", "--no-track", "--out",
     "other_run"], 2, ["other_run holds a dataset of another run"], "other_run"),
    # inspect
    ("inspect missing", ["inspect", "nosuch"], 2, ["no such dataset directory: nosuch"], None),
    ("inspect shards/", ["inspect", "ds/shards"], 2,
     ["ds/shards is shards/ inside dataset ds", "pass the dataset directory ds"], None),
    ("inspect a file", ["inspect", "afile"], 2, ["afile is a file, not a dataset"], None),
    ("inspect empty dir", ["inspect", "adir"], 2,
     ["not a synthcv dataset (no manifest.json): adir"], None),
    ("inspect damaged", ["inspect", "ds_corrupt"], 1,
     ["checksum verification failed for ds_corrupt", "shards/shard-000000/000000.rgb.png"], None),
    # export / preview
    ("export corrupt image", ["export", "ds_corrupt", "-f", "coco", "--out", "c1.json"], 2,
     ["ds_corrupt/shards/shard-000000/000000.instance.png: not a readable PNG image"], None),
    ("export deleted shard", ["export", "ds_noshard", "-f", "coco", "--out", "c2.json"], 2,
     ["ds_noshard/shards/shard-000001/000002.instance.png: no such file"], None),
    ("export --out dir", ["export", "ds", "-f", "coco", "--out", "adir"], 2,
     ["Invalid value for '--out'", "adir is a directory"], None),
    ("export --format", ["export", "ds", "-f", "pascal"], 2,
     ["Invalid value for '--format'", "'bop'", "coco"], None),
    ("preview corrupt image", ["preview", "ds_corrupt", "--out", "p1.png"], 2,
     ["ds_corrupt/shards/shard-000000/000000.rgb.png: not a readable PNG image"], None),
    ("preview deleted shard", ["preview", "ds_noshard", "--out", "p2.png"], 2,
     ["ds_noshard/shards/shard-000001/000002.rgb.png: no such file"], None),
    ("preview --out dir", ["preview", "ds", "--out", "adir"], 2,
     ["Invalid value for '--out'", "adir is a directory"], None),
    ("preview not a dataset", ["preview", "adir", "--out", "p3.png"], 2,
     ["not a synthcv dataset (no manifest.json): adir"], None),
    # augment
    ("augment --op nosuch", ["augment", "ds", "-o", "a1", "--op", "nosuch", "--no-track"], 2,
     ["Invalid value for '--op'", "op: got 'nosuch', expected one of", "blur"], "a1"),
    ("augment --op bad range", ["augment", "ds", "-o", "a2", "--op", "blur:sigma=a..b",
     "--no-track"], 2, ["'--op'", "'blur:sigma=a..b'", "sigma: got 'a..b'"], "a2"),
    ("augment --op lo>hi", ["augment", "ds", "-o", "a3", "--op", "noise:sigma=5..1",
     "--no-track"], 2, ["'--op'", "sigma: expected a number or [lo, hi] with lo ≤ hi"], "a3"),
    ("augment --op not a number", ["augment", "ds", "-o", "a4", "--op", "blur:sigma=abc",
     "--no-track"], 2, ["'--op'", "sigma:", "got 'abc'"], "a4"),
    ("augment --op unknown key", ["augment", "ds", "-o", "a5", "--op", "blur:sigmaa=1",
     "--no-track"], 2, ["'--op'", "blur: unknown parameters ['sigmaa']"], "a5"),
    ("augment --op key without =", ["augment", "ds", "-o", "a6", "--op", "blur:sigma",
     "--no-track"], 2, ["'--op'", "expected key=value"], "a6"),
    ("augment --op empty", ["augment", "ds", "-o", "a7", "--op", "", "--no-track"], 2,
     ["'--op'", "op: got ''"], "a7"),
    ("augment no ops", ["augment", "ds", "-o", "a8", "--no-track"], 2,
     ["give at least one op"], "a8"),
    ("augment --out = source", ["augment", "ds", "-o", "ds", "--op", "blur", "--no-track"], 2,
     ["--out must differ from the input dataset"], None),
    ("augment --out file", ["augment", "ds", "-o", "afile", "--op", "blur", "--no-track"], 2,
     ["'--out'", "afile exists and is not a directory"], None),
    ("augment source not a dataset", ["augment", "adir", "-o", "a9", "--op", "blur",
     "--no-track"], 2, ["not a synthcv dataset (no manifest.json): adir"], "a9"),
    ("augment source missing", ["augment", "nosuch", "-o", "a10", "--op", "blur",
     "--no-track"], 2, ["no such dataset directory: nosuch"], "a10"),
    ("augment --config not YAML", ["augment", "ds", "-o", "a11", "-c", "bad.yaml",
     "--no-track"], 2, ["Invalid value for '--config'", "bad.yaml: not valid YAML"], "a11"),
    ("augment --config not a list", ["augment", "ds", "-o", "a12", "-c", "scalar.yaml",
     "--no-track"], 2, ["'--config'", "scalar.yaml: got int, expected a list of ops"], "a12"),
    ("augment --config unknown keys", ["augment", "ds", "-o", "a13", "-c", "mapping.yaml",
     "--no-track"], 2, ["'--config'", "mapping.yaml: unknown keys ['a']"], "a13"),
    ("augment --config unknown op key", ["augment", "ds", "-o", "a14", "-c", "ops_unknown.yaml",
     "--no-track"], 2, ["ops_unknown.yaml: ops[0] (blur): unknown parameters ['sigmaa']"],
     "a14"),
    ("augment --config missing", ["augment", "ds", "-o", "a15", "-c", "nosuch.yaml",
     "--no-track"], 2, ["nosuch.yaml: not found"], "a15"),
    ("augment corrupt image", ["augment", "ds_corrupt", "-o", "a16", "--op", "blur",
     "--no-track"], 2, ["ds_corrupt/shards/shard-000000/000000.rgb.png: not a readable PNG"],
     "a16"),
    ("augment deleted shard", ["augment", "ds_noshard", "-o", "a17", "--op", "blur",
     "--no-track"], 2, ["ds_noshard: shard shards/shard-000001 is missing"], "a17"),
    # experiment
    ("experiment missing config", ["experiment", "run", "nosuch.yaml", "--no-track"], 2,
     ["experiment config not found: nosuch.yaml"], None),
    ("experiment config not YAML", ["experiment", "run", "bad.yaml", "--no-track"], 2,
     ["error: bad.yaml: 1 problem(s)", "not valid YAML"], None),
    ("experiment config key twice", ["experiment", "run", "twice.yaml", "--no-track"], 2,
     ["error: twice.yaml: 1 problem(s)", "name: got this key twice in one mapping (lines 1 and "
      "3)"], None),
    ("augment --config key twice", ["augment", "ds", "-o", "a18", "-c", "twice.yaml",
     "--no-track"], 2, ["twice.yaml: name: got this key twice"], "a18"),
    ("experiment invalid config", ["experiment", "run", "mapping.yaml", "--no-track"], 2,
     ["error: mapping.yaml:", "a: unknown key 'a'", "name: missing"], None),
    ("experiment --seeds", ["experiment", "run", "exp.yaml", "--seeds", "a,b", "--no-track",
     "--out", "e1"], 2, ["Invalid value for '--seeds': got 'a,b'"], "e1"),
    ("experiment --epochs -1", ["experiment", "run", "exp.yaml", "--epochs", "-1", "--no-track",
     "--out", "e2"], 2, ["Invalid value for '--epochs': train.epochs: got -1"], "e2"),
    ("experiment missing data", ["experiment", "run", "exp.yaml", "--no-track", "--out", "e3"],
     2, ["samples file not found: a.npz"], "e3"),
    # genmodel
    ("genmodel train npz without images", ["genmodel", "train", "--data", "empty.npz", "--out",
     "r1", "--no-track"], 2, ["empty.npz: no 'images' array"], None),
    ("genmodel train 0 images", ["genmodel", "train", "--data", "zero.npz", "--out", "r2",
     "--no-track"], 2, ["zero.npz: 'images' holds no images"], None),
    ("genmodel train unknown --model", ["genmodel", "train", "--model", "nosuch", "--out", "r3",
     "--no-track"], 2, ["Invalid value for '--model'", "'nosuch' is not one of", "nade"], None),
    ("genmodel train --out file", ["genmodel", "train", "--out", "afile", "--no-track"], 2,
     ["'--out'", "afile exists and is not a directory"], None),
    ("genmodel sample corrupt checkpoint", ["genmodel", "sample", "badrun", "--out", "s1.png"],
     2, ["badrun/checkpoint.pt: not a readable checkpoint"], None),
    ("genmodel eval corrupt checkpoint", ["genmodel", "eval", "badrun"], 2,
     ["badrun/checkpoint.pt: not a readable checkpoint"], None),
    ("genmodel complete corrupt checkpoint", ["genmodel", "complete", "badrun", "--out",
     "s2.png"], 2, ["badrun/checkpoint.pt: not a readable checkpoint"], None),
    ("genmodel sample no checkpoint", ["genmodel", "sample", "norun", "--out", "s3.png"], 2,
     ["norun: no checkpoint.pt"], None),
    ("genmodel eval no checkpoint", ["genmodel", "eval", "norun"], 2,
     ["norun: no checkpoint.pt"], None),
    ("genmodel receptive-field --size 0", ["genmodel", "receptive-field", "--out", "rf.png",
     "--size", "0"], 2, ["Invalid value for '--size'"], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "code", "needles", "out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_invocation_names_the_problem(ws, monkeypatch, argv, code, needles, out):
    monkeypatch.chdir(ws)
    res = _invoke(*argv)
    words = _words(res.output)
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    for needle in needles:
        assert needle in words, (needle, words)
    if out is not None:
        _assert_clean(ws / out)


# ---- runtime failures (exit 1): simulated, since tests run as root (chmod stops nothing) ----


def _oserror(code: int, path: object) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    return spec


def test_generate_disk_full_while_writing_a_shard(tmp_path, monkeypatch):
    from synthcv.format import codecs

    def full(path, modality, arr):
        raise _oserror(errno.ENOSPC, path)

    monkeypatch.setattr(codecs, "write_modality", full)
    out = tmp_path / "out"
    res = _invoke("generate", _spec(tmp_path), "--out", out, "--no-track")
    assert res.exit_code == 1, res.output
    words = _words(res.output)
    assert f"error: no space left on device: {out}/shards/" in words
    assert "Traceback" not in res.output
    _assert_clean(out)
    assert not any((out / "shards").iterdir())  # no partial shard under any name


def test_generate_read_only_output(tmp_path, monkeypatch):
    out = tmp_path / "ro" / "out"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *a, **kw):
        if str(self).startswith(str(out.parent)):
            raise _oserror(errno.EROFS, self)
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    res = _invoke("generate", _spec(tmp_path), "--out", out, "--no-track")
    assert res.exit_code == 1, res.output
    assert "error: read-only file system: " + str(out) in _words(res.output)
    assert "Traceback" not in res.output and not out.exists()


def test_generate_permission_denied_writing_the_manifest(tmp_path, monkeypatch):
    from synthcv.format import writer

    real = writer.write_json_atomic

    def write(path, data, **kw):
        if Path(path).name == "manifest.json":
            raise _oserror(errno.EACCES, path)
        return real(path, data, **kw)

    monkeypatch.setattr(writer, "write_json_atomic", write)
    out = tmp_path / "out"
    res = _invoke("generate", _spec(tmp_path), "--out", out, "--no-track")
    assert res.exit_code == 1, res.output
    assert f"error: permission denied: {out}/manifest.json" in _words(res.output)
    _assert_clean(out)  # the finished shard stays for a resume; no manifest


def test_generate_renderer_crash_is_a_runtime_error(tmp_path, monkeypatch):
    from synthcv.render import tiny

    def crash(self, scene):
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny.TinyRenderer, "render", crash)
    out = tmp_path / "out"
    res = _invoke("generate", _spec(tmp_path), "--out", out, "--no-track")
    assert res.exit_code == 1, res.output
    words = _words(res.output)
    assert "error: sample 0 of" in words and "failed in tiny: RuntimeError: boom" in words
    assert "Traceback" not in res.output
    _assert_clean(out)


def test_augment_and_export_disk_full(ws, tmp_path, monkeypatch):
    from synthcv.format import codecs

    monkeypatch.setattr(
        codecs, "write_modality", lambda p, m, a: (_ for _ in ()).throw(_oserror(28, p))
    )
    res = _invoke("augment", ws / "ds", "--out", tmp_path / "aug", "--op", "blur", "--no-track")
    assert res.exit_code == 1, res.output
    assert f"no space left on device: {tmp_path / 'aug'}/shards/" in _words(res.output)
    _assert_clean(tmp_path / "aug")

    real = pathlib.Path.write_text

    def write_text(self, *a, **kw):
        if self.name.endswith(".tmp"):  # the atomic write's temporary file
            raise _oserror(errno.ENOSPC, self)
        return real(self, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    target = tmp_path / "coco" / "a.json"
    res = _invoke("export", ws / "ds", "-f", "coco", "--out", target)
    assert res.exit_code == 1, res.output
    assert "no space left on device" in res.output and "Traceback" not in res.output
    assert list(target.parent.iterdir()) == []  # the temporary file is gone


def test_unexpected_errors_exit_1_and_debug_shows_them(ws, monkeypatch):
    from synthcv.tools import inspect as inspect_tool

    def broken(ds, verify=True):
        raise KeyError("samples")

    monkeypatch.setattr(inspect_tool, "summarize", broken)
    res = _invoke("inspect", ws / "ds")
    assert res.exit_code == 1, res.output
    words = _words(res.output)
    assert "error: unexpected KeyError: 'samples'" in words and "--debug" in words
    assert "Traceback" not in res.output
    res = _invoke("--debug", "inspect", ws / "ds")
    assert isinstance(res.exception, KeyError)  # re-raised: python prints the traceback
    res = _invoke("inspect", ws / "ds", env={"SYNTHCV_DEBUG": "1"})
    assert isinstance(res.exception, KeyError)


def test_a_ctrl_c_inside_a_pydantic_serializer_is_an_interrupt(ws, monkeypatch):
    """pydantic-core wraps what a Python serializer raises, KeyboardInterrupt included: an
    interrupt landing while a spec is dumped still exits 130, not 2 ('bad input')."""
    from synthcv.spec import StrictModel
    from synthcv.tools import inspect as inspect_tool

    class Dumped(StrictModel):
        x: int = 1

        @pydantic.model_serializer(mode="wrap")
        def _ctrl_c(self, handler):
            raise KeyboardInterrupt

    def dumping(ds, verify=True):
        return Dumped().model_dump()

    monkeypatch.setattr(inspect_tool, "summarize", dumping)
    _assert_inspect_is_interrupted(ws)


def _assert_inspect_is_interrupted(ws) -> None:
    """``synthcv inspect`` (its summary patched to raise) exits 130 as an interrupt."""
    # the interrupt path ignores a second Ctrl-C while it exits; in this (pytest) process that
    # must not outlive the test: subprocesses would inherit SIGINT ignored and never stop
    previous = signal.getsignal(signal.SIGINT)
    try:
        res = _invoke("inspect", ws / "ds")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output and "Traceback" not in res.output


def test_a_ctrl_c_while_a_class_is_built_is_an_interrupt(ws, monkeypatch):
    """CPython 3.11 wraps what a class attribute's __set_name__ raises in a RuntimeError whose
    cause is the KeyboardInterrupt (seen when a Ctrl-C lands in a dataclass being defined
    during a lazy import): it still exits 130, not 1 ('unexpected RuntimeError')."""
    from synthcv.tools import inspect as inspect_tool

    class Interrupting:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    def defining(ds, verify=True):
        return type("Late", (), {"field": Interrupting()})

    monkeypatch.setattr(inspect_tool, "summarize", defining)
    _assert_inspect_is_interrupted(ws)


def test_subprocess_prints_no_traceback_unless_debug(tmp_path):
    env = {**os.environ, "SYNTHCV_TRACKING": "0", "COLUMNS": "200"}
    env.pop("SYNTHCV_DEBUG", None)
    cmd = [sys.executable, "-m", "synthcv"]
    res = subprocess.run([*cmd, "inspect", str(tmp_path / "x")], capture_output=True, text=True,
                         env=env, timeout=60)  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.startswith("error: no such dataset directory: ")
    assert "Traceback" not in res.stderr + res.stdout
    res = subprocess.run([*cmd, "--debug", "inspect", str(tmp_path / "x")], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert res.returncode == 1 and "Traceback" in res.stderr
    assert "FileNotFoundError: no such dataset directory" in res.stderr


def test_every_command_takes_the_one_error_path():
    from typer.main import get_command

    from synthcv.cli import errors

    def commands(cmd, path=()):
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from commands(sub, (*path, name))
        if not hasattr(cmd, "commands"):
            yield path, cmd

    found = dict(commands(get_command(_app())))
    assert len(found) >= 10
    others = {p: type(c).__name__ for p, c in found.items() if not isinstance(c, errors.Command)}
    assert others == {}


def test_augment_help_shows_the_seed_formula():
    res = _invoke("augment", "--help")
    assert res.exit_code == 0
    assert "Generator([seed, i])" in _words(res.output)


def test_an_unguarded_script_with_spawned_workers_is_told_about_the_main_guard(tmp_path):
    """Spawned workers (Cycles') re-import the calling script: a generate() call at its top
    level runs again inside every worker, which dies. The error says what to change."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import dataclasses\n"
        "from synthcv import render\n"
        "from synthcv.pipeline import generate\n"
        "from synthcv.spec import load_spec\n"
        "tiny = render.backends()['tiny']\n"
        "render.backends()['tiny'] = dataclasses.replace(tiny, fork_safe=False)  # as Cycles\n"
        f"spec = load_spec({TINY_SPEC + 'outputs: {shard_size: 2}'!r}).with_count(8)\n"
        f"generate(spec, {str(tmp_path / 'out')!r}, workers=2, progress=False)\n"
    )
    env = {**os.environ, "SYNTHCV_TRACKING": "0"}
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode != 0
    assert 'must do so under `if __name__ == "__main__":`' in res.stderr
