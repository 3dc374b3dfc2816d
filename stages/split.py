"""Stage `split@<protocol>`: encoded interactions -> train / validation / test for next-item prediction.

The config is params `split` with the keys of `protocols.<protocol>` overridden.
"""
import pandas as pd

from _common import checked, setup_logging, stage_args
from lib.config import load_table_entry
from lib.data.split import SplitConfig, split
from lib.io import write_json, write_parquet


def _protocol_flag(p) -> None:
    p.add_argument("--protocol", required=True, help="a key of params `protocols`")


def main() -> None:
    args = stage_args(__doc__, {
        "interactions": "encoded interactions parquet",
        "out-dir": "output directory: train, train_full, val, test, catalogue parquet and split.json",
        "metrics": "output: metrics JSON",
    }, extra=_protocol_flag)
    _, cfg = checked(args.params, lambda prm: load_table_entry(prm, "protocols", args.protocol, "split", SplitConfig))
    setup_logging()
    s = split(pd.read_parquet(args.interactions), cfg)
    for name in ("train", "train_full", "val", "test"):
        write_parquet(getattr(s, name), args.out_dir / f"{name}.parquet")
    write_parquet(s.catalogue, args.out_dir / "catalogue.parquet")  # lib/catalogue.py
    # The split's own description travels with it: models read it, not params.yaml.
    s.info = {"protocol": args.protocol, **s.info}
    write_json(s.info, args.out_dir / "split.json")
    write_json({**s.info, **s.stats}, args.metrics)


if __name__ == "__main__":
    main()
