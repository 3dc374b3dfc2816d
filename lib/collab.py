"""Collaborative item vectors: content embeddings next to the item rows a trained ranker learned.

The tokenizer input of collaborative Semantic IDs: [L2-normalised content ; weight * L2-normalised
learned row], so items that are consumed together get nearby vectors and hence shared codes — the
aim of LETTER's collaborative regulariser (Wang et al. 2024, "Learnable Item Tokenization for
Generative Recommendation"), reached here by concatenation instead of a loss term.

An item without a training interaction (cold) has no learned row worth the name: in SASRec-ID its ID
row was only ever a negative, pushed away from every user. Its collaborative part is instead the
prediction of a ridge regressor content -> learned row, fit on warm items only (an attribute-to-feature
mapping, Gantner et al., ICDM 2010, in its simplest closed form). Its quality is measured on a seeded
held-out share of the warm items before the final fit on all of them.

All arrays are row-aligned to the item ids: row i = item i, row 0 = padding (zeros).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.config import ConfigError, from_dict, table
from lib.embed import round_embeddings

# where SeqRecModule keeps the ID table (SeqRecModule.model = SeqRec, .items = ItemRepresentation, .table)
TABLE_KEY = "model.items.table.weight"
# representations whose item matrix is exactly that table (the fusion ones add a content/code part to it)
TABLE_REPRESENTATIONS = ("id", "content_init")


@dataclass(frozen=True)
class CollabVectorsConfig:
    """Params `vectors.collab.<name>`: which content vectors, which run's item rows, and how they meet."""
    vectors: str  # a key of params `vectors.embed`: the content part (and the ridge regression's input)
    run: str  # a ranker run (runs.rankers) whose checkpoint holds the rows: data/models/<run>
    protocol: str  # the run's protocol (checked against its run.json): warm = a training item of this split
    weight: float = 1.0  # scale of the L2-normalised collaborative part against the unit content part
    ridge_alpha: float = 1.0  # L2 penalty of the content -> collaborative ridge regression (intercept unpenalised)
    holdout: float = 0.1  # share of warm items held out to measure the regressor (then refit on all); 0 = none
    seed: int = 0  # which warm items are held out

    def validate(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"weight: must be > 0, got {self.weight}")
        if self.ridge_alpha <= 0:
            raise ValueError(f"ridge_alpha: must be > 0, got {self.ridge_alpha}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout: must be in [0, 1), got {self.holdout}")


def load_entry(params: dict, table_name: str, name: str, cls: type):
    """Params `<table>.<name>` as a checked `cls`: a table whose entry is the whole config (unlike
    lib.config.load_table_entry, whose entries override a section). Errors name the key."""
    entry = table(params, table_name).get(name)
    if entry is None:
        raise ConfigError(f"{table_name}.{name}: no such entry in params")
    return from_dict(cls, entry, f"{table_name}.{name}")


def check_run(run_info: dict, cfg: CollabVectorsConfig) -> None:
    """The run's run.json must be the configured run, trained under the configured protocol."""
    if run_info.get("name") != cfg.run:
        raise ValueError(f"run.json describes run {run_info.get('name')!r}, collab_vectors names {cfg.run!r}")
    if run_info.get("protocol") != cfg.protocol:
        raise ValueError(f"run {cfg.run!r} was trained under protocol {run_info.get('protocol')!r}, "
                         f"collab_vectors says {cfg.protocol!r}")


def item_rows(checkpoint: dict) -> np.ndarray:
    """A ranker checkpoint (as train_seqrec saves it) -> its learned item matrix (N+1, d), row 0 = 0."""
    hp = checkpoint.get("hyper_parameters") or {}
    rep = hp.get("representation")
    if rep not in TABLE_REPRESENTATIONS:
        raise ValueError(f"checkpoint of representation {rep!r}: its item rows are not one table; "
                         f"use a run of {list(TABLE_REPRESENTATIONS)}")
    rows = np.asarray(checkpoint["state_dict"][TABLE_KEY].detach().cpu().float(), dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] != hp.get("n_items", -1) + 1:
        raise ValueError(f"item table of shape {rows.shape} does not match n_items={hp.get('n_items')}")
    rows[0] = 0.0
    return rows


@dataclass(frozen=True)
class Ridge:
    """y ~ x @ coef + intercept."""
    coef: np.ndarray  # (c, d)
    intercept: np.ndarray  # (d,)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, c) -> (n, d)."""
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> Ridge:
    """Closed-form ridge regression of y (n, d) on x (n, c): centred, so the intercept is not penalised."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)  # (c, d)
    return Ridge(coef, y_mean - x_mean @ coef)


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d), (n, d) -> (n,) cosine of each pair of rows (0 where a row is zero)."""
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide((a * b).sum(1), den, out=np.zeros(len(a)), where=den > 0)


def heldout_quality(x: np.ndarray, y: np.ndarray, alpha: float, holdout: float, seed: int) -> dict:
    """Fit on all but a seeded `holdout` share of the rows, score the rest: R^2 (pooled over the d
    outputs, against the held-out rows' own mean) and the mean cosine of predicted vs learned rows,
    next to the cosine of always predicting the fit rows' mean (what a useless regressor scores)."""
    n = len(x)
    n_out = int(round(holdout * n))
    if n_out == 0:
        return {"holdout_items": 0, "holdout_r2": None, "holdout_cosine": None, "holdout_cosine_of_mean": None}
    if n_out >= n - 1:
        raise ValueError(f"holdout {holdout} leaves {n - n_out} of {n} warm items to fit the regressor")
    order = np.random.default_rng(seed).permutation(n)
    out, fit = np.sort(order[:n_out]), np.sort(order[n_out:])
    pred = fit_ridge(x[fit], y[fit], alpha).predict(x[out])
    truth = y[out]
    sse = float(((truth - pred) ** 2).sum())
    sst = float(((truth - truth.mean(0)) ** 2).sum())
    mean_row = np.broadcast_to(y[fit].mean(0), truth.shape)
    return {"holdout_items": n_out, "holdout_r2": round(1.0 - sse / sst, 6) if sst > 0 else None,
            "holdout_cosine": round(float(_row_cosine(pred, truth).mean()), 6),
            "holdout_cosine_of_mean": round(float(_row_cosine(mean_row, truth).mean()), 6)}


def collab_matrix(content: np.ndarray, learned: np.ndarray, warm: np.ndarray, alpha: float
                  ) -> tuple[np.ndarray, Ridge]:
    """(N+1, d) collaborative rows: warm items keep their learned row, every other item gets the ridge
    prediction from its content (the regressor is fit on warm rows only), row 0 = 0.

    content (N+1, c), learned (N+1, d), warm (N+1,) bool (row 0 is never warm).
    """
    warm = np.asarray(warm, dtype=bool).copy()
    warm[0] = False
    if not warm.any():
        raise ValueError("no warm item: nothing to fit the content -> collaborative regressor on")
    ridge = fit_ridge(content[warm], learned[warm], alpha)
    out = np.zeros(learned.shape, dtype=np.float64)
    out[warm] = learned[warm]
    cold = ~warm
    cold[0] = False
    out[cold] = ridge.predict(content[cold])
    return out, ridge


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x, dtype=np.float64), where=norm > 0)


def tokenizer_input(content: np.ndarray, collab: np.ndarray, weight: float) -> np.ndarray:
    """(N+1, c) content, (N+1, d) collaborative rows -> (N+1, c + d) [unit content ; weight * unit collab].

    Each part is L2-normalised per row so that `weight` alone sets their balance (the learned rows'
    scale is arbitrary); a zero row (padding) stays zero.
    """
    return np.hstack([_unit_rows(content), weight * _unit_rows(collab)])


def collab_vectors(content: np.ndarray, learned: np.ndarray, warm: np.ndarray, cfg: CollabVectorsConfig
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(tokenizer input (N+1, c+d), collaborative rows (N+1, d), facts); both float32 on the embed
    stage's 1e-5 grid (lib.embed.round_embeddings), so a rerun elsewhere rarely changes a bit.

    content (N+1, c) the embed stage's rows; learned (N+1, d) `item_rows` of the run; warm (N+1,) bool.
    """
    if content.shape[0] != learned.shape[0] or warm.shape[0] != content.shape[0]:
        raise ValueError(f"rows differ: content {content.shape}, learned rows {learned.shape}, warm flags "
                         f"{warm.shape}: every array has one row per item id plus padding")
    warm = np.asarray(warm, dtype=bool).copy()
    warm[0] = False
    quality = heldout_quality(content[warm], learned[warm], cfg.ridge_alpha, cfg.holdout, cfg.seed)
    collab, ridge = collab_matrix(content, learned, warm, cfg.ridge_alpha)
    fit_pred = ridge.predict(content[warm])
    sst = float(((learned[warm] - learned[warm].mean(0)) ** 2).sum())
    cold = ~warm
    cold[0] = False
    facts = {"n_items": int(len(content) - 1), "warm_items": int(warm.sum()), "cold_items": int(cold.sum()),
             "content_dim": int(content.shape[1]), "collab_dim": int(learned.shape[1]),
             **quality,
             "fit_r2": round(1.0 - float(((learned[warm] - fit_pred) ** 2).sum()) / sst, 6) if sst > 0 else None,
             "warm_row_norm_mean": round(float(np.linalg.norm(collab[warm], axis=1).mean()), 6),
             "predicted_row_norm_mean": (round(float(np.linalg.norm(collab[cold], axis=1).mean()), 6)
                                         if cold.any() else None),
             "predicted_items": np.flatnonzero(cold).tolist()}
    return (round_embeddings(tokenizer_input(content, collab, cfg.weight)), round_embeddings(collab), facts)
