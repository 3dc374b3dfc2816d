"""Stage `decoding`: decoders of one trained Semantic-ID generator compared on validation users.

lib/sid/decoding_bench.py is the benchmark. Reads the run's checkpoint (its own config: model, numerical
mode, decoding options), its run.json, its tokenizer's codes and the validation rows of its split; writes
metrics/decoding.json.
"""
import numpy as np
import pandas as pd
import torch

from _catalogue import load_catalogue
from _codes import load_codes
from _common import load_section, setup_logging, stage_args
from lib.catalogue import list_mask
from lib.io import read_json, write_json
from lib.sid.decoding_bench import DecodingConfig, benchmark
from lib.sid.training import VOCAB_KEYS, SidModule, validation_subset
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from lib.trainer import torch_device


def main() -> None:
    args = stage_args(__doc__, {
        "model": "the run's model.ckpt (train_generators@<run>)",
        "run-info": "the run's run.json: its family, tokenizer and protocol are checked",
        "codes-dir": "the run's tokenizer output: codes.npy (N+1, C) and meta.json",
        "val": "the split's val.parquet (user, history, target)",
        "catalogue": "the split's catalogue.parquet: the validation lists' candidates (lib/catalogue.py)",
        "metrics": "output: the benchmark JSON",
    })
    cfg = load_section(args.params, "decoding", DecodingConfig)
    setup_logging()
    run = read_json(args.run_info)
    given = {"name": cfg.run, "family": "generators", "tokenizer": cfg.tokenizer, "protocol": cfg.protocol}
    wrong = {k: run.get(k) for k, v in given.items() if run.get(k) != v}
    if wrong:
        raise SystemExit(f"error: params decoding {given} do not match {args.run_info}: {wrong}")
    module = SidModule.load_from_checkpoint(str(args.model), map_location="cpu")

    def vocab_of(codes: np.ndarray, meta: dict) -> SidVocab:
        if {k: meta[k] for k in VOCAB_KEYS} != module.hparams.vocab_meta:
            raise ValueError(f"its token layout is not the one {args.model} was trained on")
        return SidVocab.from_meta(codes, meta, module.cfg.model.user_buckets)

    vocab, _ = load_codes(args.codes_dir, cfg.protocol, vocab_of)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows = validation_subset(pd.read_parquet(args.val), cfg.users, cfg.seed)
    known = list_mask(load_catalogue(args.catalogue.parent, vocab.n_items), "val")
    out = benchmark(module.model, vocab, SidTrie(vocab.codes, vocab.sizes, known), rows, module.cfg, cfg,
                    torch_device(cfg.device))
    write_json({"run": cfg.run, "split": "val", "seed": cfg.seed, **out}, args.metrics)


if __name__ == "__main__":
    main()
