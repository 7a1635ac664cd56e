"""Which fine-tune recipe should `synthcv loop` use: how much does each forget?

Reuses a `benchmarks/drift_loop.py` output (its champion, batches and targeted sets) and
fine-tunes the champion once per recipe and drift:

    A  lr 5e-4, 80 % replay                      (the loop's first default)
    B  lr 2e-4, 80 % replay                      (a gentler step)
    C  lr 5e-4, 80 % replay + distillation 1.0   (Learning without Forgetting, T = 2: the
                                                 champion's soft answers on the replayed
                                                 training digits, not on the drifted ones;
                                                 the loop's default for classifiers
                                                 2026-12-01)
    D  lr 2e-4, 80 % replay + distillation 1.0
    E  A, then WiSE-FT: the candidate's weights halfway back to the champion's (Wortsman et
       al. 2022; 0.5 is their choice when no data can set it)
    F  C with BatchNorm frozen: its layers in inference mode through the fine-tune, so the
       champion's statistics normalise every batch and stay as they were (the loop's
       default for classifiers since 2026-12-02)
    G  F with distillation 2.0: twice the pull towards the champion's soft answers on the
       replayed training digits
    H  F with half the replay drawn from the 10 % of the champion's training digits it holds
       with the lowest margin (finetune.replay_focus 0.5): the digits nearest its boundary

The choice is made on the decision half only, by a rule fixed before running: the recipe with
the largest mean gain on the drifted batches among those whose mean loss on the undrifted
decision half (the production pool's 500 test digits, drift_loop.py's --split: the population
the batches come from) is
at most 0.5 points; if none, the one that loses least. The held-out half (the other 500 test
digits, drifted and not) is printed for every recipe but decides nothing.

    .venv/bin/python benchmarks/loop_finetune_recipes.py --from /tmp/dl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

RECIPES = {  # A-E as measured before BatchNorm could be frozen
    "A": {"lr": 5e-4, "distill": 0.0, "freeze_bn": False},
    "B": {"lr": 2e-4, "distill": 0.0, "freeze_bn": False},
    "C": {"lr": 5e-4, "distill": 1.0, "freeze_bn": False},
    "D": {"lr": 2e-4, "distill": 1.0, "freeze_bn": False},
    "E": {"lr": 5e-4, "distill": 0.0, "interpolate": 0.5, "freeze_bn": False},
    "F": {"lr": 5e-4, "distill": 1.0, "freeze_bn": True},
    "G": {"lr": 5e-4, "distill": 2.0, "freeze_bn": True},
    "H": {"lr": 5e-4, "distill": 1.0, "freeze_bn": True, "replay_focus": 0.5},
}
DRIFTS = ["darker / low contrast", "blur", "heavier strokes", "thinner strokes", "rotation"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="src", type=Path, required=True, help="drift_loop.py --out")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--drifts", default=";".join(DRIFTS), help="';'-separated drift names")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="fine-tune each recipe with finetune.seed 0..N-1 (N > 1: how much one fine-tune's "
        "figures move with its seed alone; written to finetune_recipes_seeds.json)",
    )
    p.add_argument(
        "--json",
        help="file name (in --from) for the results; default finetune_recipes.json, or "
        "finetune_recipes_seeds.json with --seeds > 1",
    )
    args = p.parse_args(argv)
    announce()
    import drift_loop as dl  # beside this file (sys.path above)

    from synthcv.loop.config import load_loop_config
    from synthcv.loop.model_kinds import Classification
    from synthcv.tasks.classifier_io import load_classifier

    t_start = time.perf_counter()
    src = args.src.resolve()
    champion = load_classifier(str(src / "champion.pt"))[0]
    # the drift_loop run's own halving of the test digits (its batches came from its pool)
    split = json.loads((args.src / "drift_loop.json").read_text()).get("split", "file")
    splits = dl.digit_splits(split)
    (vx, vy), (dec_x, dec_y), (held_x, held_y) = splits["val"], splits["pool"], splits["held"]
    base = {
        "decision": dl.acc(champion, dec_x, dec_y),
        "val": dl.acc(champion, vx, vy),
        "held": dl.acc(champion, held_x, held_y),
    }
    rows = []
    os.chdir(src)
    for kind in args.drifts.split(";"):
        slug = kind.split(" /")[0].replace(" ", "-")
        work = next(Path(f"loop-{slug}/batches").iterdir())
        if not (work / "targeted").is_dir():
            print(f"{kind}: no targeted set (the loop stopped before rendering); skipped")
            continue
        cfg = load_loop_config(f"loop-{slug}.yaml")
        targeted = dl.targeted_set(work, cfg)
        batch = np.load(f"batch-{slug}.npz")
        hx = dl.drift_draws(kind, dec_x, held_x, len(batch["labels"]))[2]
        before = {
            "batch": dl.acc(champion, batch["images"], batch["labels"]),
            "held_drift": dl.acc(champion, hx, held_y),
        }
        for name, fseed in [(n, s) for n in args.recipes.split(",") for s in range(args.seeds)]:
            r = RECIPES[name] if args.seeds == 1 else {**RECIPES[name], "seed": fseed}
            c = cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update=r)})
            t0 = time.perf_counter()
            model = Classification().finetune(c, champion, targeted)
            dec_correct = dl.correct(model, dec_x, dec_y)
            held_correct = dl.correct(model, held_x, held_y)
            row = {
                "drift": kind,
                "recipe": name,
                **r,
                "batch_gain": dl.acc(model, batch["images"], batch["labels"]) - before["batch"],
                "decision_loss": base["decision"] - float(dec_correct.mean()),
                "val_loss": base["val"] - dl.acc(model, vx, vy),
                "held_before": base["held"],
                "held_drift_before": before["held_drift"],
                "held_drift_after": dl.acc(model, hx, held_y),
                "held_broad_loss": base["held"] - float(held_correct.mean()),
                # per digit (1: right), so two recipes can be compared on the same digits
                "decision_correct": "".join(str(int(v)) for v in dec_correct),
                "held_correct": "".join(str(int(v)) for v in held_correct),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            shown = {k: v for k, v in row.items() if not k.endswith("_correct")}
            print(json.dumps(shown), flush=True)
    chosen = choose(rows)
    result = {
        "rows": rows,
        "base": base,
        "chosen": chosen,
        "rule": __doc__.split("\n\n")[2],
        "seconds": round(time.perf_counter() - t_start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join([sys.executable, *sys.argv]),
    }
    name = args.json or (
        "finetune_recipes.json" if args.seeds == 1 else "finetune_recipes_seeds.json"
    )
    (src / name).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    if args.seeds > 1:
        print(seed_spread(rows))
    if len({r["recipe"] for r in rows}) > 1:
        print(paired_versus(rows))


def paired_versus(rows: list[dict]) -> str:
    """Each recipe against the first one run, on the same digits: per digit, the change in
    correctness averaged over every (drift, seed) the two share; 95 % paired-bootstrap interval
    over the digits, in points (> 0: the recipe keeps more). Decision half (the gate's pool)
    and held-out half (reported, deciding nothing), over all drifts and per drift."""
    from synthcv.tasks.stats import paired_mean_ci

    def bits(r: dict, key: str) -> np.ndarray:
        return np.frombuffer(r[key].encode(), np.uint8).astype(np.int64) - ord("0")

    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    by = {(r["recipe"], r["drift"], r.get("seed", 0)): r for r in rows if "held_correct" in r}
    lines = [
        f"| recipe − {recipes[0]} | drifts | undrifted pool (decision) | held out (reported) |",
        "|---|---|---|---|",
    ]
    for other in recipes[1:]:
        pairs = [
            (by[k], by[(other, *k[1:])]) for k in by if k[0] == recipes[0] and (other, *k[1:]) in by
        ]
        for drift in [None, *dict.fromkeys(a["drift"] for a, _ in pairs)]:
            sel = [(a, b) for a, b in pairs if drift in (None, a["drift"])]
            if not sel:
                continue
            cells = []
            for key in ("decision_correct", "held_correct"):
                diff = np.mean([bits(b, key) - bits(a, key) for a, b in sel], axis=0)
                c = paired_mean_ci(diff)
                cells.append(f"{100 * c['mean']:+.2f} [{100 * c['lo']:+.2f}, {100 * c['hi']:+.2f}]")
            lines.append(f"| {other} | {drift or 'all'} ({len(sel)}) | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def choose(rows: list[dict]) -> str:
    """The rule of the module docstring, on the decision columns only."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["recipe"], []).append(r)
    mean = {
        k: (np.mean([r["batch_gain"] for r in v]), np.mean([r["decision_loss"] for r in v]))
        for k, v in by.items()
    }
    ok = [k for k, (_, loss) in mean.items() if loss <= 0.005]
    if ok:
        return max(ok, key=lambda k: mean[k][0])
    return min(mean, key=lambda k: mean[k][1])


def seed_spread(rows: list[dict]) -> str:
    """Per recipe and drift: the held-out figures' mean, 95 % t-interval and range over the
    fine-tune seeds (the same champion, targeted set and batches: only the seed moves)."""
    from synthcv.tasks.stats import mean_ci

    def ci(v: list[float]) -> str:
        s = mean_ci([100 * x for x in v])
        return f"{s['mean']:+.2f} ± {s['half']:.2f} ({100 * min(v):+.1f}…{100 * max(v):+.1f})"

    lines = [
        "| recipe | drift | seeds | held-out drifted gain | recovered (mean) | "
        "held-out broad change |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for x in rows:
        groups.setdefault((x["recipe"], x["drift"]), []).append(x)
    for (recipe, drift), g in groups.items():
        gain = [x["held_drift_after"] - x["held_drift_before"] for x in g]
        drop = g[0]["held_before"] - g[0]["held_drift_before"]  # what the drift cost
        rec = np.mean(gain) / drop if drop > 0 else float("nan")  # nan: nothing to recover
        lines.append(
            f"| {recipe} | {drift} | {len(g)} | {ci(gain)} | {100 * rec:.0f} % | "
            f"{ci([-x['held_broad_loss'] for x in g])} |"
        )
    return "\n".join(lines)


def markdown(r: dict) -> str:
    lines = [
        "| recipe | drift | batch gain | decision-half loss | val loss | held-out drifted "
        "before → after | held-out broad loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {x['recipe']} | {x['drift']} | {100 * x['batch_gain']:+.1f} | "
            f"{100 * x['decision_loss']:+.1f} | {100 * x['val_loss']:+.2f} | "
            f"{100 * x['held_drift_before']:.1f} → {100 * x['held_drift_after']:.1f} | "
            f"{100 * x['held_broad_loss']:+.1f} |"
        )
    lines.append(
        f"\nChosen on the decision half: recipe {r['chosen']}. {r['machine']}; "
        f"{r['seconds']} s. `{r['command']}`"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
