"""One pass of continuous training over one production batch:
monitor → (drift?) map to a spec overlay → render the targeted set → fine-tune with replay →
gate → promote or keep.

Every step writes its result under ``OUT/batches/<key>/`` before the next starts, and the key is
the batch's content hash with the config's, so an interrupted pass resumes where it stopped
(rendering resumes per shard) and a finished one is not redone: ``decision.json`` is the
record, and a second run on the same batch only prints it.
"""

from __future__ import annotations

import copy
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
from synthcv.loop.mapping import Region, Rule, invert_curve, load_mapping, merge, nested
from synthcv.monitor.drift import DriftReport
from synthcv.monitor.features import image_features
from synthcv.monitor.sources import MonitorSet, load_monitor_source

Say = Callable[[str], None]


def batch_key(cfg: LoopConfig, current: MonitorSet) -> str:
    return sha256_text(f"{current.digest}:{cfg.digest()}")[:16]


# -- probes and the overlay ----------------------------------------------------------------


def _render(spec: dict[str, Any], out: Path, count: int, workers: int = 1) -> Path:
    """Render (or resume) ``spec`` into ``out``; a failure names the overlay that caused it."""
    from synthcv.pipeline.runner import generate

    generate(
        spec, out, count=count, workers=workers, progress=False, on_empty="allow", label=str(out)
    )
    return out


def _load(path: Path, cfg: LoopConfig, augment: list[dict[str, Any]] | None = None, seed: int = 0):
    from synthcv.tasks.data import MatchDomain, load_synthcv_dataset

    match = MatchDomain() if cfg.targeted.match_domain == "mnist" else None
    return load_synthcv_dataset(path, match, augment, augment_seed=seed, progress=False)


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
) -> Region:
    """Render ``probe_count`` images per probe value on top of ``overlay`` and ``augment`` (what
    earlier rules chose), measure the feature's median at each, and invert the curve at the
    current batch's central quantiles. A value the spec refuses is left out, and said."""
    q = cfg.targeted.quantile
    cur = (float(np.quantile(current_values, q)), float(np.quantile(current_values, 1 - q)))
    stage = sha256_text(json.dumps([overlay, augment], sort_keys=True))
    stage_dir = work / stage[:10]
    values, medians, refused = [], [], []
    for i, v in enumerate(rule.probe):
        base = merge(overlay, {"seed": 7919})  # common random numbers: one curve, less noise
        try:
            if rule.paths:
                out = _render(
                    merge(base, nested(rule.paths, v)),
                    stage_dir / f"{rule.feature}-{i}",
                    cfg.targeted.probe_count,
                )
                data = _load(out, cfg, augment)
            else:
                out = _render(
                    merge(overlay, {"seed": 7919}), stage_dir / "base", cfg.targeted.probe_count
                )
                data = _load(out, cfg, [*augment, {"op": rule.augment, rule.param: [v, v]}])
        except ValueError as exc:  # the spec refuses this value (a stroke that erases a glyph)
            refused.append(f"{v:g} ({str(exc).splitlines()[-1].strip(' -')})")
            continue
        values.append(v)
        medians.append(float(np.median(image_features(data.images)[rule.feature])))
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


def class_weights(cfg: LoopConfig, shares: dict[int, float]) -> dict[str, Any]:
    """``objects.classes.<name>.weight`` = the current share of that class (add-one smoothed,
    so no class vanishes from the targeted set)."""
    from synthcv.spec import load_spec

    names = list(load_spec(cfg.champion.spec).objects.classes)
    digits = all(n.lstrip("-").isdigit() for n in names)
    label_of = {n: (int(n) if digits else i) for i, n in enumerate(names)}
    return {
        "objects": {
            "classes": {n: {"weight": round(shares.get(label_of[n], 0.0), 6)} for n in names}
        }
    }


def plan_targeted(
    report: DriftReport,
    cfg: LoopConfig,
    current: MonitorSet,
    predicted: np.ndarray | None,
    work: Path,
    say: Say,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(spec overlay, augment ops, regions) for the drifted features that have a rule."""
    rules = load_mapping(cfg.mapping)
    drifted = {f.feature for f in report.drifted_features}
    overlay = _base_spec(cfg, seed)
    augment: list[dict[str, Any]] = []
    regions: list[dict[str, Any]] = []
    for feat, rule in rules.items():
        if rule.classes:
            # the labels' mix when the batch has labels (a model that now predicts otherwise
            # is not a new class prior), else the champion's predictions as its stand-in
            labelled = current.labels is not None
            labels = current.labels if labelled else predicted
            trigger = "class_mix" if labelled else "predicted_class_mix"
            if labels is None or trigger not in drifted:
                continue
            lab = np.asarray(labels)[np.asarray(labels) >= 0]
            k = max(int(lab.max()) + 1, 2)
            counts = np.bincount(lab, minlength=k).astype(float) + 1.0
            shares = {i: float(c / counts.sum()) for i, c in enumerate(counts)}
            overlay = merge(overlay, class_weights(cfg, shares))
            src = "labels" if current.labels is not None else "the champion's predictions"
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
            rule, cfg, report.values[feat][1], work / "probes", say, overlay, augment
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


def _accuracy(model: Any, images: np.ndarray, labels: np.ndarray) -> float:
    from synthcv.tasks.data import ArraySet
    from synthcv.tasks.train import evaluate

    return float(evaluate(model, ArraySet(images, labels))["acc"])


def _labelled(s: MonitorSet) -> tuple[np.ndarray, np.ndarray] | None:
    if s.labels is None or not s.same_size:
        return None
    sel = np.asarray(s.labels) >= 0
    return (np.asarray(s.images)[sel], np.asarray(s.labels)[sel]) if sel.any() else None


def gate(
    cfg: LoopConfig, champion: Any, candidate: Any, current: MonitorSet, broad: MonitorSet
) -> dict[str, Any]:
    """Promote only if the candidate gains on the drifted batch (measured on its labelled
    sample, else estimated) and loses at most ``tolerance`` points on the broad set."""
    from synthcv.monitor.model_checks import estimated_accuracy, run_classifier

    b = _labelled(broad)
    if b is None:
        raise ValueError(f"gate.broad {cfg.gate.broad}: needs labelled images of one size")
    broad_champ, broad_cand = _accuracy(champion, *b), _accuracy(candidate, *b)
    cur = _labelled(current)
    if cur is not None:
        how = f"measured on the batch's {len(cur[1])} labelled images"
        drift_champ, drift_cand = _accuracy(champion, *cur), _accuracy(candidate, *cur)
    else:
        how = "estimated (CBPE-style, calibrated on gate.broad): the batch has no labels"

        def est(m: Any) -> float:
            ref = run_classifier(m, b[0])
            now = run_classifier(m, current.images)
            return estimated_accuracy(ref.confidence, ref.predicted == b[1], now.confidence)

        drift_champ, drift_cand = est(champion), est(candidate)
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
        "drifted_accuracy": {"champion": drift_champ, "candidate": drift_cand, "how": how},
        "broad_accuracy": {
            "champion": broad_champ,
            "candidate": broad_cand,
            "set": cfg.gate.broad,
            "n": len(b[1]),
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


def _example(cfg: LoopConfig, model: Any) -> np.ndarray:
    """Two reference images as the model takes them: MLflow records the signature from them."""
    from synthcv.tasks.train import to_tensor

    images = load_monitor_source(cfg.reference, 2, 0, cfg.mnist).images
    return to_tensor(np.asarray(images), getattr(model, "in_channels", 1)).numpy()


def _champion(cfg: LoopConfig, log: Any, say: Say) -> tracking.Champion:
    champ = tracking.current_champion(cfg.champion.registry_name)
    if champ is not None:
        return champ
    if cfg.champion.bootstrap is None:
        raise ValueError(
            f"champion: the registry has no {cfg.champion.registry_name!r}@champion and "
            "champion.bootstrap names no model to start from"
        )
    from synthcv.tasks.classifier_io import load_classifier

    model, describe = load_classifier(cfg.champion.bootstrap)
    version = tracking.register_model_version(
        model, cfg.champion.registry_name, {"synthcv.bootstrap": describe}, _example(cfg, model)
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
    log.set_tags({"synthcv.parent_version": champ.version})
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
        model=champ.model,
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
    say(f"drift in {', '.join(decision['drifted_features'])}; mapping to the spec")
    # 2. the targeted region, as a spec overlay on the champion's spec
    from synthcv.monitor.model_checks import run_classifier

    # the class-mix rule needs the champion's predictions only when the batch has no labels
    predicted = (
        None if sample.labels is not None else run_classifier(champ.model, sample.images).predicted
    )
    seed = int(key[:8], 16) % 1_000_000
    overlay, augment, regions = plan_targeted(report, cfg, sample, predicted, work, say, seed)
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
        targeted = _load(targeted_dir, cfg, augment, seed)
        glog.log_artifact(work / "overlay.yaml")
        glog.log_artifact(work / "regions.json")
        glog.set_tags({"synthcv.output": targeted.digest})
    say(
        f"rendered {len(targeted)} targeted images; fine-tuning with {cfg.finetune.replay:.0%} "
        "replay"
    )
    candidate_path = work / "candidate.pt"
    from synthcv.tasks.classifier_io import load_classifier, save_classifier
    from synthcv.tasks.model import SmallCNN

    if candidate_path.is_file():  # an interrupted pass resumes after its fine-tune
        candidate = load_classifier(str(candidate_path))[0]
    else:
        candidate = _finetune(cfg, champ.model, targeted)
        if isinstance(candidate, SmallCNN):
            save_classifier(candidate, candidate_path)
    # 4. gate, and register the candidate either way (lineage), promoting only on a pass
    broad = load_monitor_source(cfg.gate.broad, None, 0, cfg.mnist)
    verdict = gate(cfg, champ.model, candidate, current, broad)
    with tracked_run(
        "loop-candidate",
        {"finetune": cfg.finetune.model_dump(), "gate": cfg.gate.model_dump()},
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
                candidate, cfg.champion.registry_name, tags, _example(cfg, candidate)
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


def _finetune(cfg: LoopConfig, champion: Any, targeted: Any) -> Any:
    """A copy of the champion trained on replay + targeted batches (``cfg.finetune``); with
    ``distill`` > 0 the champion also teaches it what it knew (Learning without Forgetting)."""
    from synthcv.tasks.compare import load_compare_source
    from synthcv.tasks.train import FitConfig, fit

    broad = load_compare_source(cfg.reference, None, 0, cfg.mnist)
    model = copy.deepcopy(champion)
    f = cfg.finetune
    sources = [broad, targeted] if f.replay > 0 else [targeted]
    ratios = [f.replay, 1 - f.replay] if f.replay > 0 else None
    per_batch = max(1, round(f.batch_size * (1 - f.replay)))
    steps = f.steps_per_epoch or max(1, len(targeted) // per_batch)
    fit_cfg = FitConfig(
        epochs=f.epochs,
        batch_size=f.batch_size,
        lr=f.lr,
        steps_per_epoch=steps,
        distill=f.distill,
        distill_temperature=f.temperature,
        distill_sources=(0,),  # the champion speaks for its training data, not the drift
    )
    fit(model, sources, ratios, fit_cfg, f.seed, teacher=champion if f.distill > 0 else None)
    return model.eval()
