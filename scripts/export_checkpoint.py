"""Export a training run's current checkpoint as plain weights, to evaluate or ship a step other than the best.

Usage:
    python scripts/export_checkpoint.py RUN_DIR OUT.safetensors
"""

import argparse
from pathlib import Path

from jpegtrace.train.loop import export_checkpoint

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("run", type=Path, help="training run folder (holds checkpoint.pt)")
parser.add_argument("out", type=Path, help="safetensors file to write")
args = parser.parse_args()
print(f"weights of {args.run / 'checkpoint.pt'} written to {export_checkpoint(args.run / 'checkpoint.pt', args.out)}")
