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
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
        """Flattened with dots; unset (None) values are left out, not logged as "None"."""
        flat = {
            k: (json.dumps(v) if isinstance(v, list | tuple) else v)
            for k, v in _flatten(params).items()
            if v is not None
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
    params; the dataset's content hash (tag ``synthcv.output.dataset``, the lineage key its
    consumers log as their input) and the spec hash as tags; ``samples`` as a metric; and
    ``manifest.json`` plus a contact sheet as artifacts. ``contact_sheet(png_path)`` draws that
    sheet (the caller knows how to read a dataset; None: no sheet).
    """
    params = {
        "spec": str(spec_path),
        "out": str(out),
        "count": count,
        "workers": workers,
        "backend": backend,
        "spec_hash": spec_hash,
    }
    name = f"generate {Path(spec_path).stem} {count} @ {spec_hash[:8]}"
    with tracked_run("generate", params=params, inputs={}, run_name=name, enabled=enabled) as tr:
        manifest = generate()
        if not tr.enabled:
            return manifest
        tr.set_tags(
            {
                "synthcv.output.dataset": dataset_hash(out),
                "synthcv.spec_hash": manifest["spec_hash"],
            }
        )
        tr.log_metrics({"samples": manifest["count"]})
        tr.log_artifact(Path(out) / "manifest.json")
        if contact_sheet is not None:
            with tempfile.TemporaryDirectory() as tmp:
                sheet = Path(tmp) / "contact_sheet.png"
                contact_sheet(sheet)
                tr.log_artifact(sheet)
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

    Records the ops, seed, source and output as params, the source dataset's hash as the input
    (lineage) and the child's hash as tag ``synthcv.output_hash``.
    """
    params = {"ops": ops, "seed": seed, "src": str(src), "out": str(out)}
    name = f"augment {Path(src).name} -> {Path(out).name}"
    inputs = {Path(src).name: dataset_hash(src)}
    with tracked_run("augment", params, inputs, run_name=name, enabled=enabled) as tr:
        result = augment()
        if tr.enabled:
            tr.set_tags({"synthcv.output_hash": dataset_hash(out)})
        return result


def genmodel_data_inputs(data: str, mnist_path: str | None = None) -> dict[str, str]:
    """Lineage of a generative model's training data: input name -> content hash.

    ``mnist8000`` is the file :func:`synthcv.realdata.find_mnist8000` finds, a dataset
    directory or ``.npz`` file is hashed by :func:`dataset_hash`; ``sklearn-digits`` ships
    with scikit-learn and has no file of ours to hash.
    """
    if data in ("mnist8000", "mnist6300"):
        from synthcv.realdata import find_mnist8000

        return {data: dataset_hash(find_mnist8000(mnist_path))}
    if data == "sklearn-digits":
        return {}
    return {Path(data).name: dataset_hash(data)}


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


@contextlib.contextmanager
def track_experiment(
    name: str,
    recipe: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str],
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
