"""MLflow tracking for every synthcv run (generate, augment, genmodel train, experiments).

One context manager, :func:`tracked_run`, gives every command the same record: parameters,
per-step metrics, artifacts, tags, and *lineage* — the content hash of every input dataset —
so a result can always be traced to the exact data that produced it.

What each command records is written here too, once: :func:`track_generate`,
:func:`track_augment`, :func:`track_genmodel_train` and :func:`track_experiment`. Commands hand
them their work and its results; no other module imports mlflow.

- Default store: a SQLite file ``mlflow.db`` with artifacts in ``mlartifacts/``, both under the
  current working directory. ``MLFLOW_TRACKING_URI`` (the standard variable) overrides it.
- ``SYNTHCV_TRACKING=0`` (or ``enabled=False``) turns tracking off: the same methods exist and
  do nothing, so callers never branch.
- Everything is local and offline; mlflow is imported only when a tracked run starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_EXPERIMENT = "synthcv"
_FALSE = {"0", "false", "no", "off"}


def tracking_enabled(enabled: bool | None = None) -> bool:
    """Whether runs are tracked: an explicit flag wins, else ``SYNTHCV_TRACKING`` (default on)."""
    if enabled is not None:
        return bool(enabled)
    return os.environ.get("SYNTHCV_TRACKING", "1").strip().lower() not in _FALSE


def default_tracking_uri(root: str | os.PathLike[str] | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store under ``root`` (default: cwd)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    base = Path(root) if root is not None else Path.cwd()
    return f"sqlite:///{(base / 'mlflow.db').resolve()}"


def dataset_hash(path: str | os.PathLike[str]) -> str:
    """Content hash of a data input, for lineage (see :func:`synthcv.format.content_digest`:
    a dataset directory is its manifest's sha256, any other file its own)."""
    from synthcv.format import content_digest

    return content_digest(path)


#: MLflow stores a dataset digest in 36 characters (its ``datasets`` table); the full sha256
#: stays in the run's ``synthcv.input.<name>`` tag and ``input.<name>`` param.
MLFLOW_DIGEST_CHARS = 36


@dataclass(frozen=True)
class DatasetRecord:
    """One dataset a run read or wrote, as MLflow's Datasets panel shows it.

    ``digest`` is the content hash of exactly the data used (a split's own arrays, not the file
    it came from); ``source`` the local path it was read from (absolute; None for data with no
    file of ours, e.g. scikit-learn's digits); ``schema`` either ``{"columns": {name: type}}``
    (a table: type one of long, double, string, boolean, array) or ``{"tensors": {name:
    {"dtype": ..., "shape": [...]}}}`` (arrays, -1 for the sample axis); ``profile`` a few
    JSON-able facts (rows, split).
    """

    name: str
    digest: str
    source: str | None = None
    schema: Mapping[str, Any] | None = None
    profile: Mapping[str, Any] | None = None


def dataset_record(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    digest: str | None = None,
    profile: Mapping[str, Any] | None = None,
) -> DatasetRecord:
    """A :class:`DatasetRecord` for a synthcv dataset directory or a data file on disk: its
    content hash (unless ``digest`` is given), absolute path, and the schema read from the
    dataset's ``samples.parquet`` columns or an ``.npz`` file's arrays."""
    p = Path(path).resolve()
    schema, facts = _schema_of(p)
    return DatasetRecord(
        name=name or p.name,
        digest=digest or dataset_hash(p),
        source=str(p),
        schema=schema,
        profile={**facts, **(profile or {})} or None,
    )


def _arrow_type(t: Any) -> str | None:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "long"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _arrow_type(t.value_type)
        return f"array<{inner}>" if inner else None
    return None  # null columns (a modality no sample has) carry no type


def _schema_of(p: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(schema, profile facts) of a dataset directory or ``.npz`` file; (None, {}) otherwise."""
    if p.is_dir() and (p / "samples.parquet").is_file():
        import pyarrow.parquet as pq

        schema = pq.read_schema(p / "samples.parquet")
        columns = {f.name: k for f in schema if (k := _arrow_type(f.type)) is not None}
        facts: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((p / "manifest.json").read_text())
            facts = {
                "samples": manifest.get("count"),
                "spec_hash": manifest.get("spec_hash"),
                "backend": (manifest.get("backend") or {}).get("name"),
            }
        return {"columns": columns}, {k: v for k, v in facts.items() if v is not None}
    if p.is_file() and p.suffix == ".npz":
        import numpy as np

        with contextlib.suppress(OSError, ValueError), np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
            tensors = {
                k: {"dtype": str(a.dtype), "shape": [-1, *a.shape[1:]] if a.ndim else []}
                for k, a in arrays.items()
            }
            rows = {len(a) for a in arrays.values() if a.ndim}
            return {"tensors": tensors}, ({"rows": rows.pop()} if len(rows) == 1 else {})
    return None, {}


def _as_record(name: str, value: str | DatasetRecord) -> DatasetRecord:
    return value if isinstance(value, DatasetRecord) else DatasetRecord(name, str(value))


def _mlflow_schema(schema: Mapping[str, Any] | None) -> str | None:
    """A record's schema in MLflow's own JSON form (``{"mlflow_colspec": [...]}``)."""
    if not schema:
        return None
    import numpy as np
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec
    from mlflow.types.schema import Array

    specs: list[Any] = []
    for col, kind in (schema.get("columns") or {}).items():
        if kind.startswith("array<"):
            specs.append(ColSpec(Array(DataType[kind[6:-1]]), col))
        else:
            specs.append(ColSpec(DataType[kind], col))
    for col, t in (schema.get("tensors") or {}).items():
        dtype = np.dtype(t["dtype"])
        if dtype.kind in "US":  # MLflow takes strings without a size ("<U123" is refused)
            dtype = np.dtype(str)
        with contextlib.suppress(Exception):  # a dtype MLflow cannot express is left out
            specs.append(TensorSpec(dtype, tuple(t["shape"]), col))
    return json.dumps({"mlflow_colspec": Schema(specs).to_dict()}) if specs else None


def _log_datasets(client: Any, run_id: str, records: list[DatasetRecord], context: str) -> None:
    """Attach datasets to a run as MLflow dataset inputs (``context`` input/training/output…):
    a local source path where there is one, the schema, the profile and the digest."""
    if not records:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag

    entries = []
    for rec in records:
        source = {"uri": rec.source} if rec.source else {"url": f"synthcv://{rec.name}"}
        ds = Dataset(
            name=rec.name,
            digest=str(rec.digest)[:MLFLOW_DIGEST_CHARS],
            source_type="local" if rec.source else "http",
            source=json.dumps(source),
            schema=_mlflow_schema(rec.schema),
            profile=json.dumps(dict(rec.profile), default=str) if rec.profile else None,
        )
        entries.append(DatasetInput(ds, [InputTag("mlflow.data.context", context)]))
    client.log_inputs(run_id, datasets=entries)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class NullRun:
    """Tracking switched off: every method accepts the same arguments and does nothing."""

    run_id: str | None = None
    enabled = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, obj: Any, name: str) -> None:
        pass

    def log_table(self, rows: list[Mapping[str, Any]], name: str) -> None:
        pass

    def log_figure(self, fig: Any, name: str) -> None:
        pass

    def log_model(self, model: Any, name: str = "model", **kwargs: Any) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass


class TrackedRun(NullRun):
    """A live MLflow run. Values that MLflow cannot store (NaN metrics, long params) are
    handled here so callers can log plain Python values."""

    enabled = True

    def __init__(self, mlflow: Any, run: Any) -> None:
        self._mlflow = mlflow
        self.run_id = run.info.run_id
        self.run = run

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params(_param_values(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if clean := _metric_values(metrics):
            self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, obj: Any, name: str) -> None:
        self._mlflow.log_dict(obj, name)

    def log_table(self, rows: list[Mapping[str, Any]], name: str) -> None:
        """A list of row dicts as a JSON table artifact (readable by ``mlflow.load_table``)."""
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        table = {c: [r.get(c) for r in rows] for c in cols}
        if not name.endswith(".json"):
            name += ".json"
        self._mlflow.log_table(table, artifact_file=name)

    def log_figure(self, fig: Any, name: str) -> None:
        self._mlflow.log_figure(fig, name)

    def log_model(self, model: Any, name: str = "model", **kwargs: Any) -> None:
        """Log a torch module as an MLflow model that ``mlflow models serve`` can serve."""
        import mlflow.pytorch
        import torch

        kwargs.setdefault("pip_requirements", [f"torch=={torch.__version__.split('+')[0]}"])
        mlflow.pytorch.log_model(model, name=name, **kwargs)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them: flattened with dots, unset (None) values left out (not
    logged as "None"), lists as JSON, each cut to MLflow's 6000 characters (the full config is
    an artifact anyway)."""
    flat = {
        k: (json.dumps(v) if isinstance(v, list | tuple) else v)
        for k, v in _flatten(params).items()
        if v is not None
    }
    return {_safe_name(k): str(v)[:6000] for k, v in flat.items()}


def _metric_values(metrics: Mapping[str, float]) -> dict[str, float]:
    """Finite metrics only: MLflow would reject or misplot NaN and infinities."""
    return {
        _safe_name(k): float(v)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    }


_NAME_BAD = re.compile(r"[^\w./\- :]")


def _safe_name(name: str) -> str:
    """MLflow accepts only letters, digits, _ - . / space and : in metric and param names."""
    return _NAME_BAD.sub("_", str(name))


#: The MLflow UI opens an experiment on its GenAI "Overview" (traces) unless the experiment
#: says it holds model training runs; synthcv's runs are data and model runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def _ensure_experiment(client: Any, name: str, uri: str, local_default: bool) -> str:
    """The id of experiment ``name``, created if missing (artifacts beside a default local
    store), and tagged as a training experiment unless someone chose its kind already."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        for key, value in EXPERIMENT_KIND.items():
            if key not in exp.tags:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    artifact_location = None
    if local_default and uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        artifact_location = (db.parent / "mlartifacts").as_uri()
    return client.create_experiment(
        name, artifact_location=artifact_location, tags=dict(EXPERIMENT_KIND)
    )


@contextlib.contextmanager
def tracked_run(
    kind: str,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | DatasetRecord] | None = None,
    run_name: str | None = None,
    *,
    enabled: bool | None = None,
    experiment: str | None = None,
    root: str | os.PathLike[str] | None = None,
    nested: bool = False,
) -> Iterator[NullRun]:
    """Open an MLflow run of ``kind`` ("generate", "genmodel-train", "experiment", ...).

    ``params`` are logged (nested dicts flattened with dots); ``inputs`` maps an input's name to
    its content hash (see :func:`dataset_hash`) or to a :class:`DatasetRecord` and is recorded
    three ways: as a tag ``synthcv.input.<name>``, as a param ``input.<name>`` (both the full
    hash), and as an MLflow dataset input (source path, schema, profile, the hash's first 36
    characters as its digest). ``experiment`` defaults to ``SYNTHCV_EXPERIMENT`` or "synthcv";
    ``root`` is where the default local store lives (cwd if None). A failure inside the block
    marks the run FAILED (an interrupt KILLED) and re-raises.
    """
    if not tracking_enabled(enabled):
        yield NullRun()
        return
    _no_telemetry()
    import mlflow
    from mlflow.tracking._tracking_service import utils as mlflow_uri_state

    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ; remember both the
    # user's variable and mlflow's global so a run never leaks its store into the next one.
    prev_env = os.environ.get("MLFLOW_TRACKING_URI")
    prev_global = mlflow_uri_state._tracking_uri
    uri = default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    try:
        exp_name = experiment or os.environ.get("SYNTHCV_EXPERIMENT", DEFAULT_EXPERIMENT)
        client = mlflow.MlflowClient(uri)
        exp_id = _ensure_experiment(client, exp_name, uri, local_default=prev_env is None)
        records = [_as_record(k, v) for k, v in (inputs or {}).items()]
        with _mlflow_run(mlflow, client, kind, params, records, run_name, exp_id, nested) as tr:
            yield tr
    finally:
        mlflow_uri_state.set_tracking_uri(prev_global)
        if prev_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = prev_env


def _no_telemetry() -> None:
    """synthcv works offline: MLflow's usage telemetry (on by default since 3.x) would try to
    reach a server at every run. ``MLFLOW_DISABLE_TELEMETRY=false`` set by the user wins."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _run_tags(kind: str, records: list[DatasetRecord]) -> dict[str, str]:
    from synthcv._version import __version__

    tags = {"synthcv.kind": kind, "synthcv.version": __version__}
    tags.update({f"synthcv.input.{r.name}": r.digest for r in records})
    return tags


@contextlib.contextmanager
def _mlflow_run(
    mlflow: Any,
    client: Any,
    kind: str,
    params: Mapping[str, Any] | None,
    records: list[DatasetRecord],
    run_name: str | None,
    exp_id: str,
    nested: bool,
) -> Iterator[TrackedRun]:
    tags = _run_tags(kind, records)
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags, nested=nested)
    tr = TrackedRun(mlflow, run)
    with _closed_with_status(lambda status: mlflow.end_run(status=status)):
        if params:
            tr.log_params(params)
        if records:
            tr.log_params({f"input.{r.name}": r.digest for r in records})
            _log_datasets(client, tr.run_id, records, "input")
        yield tr


@contextlib.contextmanager
def _closed_with_status(close: Callable[[str], Any]) -> Iterator[None]:
    """Run the block, then ``close`` the run FINISHED, KILLED (Ctrl-C) or FAILED (an error,
    re-raised)."""
    status = "FINISHED"
    try:
        yield
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        close(status)


# ------------------------------------------------------- runs recorded beside the work


class BackgroundRun:
    """A run recorded by a helper process while the work goes on, for short commands.

    Importing mlflow and opening its store take 2-3 s; a ``generate`` of a few samples takes
    about as long. The helper (:func:`_agent_main`) starts at once, imports mlflow, opens the
    run (RUNNING, so it shows while the work goes on) and waits; at the end it gets the tags,
    metrics, output datasets and artifacts in one message and closes the run. The command pays
    only for what is left of the start-up and that last write (README, "What tracking
    costs"). A helper that fails costs a warning, never the work: the dataset is complete.
    """

    enabled = True

    def __init__(
        self,
        kind: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, str | DatasetRecord],
        run_name: str,
        *,
        experiment: str | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        records = [_as_record(k, v) for k, v in inputs.items()]
        start = {
            "uri": default_tracking_uri(root),
            "local_default": "MLFLOW_TRACKING_URI" not in os.environ,
            "experiment": experiment or os.environ.get("SYNTHCV_EXPERIMENT", DEFAULT_EXPERIMENT),
            "run_name": run_name,
            "tags": _run_tags(kind, records),
            "params": _param_values({**params, **{f"input.{r.name}": r.digest for r in records}}),
            "inputs": [asdict(r) for r in records],
            "start_ms": int(time.time() * 1000),
        }
        self._end: dict[str, Any] = {"tags": {}, "metrics": {}, "outputs": [], "artifacts": []}
        self.scratch = Path(tempfile.mkdtemp(prefix="synthcv-run-"))
        # A session of its own: the terminal's Ctrl-C reaches the command, which then reports
        # the run KILLED, instead of killing the helper before it can.
        self._stderr = open(self.scratch / "agent.log", "w+")  # noqa: SIM115 (closed in finish)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from synthcv.tracking import _agent_main; _agent_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(start, default=str) + "\n")
        self._proc.stdin.flush()
        self.run_id: str | None = None

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._end["tags"].update({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._end["metrics"].update(_metric_values(metrics))

    def log_output(self, record: DatasetRecord) -> None:
        """A dataset the run wrote (MLflow shows it with context ``output``)."""
        self._end["outputs"].append(asdict(record))

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Copied into the run's artifacts when the run closes (so the file must exist until
        then: put temporary files in :attr:`scratch`)."""
        self._end["artifacts"].append(str(Path(path).resolve()))

    def finish(self, status: str, timeout: float = 300.0) -> None:
        """Send the end of the run and wait for the helper to record it."""
        end = {**self._end, "status": status, "end_ms": int(time.time() * 1000)}
        try:
            out, _ = self._proc.communicate(json.dumps(end) + "\n", timeout=timeout)
            self._stderr.seek(0)
            err = self._stderr.read().strip().splitlines()
        except (subprocess.TimeoutExpired, OSError) as exc:
            self._proc.kill()
            self._proc.communicate()
            _warn(f"MLflow tracking did not finish ({exc}); the run may stay RUNNING")
            return
        finally:
            self._stderr.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self._proc.returncode != 0 or not out.strip():
            _warn(f"MLflow tracking failed: {err[-1] if err else 'no message'}")
            return
        self.run_id = json.loads(out.strip().splitlines()[-1])["run_id"]


def _warn(message: str) -> None:
    print(f"warning: {message} (the work itself is complete)", file=sys.stderr)


@contextlib.contextmanager
def background_run(
    kind: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str | DatasetRecord],
    run_name: str,
    **where: Any,
) -> Iterator[BackgroundRun]:
    """A :class:`BackgroundRun` closed FINISHED, FAILED (an error) or KILLED (an interrupt)."""
    run = BackgroundRun(kind, params, inputs, run_name, **where)
    with _closed_with_status(run.finish):
        yield run


def _agent_main() -> None:
    """The helper behind :class:`BackgroundRun`: line 1 of stdin opens the run, line 2 closes
    it; prints ``{"run_id": ...}``. No line 2 (the command died) closes the run KILLED."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _no_telemetry()
    start = json.loads(sys.stdin.readline())
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient(start["uri"])
    exp_id = _ensure_experiment(
        client, start["experiment"], start["uri"], local_default=start["local_default"]
    )
    run = client.create_run(
        exp_id, start_time=start["start_ms"], tags=start["tags"], run_name=start["run_name"]
    )
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in start["params"].items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[i : i + 100])
    _log_datasets(client, run_id, [DatasetRecord(**r) for r in start["inputs"]], "input")
    line = sys.stdin.readline()
    if not line:
        client.set_terminated(run_id, "KILLED")
        sys.stderr.flush()
        os._exit(0)
    end = json.loads(line)
    metrics = [Metric(k, v, end["end_ms"], 0) for k, v in end["metrics"].items()]
    tags = [RunTag(k, v) for k, v in end["tags"].items()]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    _log_datasets(client, run_id, [DatasetRecord(**r) for r in end["outputs"]], "output")
    for path in end["artifacts"]:
        client.log_artifact(run_id, path)
    client.set_terminated(run_id, end["status"], end_time=end["end_ms"])
    print(json.dumps({"run_id": run_id}), flush=True)
    sys.stderr.flush()
    # Everything is committed; skip the interpreter's shutdown, where MLflow's worker threads
    # and exit hooks take about a second the command would wait for.
    os._exit(0)


def ui_target(
    root: str | os.PathLike[str] | None = None, experiment: str | None = None
) -> tuple[str, str]:
    """(store URI, experiment id) that ``synthcv ui`` shows: the store runs log to here (the
    default ``mlflow.db`` under ``root``/cwd, or ``MLFLOW_TRACKING_URI``) and its synthcv
    experiment. A missing default store or experiment is an input error, named."""
    uri = default_tracking_uri(root)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise FileNotFoundError(
            f"no MLflow store here: {uri[len('sqlite:///') :]} does not exist; run a tracked "
            "command in this folder first, or set MLFLOW_TRACKING_URI"
        )
    name = experiment or os.environ.get("SYNTHCV_EXPERIMENT", DEFAULT_EXPERIMENT)
    _no_telemetry()
    import mlflow

    exp = mlflow.MlflowClient(uri).get_experiment_by_name(name)
    if exp is None:
        raise FileNotFoundError(f"{uri} holds no experiment {name!r} (SYNTHCV_EXPERIMENT)")
    return uri, exp.experiment_id


def ui_url(host: str, port: int, experiment_id: str) -> str:
    """The experiment's runs table. MLflow 3's UI opens an experiment on its GenAI overview
    unless the browser chose "Model training" (it remembers that, and ignores the
    experiment's ``mlflow.experimentKind`` tag); ``workflowType=machine_learning`` in the URL
    chooses it."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The MLflow UI server for ``uri`` (artifacts served from where the runs put them)."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
            "--port", str(port)]  # fmt: skip


def write_temp_json(obj: Any, name: str) -> Path:
    """Write ``obj`` as JSON into a fresh temp dir (for artifacts that must be files)."""
    d = Path(tempfile.mkdtemp(prefix="synthcv-"))
    p = d / name
    p.write_text(json.dumps(obj, indent=2, default=str))
    return p


# ------------------------------------------------------------------ what each command records


def track_generate(
    generate: Callable[[], Mapping[str, Any]],
    *,
    spec_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    count: int,
    workers: int,
    backend: str,
    spec_hash: str,
    contact_sheet: Callable[[Path], Any] | None = None,
    enabled: bool | None = None,
) -> Mapping[str, Any]:
    """Run ``generate()`` (it renders the dataset into ``out`` and returns its manifest) as a
    "generate" run and return the manifest.

    Records the spec path, output directory, sample count, workers, backend and spec hash as
    params; the dataset as the run's output dataset (path, schema, digest) and its content hash
    as tag ``synthcv.output.dataset`` (the lineage key its consumers log as their input); the
    spec hash as a tag; ``samples`` as a metric; ``manifest.json`` plus a contact sheet as
    artifacts. ``contact_sheet(png_path)`` draws that sheet (the caller knows how to read a
    dataset; None: no sheet). Recorded by a :class:`BackgroundRun`, so MLflow's start-up
    overlaps the rendering.
    """
    if not tracking_enabled(enabled):
        return generate()
    params = {
        "spec": str(spec_path),
        "out": str(out),
        "count": count,
        "workers": workers,
        "backend": backend,
        "spec_hash": spec_hash,
    }
    name = f"generate {Path(spec_path).stem} {count} @ {spec_hash[:8]}"
    with background_run("generate", params, {}, name) as run:
        manifest = generate()
        output = dataset_record(out)
        run.set_tags(
            {
                "synthcv.output.dataset": output.digest,
                "synthcv.spec_hash": manifest.get("spec_hash", spec_hash),
            }
        )
        run.log_metrics({"samples": manifest["count"]})
        run.log_output(output)
        run.log_artifact(Path(out) / "manifest.json")
        if contact_sheet is not None:
            sheet = run.scratch / "contact_sheet.png"
            contact_sheet(sheet)
            run.log_artifact(sheet)
        return manifest


def track_augment(
    augment: Callable[[], Any],
    *,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    ops: list[Mapping[str, Any]],
    seed: int,
    enabled: bool | None = None,
) -> Any:
    """Run ``augment()`` (it writes the augmented child of dataset ``src`` into ``out``) as an
    "augment" run and return what it returns.

    Records the ops, seed, source and output as params, the source dataset as the input
    (lineage), the child as the output dataset and its hash as tag ``synthcv.output_hash``.
    """
    if not tracking_enabled(enabled):
        return augment()
    params = {"ops": ops, "seed": seed, "src": str(src), "out": str(out)}
    name = f"augment {Path(src).name} -> {Path(out).name}"
    inputs = {Path(src).name: dataset_record(src)}
    with background_run("augment", params, inputs, name) as run:
        result = augment()
        output = dataset_record(out)
        run.set_tags({"synthcv.output_hash": output.digest})
        run.log_output(output)
        return result


def genmodel_data_inputs(data: str, mnist_path: str | None = None) -> dict[str, DatasetRecord]:
    """Lineage of a generative model's training data: input name -> :class:`DatasetRecord`.

    ``mnist8000``/``mnist6300`` are (parts of) the file :func:`synthcv.realdata.find_mnist8000`
    finds, a dataset directory or ``.npz`` file is recorded by :func:`dataset_record`;
    ``sklearn-digits`` ships with scikit-learn and has no file of ours to hash.
    """
    if data in ("mnist8000", "mnist6300"):
        from synthcv.realdata import find_mnist8000

        return {data: dataset_record(find_mnist8000(mnist_path), data, profile={"part": data})}
    if data == "sklearn-digits":
        return {}
    return {Path(data).name: dataset_record(data)}


def track_genmodel_train(
    train: Callable[[], dict[str, Any]],
    *,
    config: Mapping[str, Any],
    out: str | os.PathLike[str],
    enabled: bool | None = None,
) -> dict[str, Any]:
    """Run ``train()`` (it trains into run directory ``out`` and returns its summary) as a
    "genmodel-train" run and return the summary.

    ``config`` is the training configuration as plain values (``TrainConfig.to_json()``): its
    set fields are the params (``hparams`` flattened to ``hparams.<name>``) with ``out``; the
    training data's hash is the input (:func:`genmodel_data_inputs`). Afterwards every row of
    ``metrics.jsonl`` is logged at its epoch (train_bpd, test_bpd, lr, ...) and ``run.json`` and
    ``metrics.jsonl`` are attached.
    """
    if not tracking_enabled(enabled):
        return train()
    params = {k: v for k, v in config.items() if v is not None}
    inputs = genmodel_data_inputs(str(config["data"]), config.get("mnist_path"))
    run_dir = Path(out)
    name = f"genmodel {config.get('model')} {config.get('data')} -> {Path(out).name}"
    with tracked_run(
        "genmodel-train",
        params=params | {"out": str(out)},
        inputs=inputs,
        run_name=name,
        enabled=True,
    ) as tr:
        summary = train()
        metrics = run_dir / "metrics.jsonl"
        for line in metrics.read_text().splitlines() if metrics.exists() else []:
            row = json.loads(line)
            values = {
                k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "epoch"
            }
            tr.log_metrics(values, step=int(row.get("epoch", 0)))
        for name in ("run.json", "metrics.jsonl"):
            if (run_dir / name).exists():
                tr.log_artifact(run_dir / name)
        return summary


def track_denoise_train(
    train: Callable[[], dict[str, Any]],
    *,
    params: Mapping[str, Any],
    dataset: str | os.PathLike[str],
    test: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    enabled: bool | None = None,
) -> dict[str, Any]:
    """Run ``train()`` (``synthcv denoise train``: it writes run directory ``out`` and returns
    its results) as a "denoise-train" run: the settings as params, the pairs datasets as
    inputs, every validation evaluation as ``val_psnr``/``loss`` at its step, the final tables
    as metrics (``val.<method>.psnr`` ..., ``test.<method>.psnr`` ...), and the run files as
    artifacts."""
    if not tracking_enabled(enabled):
        return train()
    inputs = {"train": dataset_record(dataset)}
    if test is not None:
        inputs["test"] = dataset_record(test)
    with tracked_run(
        "denoise-train",
        params={**{k: v for k, v in params.items() if v is not None}, "out": str(out)},
        inputs=inputs,
        run_name=f"denoise {Path(dataset).name} -> {Path(out).name}",
        enabled=True,
    ) as tr:
        results = train()
        for row in results.get("history", []):
            values = {k: row[k] for k in ("val_psnr", "loss") if row.get(k) is not None}
            tr.log_metrics(values, step=int(row["step"]))
        for split in ("val", "test"):
            for row in results.get(split) or []:
                # "total variation (weight 0.1)" -> total_variation_weight_0_1
                key = re.sub(r"[^a-z0-9]+", "_", str(row["method"]).lower()).strip("_")
                tr.log_metrics(
                    {f"{split}.{key}.psnr": row["psnr"], f"{split}.{key}.ssim": row["ssim"]}
                )
        for name in ("config.json", "results.json", "results.md"):
            if (Path(out) / name).exists():
                tr.log_artifact(Path(out) / name)
        return results


@contextlib.contextmanager
def track_experiment(
    name: str,
    recipe: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str | DatasetRecord],
    *,
    enabled: bool | None = None,
    root: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
) -> Iterator[NullRun]:
    """An "experiment" run named ``name``: the config (plain values) as params and as the
    ``config.json`` artifact, ``recipe`` as tag ``synthcv.recipe``, ``inputs`` (source name ->
    content hash) as lineage. The runner logs its metrics, tables, plots and model to the run
    this yields."""
    with tracked_run(
        "experiment",
        config,
        inputs,
        run_name=name,
        enabled=enabled,
        root=root,
        experiment=experiment,
    ) as log:
        log.set_tags({"synthcv.recipe": recipe})
        log.log_dict(dict(config), "config.json")
        yield log


def load_logged_torch_model(uri: str) -> Any:
    """The torch module behind an MLflow model URI (``runs:/ID/model``, ``models:/NAME/1``),
    on the CPU, read from the configured store (``MLFLOW_TRACKING_URI`` or the local
    default)."""
    import mlflow
    import mlflow.pytorch

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(default_tracking_uri())
    return mlflow.pytorch.load_model(uri, map_location="cpu")


# -- the Model Registry: the champion alias synthcv loop moves (call inside a tracked run) ------

CHAMPION_ALIAS = "champion"


@dataclass
class Champion:
    model: Any
    version: str
    uri: str


def _registry_client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def current_champion(name: str) -> Champion | None:
    """The model the ``champion`` alias of registered model ``name`` points at, or None."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    try:
        mv = _registry_client().get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    uri = f"models:/{name}@{CHAMPION_ALIAS}"
    model = mlflow.pytorch.load_model(uri, map_location="cpu").eval()
    return Champion(model, str(mv.version), uri)


def register_model_version(model: Any, name: str, tags: Mapping[str, str], example: Any) -> str:
    """Log ``model`` to the active run (pickled: the module itself, its ``embed()`` too, not a
    pt2 graph; ``example`` float32 (N, C, H, W) inputs give its signature) and register it as a
    new version of ``name``; returns the version."""
    import mlflow
    import mlflow.pytorch
    import torch

    info = mlflow.pytorch.log_model(
        model.eval(),
        name="model",
        input_example=example,
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    mv = mlflow.register_model(info.model_uri, name, tags=dict(tags))
    return str(mv.version)


def find_model_version(name: str, key: str, value: str) -> str | None:
    """A version of ``name`` already tagged ``key=value`` (e.g. registered by an earlier,
    interrupted pass over the same batch)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = _registry_client().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in versions:
        if (mv.tags or {}).get(key) == value:
            return str(mv.version)
    return None


def set_champion(name: str, version: str) -> None:
    _registry_client().set_registered_model_alias(name, CHAMPION_ALIAS, version)


def load_model_version(name: str, version: str) -> Any:
    """Version ``version`` of registered model ``name``, from the configured store."""
    return load_logged_torch_model(f"models:/{name}/{version}").eval()
