"""Stage `text_vectors@<name>`: the embed stage with another item text or encoder -> data/vectors/<name>.

Params `text_vectors.<name>`: `set`, overrides of the `embed` section (`{template: title}`, `{model:
wordllama-l2-supercat-256}`); lib/vectors.py. The work is stages/embed.py's, run in-process
(stages/_inprocess.py) on a params file holding only the overridden `embed` section: embeddings.npy,
meta.json and the metrics are what the embed stage writes under those params (same pinned numerical
mode, dvc.yaml), and stages/embed.py (a dep of every content run) stays as it is. meta.json then gains
the vectors' `name` and `protocol: null` (item text sees no interactions, so the vectors suit every
protocol), which their readers check (stages vector_tokenizer, train_vector_ranker).
"""
import embed  # stages/embed.py, a sibling script
from _common import checked, load_params
from _inprocess import run_main, wrapper_args
from lib.embed import EmbedConfig
from lib.io import read_json, write_json
from lib.runs import apply_overrides, load_table_entry
from lib.vectors import WRITERS, TextVectorsSpec, check_names


def main(argv=None) -> None:
    args, rest = wrapper_args(__doc__, {"name": "a key of params `text_vectors`"}, {  # rest: --items
        "out-dir": "output directory: embeddings.npy, meta.json", "metrics": "output: metrics JSON"}, argv)
    checked(args.params, lambda prm: load_table_entry(prm, "text_vectors", args.name, "embed", EmbedConfig,
                                                      TextVectorsSpec))
    params = load_params(args.params)
    try:
        check_names({t: params.get(t) for t in WRITERS}, "data/vectors/<name>")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    overrides = params["text_vectors"][args.name].get("set") or {}  # as written: plain YAML for the params file
    section = apply_overrides(params.get("embed"), overrides, f"text_vectors.{args.name}.set", EmbedConfig)
    run_main(embed.main, [*rest, "--out-dir", str(args.out_dir), "--metrics", str(args.metrics)], {"embed": section})
    write_json({"name": args.name, "protocol": None, **read_json(args.out_dir / "meta.json")},
               args.out_dir / "meta.json")
    write_json({"name": args.name, **read_json(args.metrics)}, args.metrics)


if __name__ == "__main__":
    main()
