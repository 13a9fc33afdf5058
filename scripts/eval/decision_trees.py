"""Boosted trees against the network on the 54 features (singing decision), held out alike.

Usage: decision_trees.py FEATURES.csv   (the CSV of `stemscribe-lab decision-features`)

Needs numpy and scikit-learn (`pip install scikit-learn`; the training script itself does
not). Uses fit_singing_decision.py's loading, grouped folds, class weights and threshold rule,
so the network's row equals that script's. Prints, per model, the share of each class decided
right, the share of the others refused where 99% of sung clips get notes, and the log loss.
About 12 minutes on 2 cores.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

_spec = importlib.util.spec_from_file_location(
    "fit", Path(__file__).resolve().parents[1] / "train" / "fit_singing_decision.py")
fit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fit)

CONFIGS = [
    dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0),
    dict(max_iter=400, learning_rate=0.03, max_leaf_nodes=31, min_samples_leaf=20,
         l2_regularization=1.0),
    dict(max_iter=300, learning_rate=0.05, max_depth=4, min_samples_leaf=40),
]


def trees(params):
    def train(x, y):
        model = HistGradientBoostingClassifier(random_state=0, **params)
        model.fit(x, y, sample_weight=fit.sample_weights(y))
        return model
    return train


def held_out(train, x, y, sources, k=10, seed=26, inner=4):
    """As fit_singing_decision.held_out, for a model with predict_proba."""
    folds = fit.folds_of(sources, k, seed)
    p = np.zeros((len(y), 3))
    thresholds = np.zeros(len(y))
    for f in range(k):
        test, part = folds == f, folds != f
        p[test] = train(x[part], y[part]).predict_proba(x[test])
        inner_folds = fit.folds_of([s for s, t in zip(sources, part) if t], inner, seed + f)
        xt, yt = x[part], y[part]
        inner_p = np.zeros(part.sum())
        for g in range(inner):
            model = train(xt[inner_folds != g], yt[inner_folds != g])
            inner_p[inner_folds == g] = model.predict_proba(xt[inner_folds == g])[:, 0]
        thresholds[test] = fit.threshold_for(inner_p, yt)
    return p, thresholds


def show(name, rows, y, p, thresholds):
    decided = fit.decisions(p, thresholds)
    kinds = ["sung", "speech", "rap", "instrumental"]
    of = {kind: np.array([r["kind"] == kind for r in rows]) for kind in kinds}
    right = [100 * ((decided[of[k]] == 0).mean() if k == "sung" else (decided[of[k]] != 0).mean())
             for k in kinds]
    at99 = np.quantile(p[y == 0, 0], 0.01)
    refused = [100 * (p[of[k], 0] < at99).mean() for k in kinds[1:]]
    loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1)))
    print(f"{name}: sung {right[0]:.1f}%, speech {right[1]:.1f}%, rap {right[2]:.1f}%, "
          f"instrumental {right[3]:.1f}% | at 99% sung: {refused[0]:.1f} / {refused[1]:.1f} / "
          f"{refused[2]:.1f}% | log loss {loss:.3f}", flush=True)


def main():
    rows, x, y, _, _ = fit.load(sys.argv[1])
    sources = [r["source"] for r in rows]
    p, thresholds = fit.held_out(fit.Classifier(fit.fit_mlp, x, y, sources), sources, 10)
    show("the network on the same features", rows, y, p, thresholds)
    for params in CONFIGS:
        p, thresholds = held_out(trees(params), x, y, sources)
        show(f"trees {params}", rows, y, p, thresholds)


if __name__ == "__main__":
    main()
