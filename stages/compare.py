"""Stage `compare@<name>`: this report's leaderboard + another dataset's -> does each answer hold there?

Reads the two `report` stages' metrics/leaderboard.json (aggregates, committed) and this pipeline's `report` params
(the declared claims and the seed rule, the same in every pipeline: tests/test_datasets.py). Writes
reports/datasets/<name>.md (per answer: its comparisons on both datasets and whether they agree) and
metrics/datasets/<name>.json.
"""
import os

from _common import load_section, setup_logging, stage_args
from lib.io import read_json, write_json, write_text
from lib.report import ReportConfig
from lib.report.datasets import compare


def main(argv: list[str] | None = None) -> None:
    args = stage_args(__doc__, {
        "leaderboard": "this pipeline's metrics/leaderboard.json (stage report)",
        "other-leaderboard": "the other pipeline's metrics/leaderboard.json",
        "other-report": "the other pipeline's RESULTS.md (for a link only)",
        "results": "output: the comparison (markdown)",
        "metrics": "output: the comparison (JSON: per answer, each comparison's two tests and verdict)",
    }, argv=argv)
    cfg = load_section(args.params, "report", ReportConfig)
    setup_logging()
    for path in (args.leaderboard, args.other_leaderboard):
        if not path.is_file():
            raise SystemExit(f"error: leaderboard not found: {path} (run that pipeline's stage `report` first)")
    board, other = read_json(args.leaderboard), read_json(args.other_leaderboard)
    for path, b in ((args.leaderboard, board), (args.other_leaderboard, other)):
        if "headline_scope" not in b or "dataset" not in b:
            raise SystemExit(f"error: {path} predates the dataset comparison (no dataset / headline_scope): "
                             "re-render it with `dvc repro -s report` in its pipeline")
    try:
        text, data = compare(board, other, cfg, os.path.relpath(args.other_report, args.results.parent))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    write_text(text, args.results)
    write_json(data, args.metrics)


if __name__ == "__main__":
    main()
