"""Stage `vector_tokenizer@<name>`: item vectors of data/vectors/<vectors> -> Semantic IDs.

Params `vector_tokenizers.<name>`: a `tokenizers` entry (protocol + overrides of `rqvae`) plus `vectors`,
a key of `text_vectors` (another item text or encoder) or `collab_vectors` (content + a ranker's rows);
lib/vectors.py. The work is stages/tokenizer.py's, run in-process (stages/_inprocess.py) on a params
file holding only `rqvae` and this entry as `tokenizers.<name>`: the codes, meta.json and metrics are
exactly the tokenizer stage's, fit on the training items of the entry's protocol, written to
data/tokenizers/<name> where runs find any tokenizer; stages/tokenizer.py (a dep of every tokenizer and
so of every code run) stays as it is. Vectors built from one protocol's training data (collab) serve only
that protocol; text vectors (protocol null) any. Flags: those of stages/tokenizer.py, with
--embeddings/--embed-meta naming the vectors.
"""
import tokenizer  # stages/tokenizer.py, a sibling script
from _common import checked, load_params
from _inprocess import run_main, wrapper_args
from lib.io import read_json
from lib.runs import load_table_entry
from lib.tokenizers.rqvae import RQVAEConfig
from lib.vectors import VectorTokenizerSpec, check_names, check_vectors_meta


def main(argv=None) -> None:
    args, rest = wrapper_args(__doc__, {"name": "a key of params `vector_tokenizers`"},
                              {"embed-meta": "the vectors' meta.json (name, protocol)"}, argv)
    spec, _ = checked(args.params, lambda prm: load_table_entry(prm, "vector_tokenizers", args.name, "rqvae",
                                                                 RQVAEConfig, VectorTokenizerSpec))
    params = load_params(args.params)
    try:
        check_names({"tokenizers": params.get("tokenizers"), "vector_tokenizers": [args.name]},
                    "data/tokenizers/<name>")
        check_vectors_meta(read_json(args.embed_meta), spec.vectors, spec.protocol, args.embed_meta)
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        raise SystemExit(f"error: {e}") from None
    entry = params["vector_tokenizers"][args.name]  # as written (the checked spec holds tuples yaml cannot dump)
    run_main(tokenizer.main, [*rest, "--name", args.name, "--embed-meta", str(args.embed_meta)],
             {"rqvae": params.get("rqvae"), "tokenizers": {args.name: {"protocol": spec.protocol,
                                                                       "set": entry.get("set") or {}}}})


if __name__ == "__main__":
    main()
