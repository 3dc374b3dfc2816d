"""Stage `train_<family>@<run>` for the ranker families: train one SASRec / GPT-2 run, write its top-K lists.

The run is params `runs.<family>.<run>` (lib/runs.py): its backbone's section (`sasrec` or `gpt2`) with the
run's `set` overrides. Content runs read --embeddings and --embed-meta (the item vectors the run names in
`vectors`, lib/vectors.py), code runs read --codes (a tokenizer's codes.npy + meta.json); ID runs read
neither, so dvc.yaml gives them neither as a dependency. The road is lib/road.py, the family's part
lib/models/road.py.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _split import load_split

from _codes import content_levels, load_codes
from _common import checked, dvclive_logger, setup_logging
from lib.io import read_json
from lib.models.config import SeqRecConfig
from lib.models.item_repr import CODE_KINDS, CONTENT_KINDS
from lib.models.road import RankerRun
from lib.road import RunFiles, train_run
from lib.runs import FAMILIES, load_run
from lib.vectors import check_vectors_meta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--family", choices=[f for f in FAMILIES if not f.endswith("generators")], required=True)
    p.add_argument("--run", required=True, help="a key of params runs.<family>")
    for flag in ("split-dir", "items", "model-dir", "recs-dir", "metrics", "plots-dir", "run-info"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    p.add_argument("--embeddings", type=Path, help="item vectors .npy (content runs: data/vectors/<vectors>)")
    p.add_argument("--embed-meta", type=Path, help="the item vectors' meta.json (content runs)")
    p.add_argument("--codes", type=Path, help="tokenizer output directory: codes.npy + meta.json (code runs)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    spec, cfg = checked(args.params, lambda prm: load_run(prm, args.family, args.run, SeqRecConfig))
    setup_logging()
    rep = spec.representation
    for flag, kinds in (("embeddings", CONTENT_KINDS), ("embed_meta", CONTENT_KINDS), ("codes", CODE_KINDS)):
        if rep in kinds and getattr(args, flag) is None:
            p.error(f"representation {rep} needs --{flag.replace('_', '-')}")
    content = None
    if rep in CONTENT_KINDS:
        try:
            check_vectors_meta(read_json(args.embed_meta), spec.vectors, spec.protocol, args.embed_meta)
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
        content = np.load(args.embeddings)
    codes = load_codes(args.codes, spec.protocol, content_levels)[0] if rep in CODE_KINDS else None
    n_items = len(pd.read_parquet(args.items, columns=["item"]))
    split = load_split(args.split_dir, n_items)
    part = RankerRun(args.family, spec, cfg, n_items, split, content=content, codes=codes)
    train_run(args.run, spec, part, split, RunFiles.of(args), cfg.train, dvclive_logger)


if __name__ == "__main__":
    main()
