"""Average the weights of several checkpoints of one run (checkpoint averaging) into one weights file.

Usage:
    python scripts/average_weights.py OUT.safetensors RUN/step-80000.safetensors RUN/step-82500.safetensors ...

The files must hold networks of one shape; OUT's metadata names the averaged files.
"""

import argparse
from pathlib import Path

from jpegtrace.nn.qfnet import average_models
from jpegtrace.nn.weights import load_weights, save_weights

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("out", type=Path, help="safetensors file to write")
parser.add_argument("weights", type=Path, nargs="+", help="weights files to average")
args = parser.parse_args()
model = average_models([load_weights(path) for path in args.weights])
save_weights(model, args.out, {"averaged": " ".join(path.name for path in args.weights)})
print(f"mean of {len(args.weights)} weights files written to {args.out}")
