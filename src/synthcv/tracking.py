"""MLflow tracking for every synthcv run (generate, genmodel train, experiments).

One context manager, :func:`tracked_run`, gives every command the same record: parameters,
per-step metrics, artifacts, tags, and *lineage* — the content hash of every input dataset —
so a result can always be traced to the exact data that produced it.

- Default store: a SQLite file ``mlflow.db`` with artifacts in ``mlartifacts/``, both under the
  current working directory. ``MLFLOW_TRACKING_URI`` (the standard variable) overrides it.
- ``SYNTHCV_TRACKING=0`` (or ``enabled=False``) turns tracking off: the same methods exist and
  do nothing, so callers never branch.
- Everything is local and offline; mlflow is imported only when a tracked run starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
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


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_hash(path: str | os.PathLike[str]) -> str:
    """Content hash of a data input, for lineage.

    A synthcv dataset directory is identified by the sha256 of its ``manifest.json`` (which
    itself holds the sha256 of every file), any other file by its own sha256.
    """
    p = Path(path)
    if p.is_dir():
        manifest = p / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{p}: not a complete synthcv dataset (no manifest.json)")
        return sha256_file(manifest)
    if p.is_file():
        return sha256_file(p)
    raise FileNotFoundError(f"{p}: no such dataset directory or file")


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
        flat = {
            k: (json.dumps(v) if isinstance(v, list | tuple) else v)
            for k, v in _flatten(params).items()
        }
        # MLflow caps param values at 6000 characters; keep the head, the full config is an
        # artifact anyway.
        self._mlflow.log_params({_safe_name(k): str(v)[:6000] for k, v in flat.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {
            _safe_name(k): float(v)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        }
        if clean:
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


_NAME_BAD = re.compile(r"[^\w./\- :]")


def _safe_name(name: str) -> str:
    """MLflow accepts only letters, digits, _ - . / space and : in metric and param names."""
    return _NAME_BAD.sub("_", str(name))


def _ensure_experiment(mlflow: Any, name: str, uri: str, local_default: bool) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if local_default and uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        artifact_location = (db.parent / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location)


@contextlib.contextmanager
def tracked_run(
    kind: str,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str] | None = None,
    run_name: str | None = None,
    *,
    enabled: bool | None = None,
    experiment: str | None = None,
    root: str | os.PathLike[str] | None = None,
    nested: bool = False,
) -> Iterator[NullRun]:
    """Open an MLflow run of ``kind`` ("generate", "genmodel-train", "experiment", ...).

    ``params`` are logged (nested dicts flattened with dots); ``inputs`` maps an input's name to
    its content hash (see :func:`dataset_hash`) and is recorded three ways: as a tag
    ``synthcv.input.<name>``, as a param ``input.<name>``, and as an MLflow dataset input whose
    digest is the hash. ``experiment`` defaults to ``SYNTHCV_EXPERIMENT`` or "synthcv";
    ``root`` is where the default local store lives (cwd if None). A failure inside the block
    marks the run FAILED and re-raises.
    """
    if not tracking_enabled(enabled):
        yield NullRun()
        return
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.tracking._tracking_service import utils as mlflow_uri_state

    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ; remember both the
    # user's variable and mlflow's global so a run never leaks its store into the next one.
    prev_env = os.environ.get("MLFLOW_TRACKING_URI")
    prev_global = mlflow_uri_state._tracking_uri
    uri = default_tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    try:
        exp_name = experiment or os.environ.get("SYNTHCV_EXPERIMENT", DEFAULT_EXPERIMENT)
        exp_id = _ensure_experiment(mlflow, exp_name, uri, local_default=prev_env is None)
        with _mlflow_run(mlflow, MetaDataset, kind, params, inputs, run_name, exp_id, nested) as tr:
            yield tr
    finally:
        mlflow_uri_state.set_tracking_uri(prev_global)
        if prev_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = prev_env


@contextlib.contextmanager
def _mlflow_run(
    mlflow: Any,
    MetaDataset: Any,
    kind: str,
    params: Mapping[str, Any] | None,
    inputs: Mapping[str, str] | None,
    run_name: str | None,
    exp_id: str,
    nested: bool,
) -> Iterator[TrackedRun]:
    from synthcv._version import __version__

    tags = {"synthcv.kind": kind, "synthcv.version": __version__}
    for name, digest in (inputs or {}).items():
        tags[f"synthcv.input.{name}"] = digest
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags, nested=nested)
    tr = TrackedRun(mlflow, run)
    status = "FINISHED"
    try:
        if params:
            tr.log_params(params)
        if inputs:
            tr.log_params({f"input.{k}": v for k, v in inputs.items()})
            for name, digest in inputs.items():
                ds = MetaDataset(source=_source(name), name=name, digest=str(digest)[:36])
                mlflow.log_input(ds, context="input")
        yield tr
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status=status)


def _source(name: str) -> Any:
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    # MetaDataset needs *a* source object; a name-only pseudo URL keeps everything offline.
    return HTTPDatasetSource(url=f"synthcv://{name}")


def write_temp_json(obj: Any, name: str) -> Path:
    """Write ``obj`` as JSON into a fresh temp dir (for artifacts that must be files)."""
    d = Path(tempfile.mkdtemp(prefix="synthcv-"))
    p = d / name
    p.write_text(json.dumps(obj, indent=2, default=str))
    return p
