"""Stage `parse`: raw files (Amazon 2014 layout) -> interactions and items parquet + metrics/parse.json."""
from _common import load_section, setup_logging, stage_args
from lib.data.parse import ParseConfig, parse_meta, parse_reviews
from lib.data.raw import RawDataError, ensure_raw
from lib.io import write_json, write_parquet


def main() -> None:
    args = stage_args(__doc__, {
        "raw-dir": "directory of the raw files (downloaded or copied here when missing)",
        "interactions": "output: interactions parquet",
        "items": "output: items parquet",
        "metrics": "output: metrics JSON",
    })
    cfg = load_section(args.params, "parse", ParseConfig)
    setup_logging()
    try:
        paths = ensure_raw(args.raw_dir, cfg.category, cfg.source_dir, cfg.download_timeout)
    except RawDataError as e:
        raise SystemExit(f"error: {e}") from None
    inter, rc = parse_reviews(paths["reviews"])
    items, mc = parse_meta(paths["meta"], cfg.categories)
    if inter.empty:
        raise SystemExit(f"error: no valid review lines in {paths['reviews']}")
    write_parquet(inter, args.interactions)
    write_parquet(items, args.items)
    write_json({"category": cfg.category, "reviews": rc, "meta": mc}, args.metrics)


if __name__ == "__main__":
    main()
