"""Data drift between a reference and a current set of images: which features moved, by how
much, and whether the move is more than sampling noise.

The tests follow the practice of Evidently's defaults, stated here so a reader can check them:
a numeric feature is tested with the two-sample Kolmogorov–Smirnov test when both sets have at
most ``LARGE_N`` images, and by the Wasserstein distance in units of the reference's standard
deviation (drift at ``WASSERSTEIN_THRESHOLD`` or more) above that, where any p-value would flag
shifts too small to matter; the class mix by a chi-square test (small) or the Jensen–Shannon
distance (large); the embedding by the maximum mean discrepancy with a permutation p-value.
All p-values of one report are corrected together (Holm–Bonferroni), so on undrifted data the
chance of any alarm is at most ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from synthcv.monitor.features import COLOUR_FEATURES, FEATURES, image_features
from synthcv.monitor.model_checks import Outputs
from synthcv.monitor.sources import OBJECT_FEATURES

LARGE_N = 1000
WASSERSTEIN_THRESHOLD = 0.1
JS_THRESHOLD = 0.1
DEFAULT_ALPHA = 0.05
PSI_BINS = 10


@dataclass
class FeatureDrift:
    """One feature's comparison. ``p_adjusted`` is Holm-corrected over the report's tests."""

    feature: str
    meaning: str
    test: str
    reference_mean: float
    current_mean: float
    statistic: float
    p_value: float | None = None
    p_adjusted: float | None = None
    wasserstein_norm: float = 0.0
    psi: float = 0.0
    drifted: bool = False


@dataclass
class DriftReport:
    """Everything ``synthcv monitor`` found; ``drifted`` is the verdict a pipeline branches on."""

    reference: str
    current: str
    n_reference: int
    n_current: int
    alpha: float
    features: list[FeatureDrift]
    embedding: FeatureDrift | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: performance, calibration, estimate and slices when a model was given (model_checks)
    model: dict[str, Any] | None = None
    #: feature -> (reference values, current values): what the report's histograms draw
    values: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def tests(self) -> list[FeatureDrift]:
        return [*self.features, *([self.embedding] if self.embedding else [])]

    @property
    def drifted_features(self) -> list[FeatureDrift]:
        return [f for f in self.tests if f.drifted]

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_features)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["values"]
        d["drifted"] = self.drifted
        d["drifted_features"] = [f.feature for f in self.drifted_features]
        return d


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index over the reference's quantile bins (0: same shares)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(reference, edges)[0] / len(reference)
    c = np.histogram(current, edges)[0] / len(current)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric(name: str, meaning: str, ref: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    scale = float(np.std(ref))
    w = float(stats.wasserstein_distance(ref, cur))
    w_norm = w / scale if scale > 1e-12 else (0.0 if w < 1e-12 else math.inf)
    common = dict(
        feature=name,
        meaning=meaning,
        reference_mean=float(np.mean(ref)),
        current_mean=float(np.mean(cur)),
        wasserstein_norm=w_norm,
        psi=psi(ref, cur),
    )
    if max(len(ref), len(cur)) <= LARGE_N:
        # scipy's exact distribution fails (with a warning) on larger samples: asymptotic there
        method = "auto" if min(len(ref), len(cur)) <= 50 else "asymp"
        ks = stats.ks_2samp(ref, cur, method=method)
        return FeatureDrift(
            test="KS", statistic=float(ks.statistic), p_value=float(ks.pvalue), **common
        )
    return FeatureDrift(
        test=f"Wasserstein/std >= {WASSERSTEIN_THRESHOLD}",
        statistic=w_norm,
        drifted=w_norm >= WASSERSTEIN_THRESHOLD,
        **common,
    )


def _class_mix(
    ref: np.ndarray, cur: np.ndarray, name: str = "class_mix", meaning: str = "share of each label"
) -> FeatureDrift:
    classes = np.union1d(ref, cur)
    r = np.array([(ref == k).sum() for k in classes], dtype=np.float64)
    c = np.array([(cur == k).sum() for k in classes], dtype=np.float64)
    common = dict(
        feature=name,
        meaning=meaning,
        reference_mean=float("nan"),
        current_mean=float("nan"),
    )
    if max(len(ref), len(cur)) <= LARGE_N:
        if len(classes) < 2:
            return FeatureDrift(test="chi-square", statistic=0.0, p_value=1.0, **common)
        chi = stats.chi2_contingency(np.stack([r, c]))
        return FeatureDrift(
            test="chi-square", statistic=float(chi.statistic), p_value=float(chi.pvalue), **common
        )
    js = float(jensenshannon(r / r.sum(), c / c.sum(), base=2))
    return FeatureDrift(
        test=f"Jensen-Shannon >= {JS_THRESHOLD}", statistic=js, drifted=js >= JS_THRESHOLD, **common
    )


def mmd_permutation_test(
    a: np.ndarray, b: np.ndarray, permutations: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel (median-distance bandwidth) and its permutation p-value
    (the share of label shuffles with an MMD² at least as large, counting the observed one)."""
    x = np.concatenate([a, b]).astype(np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    off = d2[~np.eye(len(x), dtype=bool)]
    bandwidth = float(np.median(off)) or 1.0
    k = np.exp(-d2 / bandwidth)
    np.fill_diagonal(k, 0.0)
    n, m = len(a), len(b)

    def mmd2(idx: np.ndarray) -> float:
        ia, ib = idx[:n], idx[n:]
        kaa = k[np.ix_(ia, ia)].sum() / (n * (n - 1))
        kbb = k[np.ix_(ib, ib)].sum() / (m * (m - 1))
        kab = k[np.ix_(ia, ib)].sum() / (n * m)
        return float(kaa + kbb - 2 * kab)

    observed = mmd2(np.arange(n + m))
    rng = np.random.default_rng(seed)
    null = [mmd2(rng.permutation(n + m)) for _ in range(permutations)]
    p = (1 + sum(v >= observed for v in null)) / (permutations + 1)
    return observed, float(p)


def _holm(tests: list[FeatureDrift], alpha: float) -> None:
    """Holm–Bonferroni over the tests that have a p-value; sets p_adjusted and drifted."""
    with_p = [t for t in tests if t.p_value is not None]
    order = sorted(with_p, key=lambda t: t.p_value)  # type: ignore[arg-type, return-value]
    running = 0.0
    for i, t in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * float(t.p_value)))  # type: ignore[arg-type]
        t.p_adjusted = running
        t.drifted = running <= alpha


def detect_drift(
    reference: np.ndarray | Sequence[np.ndarray],
    current: np.ndarray | Sequence[np.ndarray],
    *,
    reference_objects: dict[str, np.ndarray] | None = None,
    current_objects: dict[str, np.ndarray] | None = None,
    reference_object_classes: np.ndarray | None = None,
    current_object_classes: np.ndarray | None = None,
    reference_outputs: Outputs | None = None,
    current_outputs: Outputs | None = None,
    extra_numeric: list[tuple[str, str, np.ndarray, np.ndarray]] | None = None,
    extra_mixes: list[tuple[str, str, np.ndarray, np.ndarray]] | None = None,
    reference_labels: np.ndarray | None = None,
    current_labels: np.ndarray | None = None,
    reference_embedding: np.ndarray | None = None,
    current_embedding: np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    max_embedding: int = 500,
    permutations: int = 200,
    seed: int = 0,
    names: tuple[str, str] = ("reference", "current"),
) -> DriftReport:
    """Compare ``current`` images with ``reference`` ones (uint8, (N,H,W[,C]) or a list of
    images of any sizes). Objects (per-object features and class names) and a model's outputs
    add their rows to the same Holm-corrected family, as do ``extra_numeric`` and
    ``extra_mixes``: (name, meaning, reference values, current values) of other quantities — a
    detector's scores, counts and predicted classes."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError(
            f"need at least 2 images in each set, got {len(reference)} reference and "
            f"{len(current)} current"
        )
    ref_f, cur_f = image_features(reference), image_features(current)
    meanings = {**FEATURES, **COLOUR_FEATURES}
    shared = [f for f in ref_f if f in cur_f]
    rows = [_numeric(f, meanings[f], ref_f[f], cur_f[f]) for f in shared]
    values = {f: (ref_f[f], cur_f[f]) for f in shared}
    if reference_labels is not None and current_labels is not None:
        rl, cl = np.asarray(reference_labels), np.asarray(current_labels)
        if (rl >= 0).any() and (cl >= 0).any():
            rows.append(_class_mix(rl[rl >= 0], cl[cl >= 0]))
    for name, meaning in OBJECT_FEATURES.items():
        ro, co = (reference_objects or {}).get(name), (current_objects or {}).get(name)
        if ro is not None and co is not None and len(ro) >= 2 and len(co) >= 2:
            rows.append(_numeric(name, meaning, ro, co))
            values[name] = (ro, co)
    ro_cls, co_cls = reference_object_classes, current_object_classes
    if ro_cls is not None and co_cls is not None and len(ro_cls) and len(co_cls):
        rows.append(
            _class_mix(
                np.asarray(ro_cls).astype(str),
                np.asarray(co_cls).astype(str),
                "object_class_mix",
                "share of each class among the labelled objects",
            )
        )
    for name, meaning, rv, cv in extra_numeric or []:
        if len(rv) >= 2 and len(cv) >= 2:
            rows.append(_numeric(name, meaning, np.asarray(rv, float), np.asarray(cv, float)))
            values[name] = (np.asarray(rv, float), np.asarray(cv, float))
    for name, meaning, rv, cv in extra_mixes or []:
        if len(rv) and len(cv):
            rows.append(
                _class_mix(np.asarray(rv).astype(str), np.asarray(cv).astype(str), name, meaning)
            )
    if reference_outputs is not None and current_outputs is not None:
        rows.append(
            _class_mix(
                reference_outputs.predicted,
                current_outputs.predicted,
                "predicted_class_mix",
                "share of each class the model predicts",
            )
        )
        rc, cc = reference_outputs.confidence, current_outputs.confidence
        rows.append(_numeric("confidence", "the model's top class probability", rc, cc))
        values["confidence"] = (rc, cc)
    emb = None
    if reference_embedding is not None and current_embedding is not None:
        rng = np.random.default_rng(seed)
        a = reference_embedding[rng.permutation(len(reference_embedding))[:max_embedding]]
        b = current_embedding[rng.permutation(len(current_embedding))[:max_embedding]]
        value, p = mmd_permutation_test(a, b, permutations=permutations, seed=seed)
        emb = FeatureDrift(
            feature="embedding",
            meaning="classifier features (MMD², RBF kernel, permutation test)",
            test=f"MMD² permutation ({permutations})",
            reference_mean=float("nan"),
            current_mean=float("nan"),
            statistic=value,
            p_value=p,
        )
    report = DriftReport(
        reference=names[0],
        current=names[1],
        n_reference=len(reference),
        n_current=len(current),
        alpha=alpha,
        features=rows,
        embedding=emb,
        values=values,
    )
    _holm(report.tests, alpha)
    return report
