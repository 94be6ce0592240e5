"""Join a run that started from another run's weights onto that run's history, for one model card.

Usage:
    python scripts/join_runs.py PARENT_DIR STEP CHILD_DIR OUT_DIR

A run started with ``jpegtrace train --init-weights`` (say, to add the grid feature, which a
``--resume`` cannot) counts its steps from 0. OUT_DIR gets the lineage as one run: PARENT's
``command.txt``, then CHILD's with its start steps moved on by STEP; ``log.csv`` and ``val.csv``
with PARENT's rows up to STEP and CHILD's after them, their steps moved on by STEP; and CHILD's
``*.safetensors`` with the ``step`` in their metadata moved on likewise. OUT_DIR is then a run
folder that ``scripts/ship_model.py`` takes.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file


def join_csv(parent: Path, child: Path, step: int, out: Path) -> None:
    with open(parent, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(child, newline="") as f:
        reader = csv.DictReader(f)
        child_rows = [dict(r, step=str(int(r["step"]) + step)) for r in reader]
        fields = list(dict.fromkeys([*rows[0].keys(), *(reader.fieldnames or [])])) if rows else reader.fieldnames
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows + child_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parent", type=Path)
    parser.add_argument("step", type=int, help="the parent's step whose weights the child started from")
    parser.add_argument("child", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parent_commands = (args.parent / "command.txt").read_text().rstrip("\n")
    child_commands = re.sub(r"# from step (\d+)", lambda m: f"# from step {int(m.group(1)) + args.step}",
                            (args.child / "command.txt").read_text())
    (args.out / "command.txt").write_text(
        f"{parent_commands}\n# {args.child.name} starts from the weights of {args.parent.name} at step {args.step} "
        f"(its steps are counted on from {args.step} here)\n{child_commands}")
    for name in ("log.csv", "val.csv"):
        join_csv(args.parent / name, args.child / name, args.step, args.out / name)
    for weights in sorted(args.child.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as f:
            meta = dict(f.metadata() or {})
        if "step" in meta:
            meta["step"] = str(int(meta["step"]) + args.step)
        save_file(load_file(weights), str(args.out / weights.name), metadata=meta)
    print(f"{args.parent} to step {args.step}, then {args.child}: {args.out}")


if __name__ == "__main__":
    main()
