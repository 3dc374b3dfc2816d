"""Stage `train_parallel_generators@<run>`: RPG over a tokenizer's long parallel codes, then exact top-K lists.

The run is params `runs.parallel_generators.<run>` (lib/runs.py): section `rpg` with the run's `set`
overrides. With model.digit_init codebook the digit embeddings start as the tokenizer's centroids (its
centroids.npy). The road is lib/road.py, the family's part lib/rpg/road.py.
"""
import numpy as np
from _split import load_split

from _codes import content_levels, load_codes
from _common import checked, dvclive_logger, setup_logging, stage_args
from lib.road import RunFiles, train_run
from lib.rpg.config import RPGConfig
from lib.rpg.road import RPGRun
from lib.runs import load_run


def digits_and_codebook(codes: np.ndarray, meta: dict) -> tuple[np.ndarray, int]:
    """(N+1, levels) content digits (the collision level is not one) and the largest of their codebook sizes."""
    return content_levels(codes, meta), int(max(meta["codebook_sizes"][: int(meta["levels"])]))


def tokenizer_centroids(codes_dir) -> np.ndarray:
    """(m, K, d_sub) centroids of a pq/opq tokenizer (its centroids.npy), or a clear exit."""
    path = codes_dir / "centroids.npy"
    if not path.is_file():
        raise SystemExit(f"error: model.digit_init codebook needs a pq/opq tokenizer's centroids, not found: {path}")
    return np.load(path)


def main() -> None:
    args = stage_args(__doc__, {
        "split-dir": "train/val/test parquet files, catalogue.parquet and split.json of the split stage",
        "codes-dir": "tokenizer output: codes.npy (N+1, digits [+ collision level]), meta.json, centroids.npy",
        "model-dir": "output: model.ckpt (weights + config + codes)",
        "recs-dir": "output: val.parquet and test.parquet top-K lists",
        "metrics": "output: training facts JSON",
        "plots-dir": "output: dvclive training curves",
        "run-info": "output: run.json (what the evaluator and the report know of the run)",
    }, extra=lambda p: p.add_argument("--run", required=True, help="a key of params runs.parallel_generators"))
    spec, cfg = checked(args.params, lambda prm: load_run(prm, "parallel_generators", args.run, RPGConfig))
    setup_logging()
    (digits, codebook_size), meta = load_codes(args.codes_dir, spec.protocol, digits_and_codebook)
    split = load_split(args.split_dir, len(digits) - 1)
    centroids = tokenizer_centroids(args.codes_dir) if cfg.model.digit_init == "codebook" else None
    part = RPGRun(cfg, digits, codebook_size, meta, spec.tokenizer, split, centroids)
    train_run(args.run, spec, part, split, RunFiles.of(args), cfg.train, dvclive_logger)


if __name__ == "__main__":
    main()
