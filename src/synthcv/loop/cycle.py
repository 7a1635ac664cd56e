"""One pass of continuous training over one production batch:
monitor → (drift?) map to a spec overlay → render the targeted set → fine-tune with replay →
gate → promote or keep.

Every step writes its result under ``OUT/batches/<key>/`` before the next starts, and the key is
the batch's content hash with the config's, so an interrupted pass resumes where it stopped
(rendering resumes per shard) and a finished one is not redone: ``decision.json`` is the
record, and a second run on the same batch only prints it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from synthcv import tracking
from synthcv.fileio import sha256_text, write_text_atomic
from synthcv.loop.config import LoopConfig
from synthcv.loop.mapping import (
    Region,
    Rule,
    estimate_region,
    invert_curve,
    load_mapping,
    merge,
    nested,
)
from synthcv.loop.model_kinds import (
    Classification,
    ModelKind,
    finetune_record,
    kind_of,
    load_bootstrap,
)
from synthcv.monitor.drift import DriftReport
from synthcv.monitor.sources import MonitorSet, load_monitor_source

Say = Callable[[str], None]


def batch_key(cfg: LoopConfig, current: MonitorSet) -> str:
    return sha256_text(f"{current.digest}:{cfg.digest()}")[:16]


#: in a batch's work directory while its fine-tune runs (removed once candidate.pt exists)
FINETUNE_CHECKPOINT = "finetune-checkpoint.pt"
#: the fine-tune saves at every epoch's end and, within an epoch, at most this often
FINETUNE_CHECKPOINT_INTERVAL_S = 60.0


def finetune_checkpoint(work: Path, champion_version: Any, targeted_digest: str) -> Any:
    """The fine-tune's resumable state: the work directory already belongs to one batch and
    config; the fingerprint adds the champion and the targeted set it trains from."""
    from synthcv.tasks.loop import Checkpoint

    fingerprint = sha256_text(f"{work.name}|{champion_version}|{targeted_digest}")
    return Checkpoint(work / FINETUNE_CHECKPOINT, fingerprint, FINETUNE_CHECKPOINT_INTERVAL_S)


# -- probes and the overlay ----------------------------------------------------------------


def _render(spec: dict[str, Any], out: Path, count: int, workers: int = 1) -> Path:
    """Render (or resume) ``spec`` into ``out``; a failure names the overlay that caused it."""
    from synthcv.pipeline.runner import generate

    generate(
        spec, out, count=count, workers=workers, progress=False, on_empty="allow", label=str(out)
    )
    return out


def batch_seed(key: str) -> int:
    """The seed a batch's targeted set is rendered and augmented with: from its key, so a
    resumed pass (or a benchmark re-reading the batch's folder) draws the same images."""
    return int(key[:8], 16) % 1_000_000


def _base_spec(cfg: LoopConfig, seed: int) -> dict[str, Any]:
    return {"extends": str(Path(cfg.champion.spec).resolve()), "seed": seed}


def probe_rule(
    rule: Rule,
    cfg: LoopConfig,
    current_values: np.ndarray,
    work: Path,
    say: Say,
    overlay: dict[str, Any],
    augment: list[dict[str, Any]],
    kind: ModelKind,
) -> Region:
    """Render ``probe_count`` images per probe value on top of ``overlay`` and ``augment`` (what
    earlier rules chose), measure the feature's median at each (on the images as the model
    reads them; an object feature on their labelled objects), and invert the curve at the
    current batch's central quantiles (with ``targeted.spread: excess``, less the spread one
    probe value shows by itself: :func:`~synthcv.loop.mapping.estimate_region`). A value the
    spec refuses is left out, and said."""
    q = cfg.targeted.quantile
    cur = (float(np.quantile(current_values, q)), float(np.quantile(current_values, 1 - q)))
    stage = sha256_text(json.dumps([overlay, augment], sort_keys=True))
    stage_dir = work / stage[:10]
    values, medians, below, above, refused = [], [], [], [], []
    for i, v in enumerate(rule.probe):
        base = merge(overlay, {"seed": 7919})  # common random numbers: one curve, less noise
        try:
            if rule.paths:
                out = _render(
                    merge(base, nested(rule.paths, v)),
                    stage_dir / f"{rule.feature}-{i}",
                    cfg.targeted.probe_count,
                )
                data = kind.load_rendered(out, cfg, augment)
            else:
                out = _render(
                    merge(overlay, {"seed": 7919}), stage_dir / "base", cfg.targeted.probe_count
                )
                op = {"op": rule.augment, rule.param: [v, v]}
                data = kind.load_rendered(out, cfg, [*augment, op])
        except ValueError as exc:  # the spec refuses this value (a stroke that erases a glyph)
            refused.append(f"{v:g} ({str(exc).splitlines()[-1].strip(' -')})")
            continue
        measured = kind.feature(data, rule.feature)
        if not len(measured):
            refused.append(f"{v:g} (no visible object to measure)")
            continue
        lo_q, mid, hi_q = np.quantile(measured, [q, 0.5, 1 - q])
        values.append(v)
        medians.append(float(mid))
        below.append(float(mid - lo_q))
        above.append(float(hi_q - mid))
    target = "+".join(rule.paths) or f"augment.{rule.augment}.{rule.param}"
    if len(values) < 3:
        region = Region(
            rule.feature,
            target,
            values,
            medians,
            cur,
            None,
            "fewer than 3 probe values rendered; rule skipped",
        )
    elif cfg.targeted.spread == "excess":
        centre = float(np.median(current_values))
        region = estimate_region(
            rule.feature, target, values, medians, below, above, cur, centre, q
        )
    else:
        region = invert_curve(rule.feature, target, values, medians, cur)
    if refused:
        region.note = "; ".join(filter(None, [region.note, "refused: " + ", ".join(refused)]))
    say(
        f"  {rule.feature} -> {target}: "
        + (f"[{region.range[0]:.4g}, {region.range[1]:.4g}]" if region.range else "skipped")
        + (f" ({region.note})" if region.note else "")
    )
    return region


def class_weights(cfg: LoopConfig, shares: dict[str, float]) -> dict[str, Any]:
    """``objects.classes.<name>.weight`` = the current share of that class (by name; a class
    the batch lacks keeps the smoothed share its caller gave it, or 0)."""
    from synthcv.spec import load_spec

    names = list(load_spec(cfg.champion.spec).objects.classes)
    return {"objects": {"classes": {n: {"weight": round(shares.get(n, 0.0), 6)} for n in names}}}


def _smoothed_shares(names: list[str], observed: list[str]) -> dict[str, float]:
    """Each class's share of ``observed`` (add-one smoothed, so no class vanishes from the
    targeted set)."""
    counts = {n: 1.0 for n in names}
    for o in observed:
        if o in counts:
            counts[o] += 1.0
    total = sum(counts.values())
    return {n: c / total for n, c in counts.items()}


def _class_mix(
    cfg: LoopConfig, current: MonitorSet, predicted: np.ndarray | None, drifted: set[str]
) -> tuple[dict[str, float], str] | None:
    """The batch's class shares by spec class name, and where they came from; None when the
    class mix did not drift or nothing tells it. Image labels (a classifier's batch) or object
    classes (a detector's) when the batch has them — a model that now predicts otherwise is
    not a new class prior — else the champion's predicted classes as their stand-in."""
    from synthcv.spec import load_spec

    names = list(load_spec(cfg.champion.spec).objects.classes)
    digits = all(n.lstrip("-").isdigit() for n in names)
    if current.object_classes is not None and "object_class_mix" in drifted:
        observed = [str(c) for c in current.object_classes]
        return _smoothed_shares(names, observed), "labelled objects"
    if current.labels is not None:
        observed, src, trigger = current.labels, "labels", "class_mix"
    elif predicted is not None:
        observed, src, trigger = predicted, "the champion's predictions", "predicted_class_mix"
    else:
        return None
    if trigger not in drifted:
        return None
    lab = [int(v) for v in np.asarray(observed) if v >= 0]
    # a digit class's label is its number; any other class's, its place in the spec
    as_names = [str(v) for v in lab] if digits else [names[v] for v in lab if v < len(names)]
    return _smoothed_shares(names, as_names), src


def plan_targeted(
    report: DriftReport,
    cfg: LoopConfig,
    current: MonitorSet,
    predicted: np.ndarray | None,
    work: Path,
    say: Say,
    seed: int,
    kind: ModelKind | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(spec overlay, augment ops, regions) for the drifted features that have a rule; probes
    are read as ``kind``'s model reads data (default: a classifier's)."""
    kind = kind or Classification()
    rules = load_mapping(cfg.mapping, kind.name)
    drifted = {f.feature for f in report.drifted_features}
    overlay = _base_spec(cfg, seed)
    augment: list[dict[str, Any]] = []
    regions: list[dict[str, Any]] = []
    for feat, rule in rules.items():
        if rule.classes:
            mix = _class_mix(cfg, current, predicted, drifted)
            if mix is None:
                continue
            shares, src = mix
            overlay = merge(overlay, class_weights(cfg, shares))
            regions.append(
                {
                    "feature": "class_mix",
                    "target": "objects.classes.*.weight",
                    "shares": shares,
                    "note": f"from the current batch's {src}",
                }
            )
            say(f"  class mix -> class weights from the current batch's {src}")
            continue
        if feat not in drifted or feat not in report.values:
            continue
        region = probe_rule(
            rule, cfg, report.values[feat][1], work / "probes", say, overlay, augment, kind
        )
        regions.append(region.to_dict())
        if region.range is None:
            continue
        lo, hi = region.range
        if rule.augment and hi <= min(rule.probe):
            region.note = "; ".join(filter(None, [region.note, "the op at its weakest: dropped"]))
            regions[-1] = region.to_dict()
            continue
        if rule.paths:
            if rule.single or hi <= lo:
                value: Any = round((lo + hi) / 2, 6)
            else:
                value = {"$patch": "replace", "uniform": [lo, hi]}
            overlay = merge(overlay, nested(rule.paths, value))
        else:
            augment.append({"op": rule.augment, rule.param: [lo, hi]})
    return overlay, augment, regions


# -- the pass -------------------------------------------------------------------------------


def gate(
    cfg: LoopConfig,
    champion: Any,
    candidate: Any,
    current: MonitorSet,
    broad: MonitorSet,
    kind: ModelKind | None = None,
) -> dict[str, Any]:
    """Promote only if the candidate gains on the drifted batch (measured on its labelled
    sample, else estimated where the kind can) and loses at most ``tolerance`` points on the
    broad set. The ``*_accuracy`` records hold the kind's metric (``metric``: a detector's
    AP50 or AP)."""
    kind = kind or kind_of(champion, cfg)
    broad_champ = kind.score(champion, broad)
    if broad_champ is None:
        raise ValueError(
            f"gate.broad {cfg.gate.broad}: needs labelled "
            + ("objects" if kind.name == "detector" else "images of one size")
        )
    broad_cand = kind.score(candidate, broad)
    assert broad_cand is not None
    drift_champ = kind.score(champion, current)
    if drift_champ is not None:
        drift_cand = kind.score(candidate, current)
        assert drift_cand is not None
        labelled = "objects" if kind.name == "detector" else "images"
        how = f"measured on the batch's labelled {labelled}"
    else:
        how = "estimated (CBPE-style, calibrated on gate.broad): the batch has no labels"
        drift_champ = kind.estimate(champion, broad, current)
        drift_cand = kind.estimate(candidate, broad, current)
    gain = 100 * (drift_cand - drift_champ)
    loss = 100 * (broad_champ - broad_cand)
    reasons = []
    if gain <= cfg.gate.min_gain:
        reasons.append(
            f"no gain on the drifted batch ({gain:+.2f} points, needs > {cfg.gate.min_gain:g})"
        )
    if loss > cfg.gate.tolerance:
        reasons.append(
            f"loses {loss:.2f} points on the broad set (tolerance {cfg.gate.tolerance:g})"
        )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "metric": kind.metric,
        "drifted_accuracy": {"champion": drift_champ, "candidate": drift_cand, "how": how},
        "broad_accuracy": {
            "champion": broad_champ,
            "candidate": broad_cand,
            "set": cfg.gate.broad,
            "n": len(broad),
        },
    }


def run_loop(cfg: LoopConfig, say: Say = print) -> dict[str, Any]:
    """One pass over ``cfg.current`` (see the module docstring); returns the decision."""
    from synthcv.tracking import dataset_hash, tracked_run, tracking_enabled

    if not tracking_enabled():
        raise ValueError(
            "synthcv loop keeps its champion in the MLflow Model Registry: tracking must be on "
            "(unset SYNTHCV_TRACKING=0)"
        )
    if cfg.current is None:
        raise ValueError("current: no batch given (set current: in the config or --current)")
    current = load_monitor_source(cfg.current, None, 0, cfg.mnist)
    key = batch_key(cfg, current)
    work = Path(cfg.out) / "batches" / key
    done = work / "decision.json"
    if done.is_file():
        decision = json.loads(done.read_text())
        decision["already_done"] = True
        say(
            f"batch {cfg.current} was already processed ({key}): {decision['outcome']}; "
            "nothing to do"
        )
        return decision
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    inputs = {"current": current.digest, "champion_spec": dataset_hash(cfg.champion.spec)}
    with tracked_run(
        "loop", {"config": cfg.model_dump()}, inputs, run_name=f"loop {key}", experiment=cfg.name
    ) as log:
        log.set_tags({"synthcv.batch": key})
        decision = _pass(cfg, current, key, work, log, say)
        decision["seconds"] = round(time.perf_counter() - t0, 1)
        decision["loop_run_id"] = getattr(log, "run_id", None)
        log.log_metrics({"seconds": decision["seconds"]})
        log.set_tags({"synthcv.outcome": decision["outcome"]})
        write_text_atomic(done, json.dumps(decision, indent=2, default=float) + "\n")
        log.log_artifact(done)
    say(f"{decision['outcome']}: {decision['summary']} ({decision['seconds']} s)")
    return decision


def _champion(cfg: LoopConfig, log: Any, say: Say) -> tracking.Champion:
    champ = tracking.current_champion(cfg.champion.registry_name)
    if champ is not None:
        return champ
    if cfg.champion.bootstrap is None:
        raise ValueError(
            f"champion: the registry has no {cfg.champion.registry_name!r}@champion and "
            "champion.bootstrap names no model to start from"
        )
    model, describe = load_bootstrap(cfg.champion.bootstrap)
    example = kind_of(model, cfg).example(cfg, model)
    version = tracking.register_model_version(
        model, cfg.champion.registry_name, {"synthcv.bootstrap": describe}, example
    )
    tracking.set_champion(cfg.champion.registry_name, version)
    say(f"registered {describe} as {cfg.champion.registry_name} v{version} (champion)")
    return tracking.current_champion(cfg.champion.registry_name)  # type: ignore[return-value]


def _pass(
    cfg: LoopConfig, current: MonitorSet, key: str, work: Path, log: Any, say: Say
) -> dict[str, Any]:
    from synthcv.monitor.report import write_report
    from synthcv.monitor.run import monitor_sets, track_monitor
    from synthcv.tracking import tracked_run

    champ = _champion(cfg, log, say)
    kind = kind_of(champ.model, cfg)
    log.set_tags({"synthcv.parent_version": champ.version, "synthcv.model_kind": kind.name})
    decision: dict[str, Any] = {"batch": cfg.current, "key": key, "champion_version": champ.version}
    if (
        tracking.find_model_version(cfg.champion.registry_name, "synthcv.batch", key)
        == champ.version
    ):
        # interrupted after the promotion, before decision.json: the champion *is* this
        # batch's candidate, and gating it against itself would call it "no gain"
        decision.update(
            outcome="promoted",
            candidate_version=champ.version,
            summary=f"v{champ.version}, this batch's candidate, is already the champion",
        )
        return decision
    # 1. monitor against the champion's training data, through the champion's eyes
    reference = load_monitor_source(cfg.reference, cfg.monitor.n, 0, cfg.mnist)
    sample = load_monitor_source(cfg.current, cfg.monitor.n, 1, cfg.mnist)
    report = monitor_sets(
        reference,
        sample,
        model=kind.monitored(champ.model, champ.uri),
        model_name=champ.uri,
        alpha=cfg.monitor.alpha,
        permutations=cfg.monitor.permutations,
    )
    files = write_report(report, work / "monitor")
    track_monitor(
        report,
        {"reference": reference.digest, "current": current.digest},
        {"alpha": cfg.monitor.alpha, "n": cfg.monitor.n},
        files,
        nested=True,
        experiment=cfg.name,
    )
    decision["drifted_features"] = [f.feature for f in report.drifted_features]
    if not report.drifted:
        decision.update(outcome="no-drift", summary="nothing drifted; the champion stays")
        return decision
    unfit = kind.cannot_gate(current)
    if unfit:
        decision.update(outcome="needs-labels", summary=f"drift found, but {unfit}")
        return decision
    # loaded before any rendering, so a bad gate.broad fails before the expensive part
    broad = load_monitor_source(cfg.gate.broad, None, 0, cfg.mnist)
    say(f"drift in {', '.join(decision['drifted_features'])}; mapping to the spec")
    # 2. the targeted region, as a spec overlay on the champion's spec
    from synthcv.monitor.model_checks import run_classifier

    # the class-mix rule needs a classifier's predictions only when the batch has no labels
    predicted = (
        run_classifier(champ.model, sample.images).predicted
        if sample.labels is None and kind.name == "classifier"
        else None
    )
    seed = batch_seed(key)
    overlay, augment, regions = plan_targeted(report, cfg, sample, predicted, work, say, seed, kind)
    write_text_atomic(work / "overlay.yaml", yaml.safe_dump(overlay, sort_keys=False))
    write_text_atomic(
        work / "regions.json",
        json.dumps({"regions": regions, "augment": augment}, indent=2, default=float) + "\n",
    )
    decision.update(regions=regions, augment=augment)
    if overlay == _base_spec(cfg, seed) and not augment:
        decision.update(
            outcome="no-rule",
            summary="drift found, but no rule of the mapping could target it; the champion stays",
        )
        return decision
    # 3. render it, and fine-tune the champion with replay
    with tracked_run(
        "loop-targeted",
        {"overlay": overlay, "augment": augment},
        nested=True,
        run_name=f"targeted {key}",
        experiment=cfg.name,
    ) as glog:
        targeted_dir = _render(overlay, work / "targeted", cfg.targeted.count, cfg.targeted.workers)
        targeted = kind.load_rendered(targeted_dir, cfg, augment, seed)
        glog.log_artifact(work / "overlay.yaml")
        glog.log_artifact(work / "regions.json")
        glog.set_tags({"synthcv.output": targeted.digest})
    say(
        f"rendered {len(targeted)} targeted images; fine-tuning with {cfg.finetune.replay:.0%} "
        "replay"
    )
    candidate_path = work / "candidate.pt"
    if candidate_path.is_file():  # an interrupted pass resumes after its fine-tune
        candidate = kind.load(candidate_path)
    else:  # and an interrupted fine-tune at its last saved step
        from synthcv.tasks.loop import read_checkpoint

        ckpt = finetune_checkpoint(work, champ.version, targeted.digest)
        try:
            read_checkpoint(ckpt)
        except ValueError:  # another champion's or targeted set's, or damaged: not ours to use
            say("the saved fine-tune state does not match this pass; fine-tuning from the start")
            ckpt.path.unlink()
        candidate = kind.finetune(cfg, champ.model, targeted, checkpoint=ckpt)
        kind.save(candidate, candidate_path)
        (work / FINETUNE_CHECKPOINT).unlink(missing_ok=True)  # candidate.pt supersedes it
    # 4. gate, and register the candidate either way (lineage), promoting only on a pass
    verdict = gate(cfg, champ.model, candidate, current, broad, kind)
    with tracked_run(
        "loop-candidate",
        {"finetune": finetune_record(cfg, kind), "gate": cfg.gate.model_dump()},
        {"targeted": targeted.digest, "current": current.digest},
        nested=True,
        run_name=f"candidate {key}",
        experiment=cfg.name,
    ) as clog:
        tags = {
            "synthcv.batch": key,
            "synthcv.parent_version": champ.version,
            "synthcv.gate": "passed" if verdict["passed"] else "refused",
        }
        version = tracking.find_model_version(cfg.champion.registry_name, "synthcv.batch", key)
        if version is None:
            version = tracking.register_model_version(
                candidate, cfg.champion.registry_name, tags, kind.example(cfg, candidate)
            )
        clog.log_metrics(
            {
                "drifted.champion": verdict["drifted_accuracy"]["champion"],
                "drifted.candidate": verdict["drifted_accuracy"]["candidate"],
                "broad.champion": verdict["broad_accuracy"]["champion"],
                "broad.candidate": verdict["broad_accuracy"]["candidate"],
            }
        )
        clog.log_dict(verdict, "gate.json")
    decision.update(candidate_version=version, gate=verdict)
    d, b = verdict["drifted_accuracy"], verdict["broad_accuracy"]
    figures = (
        f"drifted {100 * d['champion']:.2f} -> {100 * d['candidate']:.2f} %, broad "
        f"{100 * b['champion']:.2f} -> {100 * b['candidate']:.2f} %"
    )
    if verdict["passed"]:
        tracking.set_champion(cfg.champion.registry_name, version)
        decision.update(outcome="promoted", summary=f"v{version} is the champion ({figures})")
    else:
        decision.update(
            outcome="refused",
            summary=f"v{champ.version} stays champion: "
            + "; ".join(verdict["reasons"])
            + f" ({figures})",
        )
    return decision
