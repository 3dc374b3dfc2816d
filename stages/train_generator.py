"""Stage `train_generators@<run>`: GPT-2 generating Semantic IDs (TIGER-style), then top-K lists by beam search.

The run is params `runs.generators.<run>` (lib/runs.py): section `gpt2_sid` with the run's `set` overrides;
its tokenizer's codes come in through --codes-dir. The road is lib/road.py, the family's part lib/sid/road.py
(tries over the split's catalogue, TIGER's cold-start rule when decode.cold_every > 0).
"""
from _split import load_split

from _codes import load_codes
from _common import checked, dvclive_logger, setup_logging, stage_args
from lib.road import RunFiles, train_run
from lib.runs import load_run
from lib.sid.config import GPT2SidConfig
from lib.sid.road import GeneratorRun
from lib.sid.vocab import SidVocab


def main() -> None:
    args = stage_args(__doc__, {
        "split-dir": "train/val/test parquet files, catalogue.parquet and split.json of the split stage",
        "codes-dir": "tokenizer output: codes.npy (N+1, C) and meta.json",
        "model-dir": "output: model.ckpt (weights + config)",
        "recs-dir": "output: val.parquet and test.parquet top-K lists",
        "metrics": "output: training facts and Semantic-ID metrics JSON",
        "plots-dir": "output: dvclive training curves",
        "run-info": "output: run.json (what the evaluator and the report know of the run)",
    }, extra=lambda p: p.add_argument("--run", required=True, help="a key of params runs.generators"))
    spec, cfg = checked(args.params, lambda prm: load_run(prm, "generators", args.run, GPT2SidConfig))
    setup_logging()
    vocab, meta = load_codes(args.codes_dir, spec.protocol,
                             lambda codes, meta: SidVocab.from_meta(codes, meta, cfg.model.user_buckets))
    split = load_split(args.split_dir, vocab.n_items)
    part = GeneratorRun(cfg, vocab, meta, spec.tokenizer, split)
    train_run(args.run, spec, part, split, RunFiles.of(args), cfg.train, dvclive_logger)


if __name__ == "__main__":
    main()
