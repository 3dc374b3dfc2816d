"""Stage `train_vector_rankers@<run>`: a content ranker on the item vectors of data/vectors/<vectors>.

Params `vector_rankers.<run>`: a `runs.content_rankers` entry (backbone, representation, protocol, set)
plus `vectors`, a key of `text_vectors` or `collab_vectors`; lib/vectors.py. The work is
stages/train_seqrec.py's, run in-process (stages/_inprocess.py) on a params file holding only the
backbone's section and this entry, less `vectors`, as `runs.content_rankers.<run>`: model, lists,
metrics and curves are exactly a content run's on those vectors, and stages/train_seqrec.py (a dep of
every trained run) stays as it is. run.json then gains `vectors`, the name the report tells content
representations apart by. Flags: those of stages/train_seqrec.py for a content run (--embeddings naming
the vectors), less --family, plus --embed-meta (the vectors' meta.json, checked).
"""
import train_seqrec  # stages/train_seqrec.py, a sibling script
from _common import checked, load_params
from _inprocess import run_main, wrapper_args
from lib.io import read_json, write_json
from lib.models.config import SeqRecConfig
from lib.runs import FAMILIES
from lib.vectors import RANKER_FAMILY, check_names, check_vectors_meta, load_vector_run


def main(argv=None) -> None:
    args, rest = wrapper_args(__doc__, {"run": "a key of params `vector_rankers`"}, {
        "embed-meta": "the vectors' meta.json (name, protocol)", "run-info": "output: the run's run.json"}, argv)
    vectors, spec, _ = checked(args.params, lambda prm: load_vector_run(prm, "vector_rankers", args.run,
                                                                        SeqRecConfig))
    params = load_params(args.params)
    runs = params.get("runs") or {}
    try:
        check_names({**{f"runs.{f}": runs.get(f) for f in FAMILIES}, "vector_rankers": [args.run]},
                    "results/<run>")
        check_vectors_meta(read_json(args.embed_meta), vectors, spec.protocol, args.embed_meta)
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        raise SystemExit(f"error: {e}") from None
    entry = {k: v for k, v in params["vector_rankers"][args.run].items() if k != "vectors"}  # as written
    run_main(train_seqrec.main, [*rest, "--family", RANKER_FAMILY, "--run", args.run, "--run-info", str(args.run_info)],
             {spec.backbone: params.get(spec.backbone), "runs": {RANKER_FAMILY: {args.run: entry}}})
    write_json({**read_json(args.run_info), "vectors": vectors}, args.run_info)


if __name__ == "__main__":
    main()
