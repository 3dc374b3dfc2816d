"""Stage `collab_tokenizer@<name>`: collaborative vectors (stage collab_vectors) -> Semantic IDs.

Params `collab_tokenizers.<name>`: a `tokenizers` entry (protocol + overrides of `rqvae`) plus the
`collab_vectors` entry whose data/vectors/<vectors> it reads. The work is stages/tokenizer.py's, run
in-process on a params file holding only `rqvae` and this entry as `tokenizers.<name>`: the codes,
meta.json and metrics are exactly the tokenizer stage's, written to data/tokenizers/<name> where runs
find any tokenizer, and stages/tokenizer.py (a dep of every tokenizer and so of every code run) stays
as it is. Flags: those of stages/tokenizer.py, with --embeddings/--embed-meta naming the vectors.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import yaml

import tokenizer  # stages/tokenizer.py, a sibling script
from _common import checked, load_params
from lib.collab import CollabTokenizerSpec, check_names
from lib.io import read_json
from lib.runs import load_table_entry
from lib.tokenizers.rqvae import RQVAEConfig


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="a key of params `collab_tokenizers`")
    p.add_argument("--embed-meta", type=Path, required=True, help="the vectors' meta.json (name, protocol)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args, rest = p.parse_known_args(argv)  # the rest goes to the tokenizer stage as it is
    spec, _ = checked(args.params, lambda prm: load_table_entry(prm, "collab_tokenizers", args.name, "rqvae",
                                                                 RQVAEConfig, CollabTokenizerSpec))
    params = load_params(args.params)
    try:
        check_names(params.get("tokenizers") or {}, [args.name])
        vec_meta = read_json(args.embed_meta)
        if vec_meta.get("name") != spec.vectors or vec_meta.get("protocol") != spec.protocol:
            raise ValueError(f"{args.embed_meta} holds vectors {vec_meta.get('name')!r} of protocol "
                             f"{vec_meta.get('protocol')!r}; collab_tokenizers.{args.name} wants "
                             f"{spec.vectors!r} of protocol {spec.protocol!r}")
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    entry = params["collab_tokenizers"][args.name]  # as written (the checked spec holds tuples yaml cannot dump)
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp) / "params.yaml"
        own.write_text(yaml.safe_dump({"rqvae": params.get("rqvae"), "tokenizers": {
            args.name: {"protocol": spec.protocol, "set": entry.get("set") or {}}}}))
        tokenizer.main([*rest, "--name", args.name, "--embed-meta", str(args.embed_meta), "--params", str(own)])


if __name__ == "__main__":
    main()
