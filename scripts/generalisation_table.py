"""Print the generalisation scores of several evaluations (scripts/evaluate_generalisation.py outputs) as one
Markdown table, a column each, with the bars of the generalising issue beside them.

    python scripts/generalisation_table.py "v11 val=docs/model/qfnet-v11/generalisation-val.json" \
        "v11 test=docs/model/qfnet-v11/generalisation-test.json" "v8 test=docs/model/qfnet-v11/v8-generalisation-test.json"

A column may join the JSONs of several runs of one split (``"test=qf.json+local.json"``): each run's scores
complete those before it (a QF variant or a part measured again replaces the earlier one). QF cells read
"headline / network's": the headline QF is what ``analyze`` quotes (the table's where read), the network's
the evidence-weighted mean of its quality map.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(report: dict) -> dict[str, str]:
    """The table's cells of one evaluation; a score the evaluation lacks (a partial run) reads "not measured"."""
    qf, table1 = report.get("qf", {}), report.get("table1", {})

    def cell(function):
        try:
            return function()
        except (KeyError, TypeError, ValueError):
            return "not measured"

    def mae(variant: str) -> str:
        return f"{qf[variant]['headline_qf_mae']:.2f} / {qf[variant]['qf_mae']:.2f}"

    def largest_bias(variant: str) -> str:
        biases = [b for k, b in qf[variant]["headline_bias_per_quality"].items() if int(k) <= 95 and b is not None]
        return f"{max(biases, key=abs):+.2f}"

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
        "QF MAE 5..95, 4:2:0": cell(lambda: mae("4:2:0")),
        "QF MAE 5..95, 4:4:4": cell(lambda: mae("4:4:4")),
        "QF MAE 5..95, shifted grid": cell(lambda: mae("shifted")),
        "QF MAE 5..95, grayscale": cell(lambda: mae("grayscale")),
        "largest mean headline error at one QF 5..95: 4:2:0 / 4:4:4 / shifted / gray": " / ".join(
            cell(lambda v=v: largest_bias(v)) for v in ("4:2:0", "4:4:4", "shifted", "grayscale")),
        "QF MAE, camera-like tables (IJG-equivalent QF)": cell(lambda: mae("camera_tables")),
        "QF 97-100 judged uncompressed, worst QF: 4:2:0 / 4:4:4 / shifted / gray": " / ".join(
            cell(lambda v=v: worst_table1(v)) for v in ("4:2:0", "4:4:4", "shifted", "grayscale")),
        "originals judged uncompressed: 4:2:0 / grayscale": " / ".join(
            cell(lambda v=v: f"{table1[v]['None']:.2f}") for v in ("4:2:0", "grayscale")),
        "saturated photos: collage IoU / precision": cell(
            lambda: f"{report['saturated']['collage_qf80']['mean_iou']:.3f} / "
                    f"{report['saturated']['collage_qf80']['mean_precision']:.3f}"),
        "saturated photos: clean pixels flagged / judged compressed": cell(
            lambda: f"{100 * report['saturated']['clean_photos']['mean_flagged_share']:.2f} % / "
                    f"{report['saturated']['clean_photos']['judged_compressed']:.2f}"),
    }


BARS = {"collage QF 80, mean IoU (flag > 0.5)": "≥ 0.92", "collage QF 80, pixel precision": "≥ 0.90",
        "clean photos: mean share of pixels with flag > 0.5": "≤ 2 %", "clean photos judged compressed": "0",
        "non-photo negatives judged compressed": "≤ 0.05", "non-photo negatives with a grid found": "0",
        "flat/ramp/gradient negatives: 'no evidence'": "1", "QF MAE 5..95, 4:2:0": "≤ 1.8",
        "QF MAE 5..95, 4:4:4": "≤ 2.2", "QF MAE 5..95, shifted grid": "≤ 2.2", "QF MAE 5..95, grayscale": "≤ 2.2",
        "largest mean headline error at one QF 5..95: 4:2:0 / 4:4:4 / shifted / gray": "within ±1.0 each",
        "QF MAE, camera-like tables (IJG-equivalent QF)": "≤ 2.0",
        "QF 97-100 judged uncompressed, worst QF: 4:2:0 / 4:4:4 / shifted / gray": "0.00 each",
        "originals judged uncompressed: 4:2:0 / grayscale": "1.00",
        # not a bar of the issue: a stand-in here for its held-out camera photos with saturated colours
        "saturated photos: collage IoU / precision": "(≥ 0.92 / ≥ 0.90 on camera photos)",
        "saturated photos: clean pixels flagged / judged compressed": "(≤ 2 % / 0)"}


def joined(runs: list[dict]) -> dict:
    """The scores of several runs of one split, later ones completing (and replacing) earlier ones."""
    report: dict = {}
    for run in runs:
        for key, value in run.items():
            if key in ("qf", "table1"):
                report.setdefault(key, {}).update(value)
            else:
                report[key] = value
    return report


def main() -> None:
    columns = [arg.split("=", 1) for arg in sys.argv[1:]]
    reports = {name: rows(joined([json.loads(Path(p).read_text()) for p in paths.split("+")]))
               for name, paths in columns}
    names = list(reports)
    print("| score | " + " | ".join(names) + " | bar (issue 20) |")
    print("|---|" + "---|" * (len(names) + 1))
    for key in BARS:
        print(f"| {key} | " + " | ".join(reports[n][key] for n in names) + f" | {BARS[key]} |")


if __name__ == "__main__":
    main()
