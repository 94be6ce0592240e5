"""Print the generalisation scores of several evaluations (scripts/evaluate_generalisation.py outputs) as one
Markdown table, a column each, with the bars of the generalising issue beside them.

    python scripts/generalisation_table.py "v11 val=docs/model/qfnet-v11/generalisation-val.json" \
        "v11 test=docs/model/qfnet-v11/generalisation-test.json" "v8 test=docs/model/qfnet-v11/v8-generalisation-test.json"
"""

from __future__ import annotations

import json
import sys


def rows(report: dict) -> dict[str, str]:
    """The table's cells of one evaluation; a score the evaluation lacks (a partial run) reads "not measured"."""
    qf, table1 = report.get("qf", {}), report.get("table1", {})

    def cell(function):
        try:
            return function()
        except (KeyError, TypeError, ValueError):
            return "not measured"

    def worst_table1(variant: str) -> str:
        return f"{max(v for k, v in table1[variant].items() if k != 'None'):.2f}"

    return {
        "collage QF 80, mean IoU (flag > 0.5)": cell(lambda: f"{report['collage_qf80']['mean_iou']:.3f}"),
        "collage QF 80, pixel precision": cell(lambda: f"{report['collage_qf80']['mean_precision']:.3f}"),
        "clean photos: mean share of pixels with flag > 0.5": cell(
            lambda: f"{100 * report['clean_photos']['mean_flagged_share']:.2f} %"),
        "clean photos judged compressed": cell(lambda: f"{report['clean_photos']['judged_compressed']:.2f}"),
        "non-photo negatives judged compressed": cell(lambda: f"{report['negatives']['judged_compressed']:.2f}"),
        "non-photo negatives with a grid found": cell(lambda: f"{report['negatives']['grid_found']:.2f}"),
        "flat/ramp/gradient negatives: 'no evidence'": cell(
            lambda: f"{report['negatives']['textureless_no_evidence']:.2f}"),
        "QF MAE 5..95, 4:2:0": cell(lambda: f"{qf['4:2:0']['qf_mae']:.2f}"),
        "QF MAE 5..95, 4:4:4 / shifted / grayscale": " / ".join(
            cell(lambda v=v: f"{qf[v]['qf_mae']:.2f}") for v in ("4:4:4", "shifted", "grayscale")),
        "largest mean error at one QF (4:2:0)": cell(lambda: f"{qf['4:2:0']['max_abs_bias']:.2f}"),
        "QF MAE, camera-like tables (IJG-equivalent QF)": cell(lambda: f"{qf['camera_tables']['qf_mae']:.2f}"),
        "QF 97-100 judged uncompressed, worst QF: 4:2:0 / 4:4:4 / shifted / gray": " / ".join(
            cell(lambda v=v: worst_table1(v)) for v in ("4:2:0", "4:4:4", "shifted", "grayscale")),
        "originals judged uncompressed: 4:2:0 test / grayscale test": " / ".join(
            cell(lambda v=v: f"{table1[v]['None']:.2f}") for v in ("4:2:0", "grayscale")),
    }


BARS = {"collage QF 80, mean IoU (flag > 0.5)": "≥ 0.92", "collage QF 80, pixel precision": "≥ 0.90",
        "clean photos: mean share of pixels with flag > 0.5": "≤ 2 %", "clean photos judged compressed": "0",
        "non-photo negatives judged compressed": "≤ 0.05", "non-photo negatives with a grid found": "0",
        "flat/ramp/gradient negatives: 'no evidence'": "1", "QF MAE 5..95, 4:2:0": "≤ 1.8",
        "QF MAE 5..95, 4:4:4 / shifted / grayscale": "≤ 2.2 each", "largest mean error at one QF (4:2:0)": "≤ 1.0",
        "QF MAE, camera-like tables (IJG-equivalent QF)": "≤ 2.0",
        "QF 97-100 judged uncompressed, worst QF: 4:2:0 / 4:4:4 / shifted / gray": "0.00 each",
        "originals judged uncompressed: 4:2:0 test / grayscale test": "1.00"}


def main() -> None:
    columns = [arg.split("=", 1) for arg in sys.argv[1:]]
    reports = {name: rows(json.load(open(path))) for name, path in columns}
    names = list(reports)
    print("| score | " + " | ".join(names) + " | bar (issue 20) |")
    print("|---|" + "---|" * (len(names) + 1))
    for key in BARS:
        print(f"| {key} | " + " | ".join(reports[n][key] for n in names) + f" | {BARS[key]} |")


if __name__ == "__main__":
    main()
