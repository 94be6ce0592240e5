"""Would int8 keep the answer? Post-training int8 of the inner convolutions on OpenVINO, against fp32 (issue 24).

    PYTHONPATH=src python benchmarks/check_int8.py [--images 6] [--calibration-images 6]

The network's inner convolutions (all but the first; optionally the last too) get OpenVINO
``FakeQuantize`` nodes on their inputs and weights, which OpenVINO's CPU plugin runs as int8 convolutions
(VNNI, AMX-INT8 where the CPU has them): activations unsigned 8-bit over ``[0, range]``, where the range is
a high percentile (or the maximum) of that layer's input on ``train`` JPEGs; weights symmetric 8-bit per
output channel. Then, as ``check_precision.py`` does for bf16, the first ``--images`` val images, never
compressed and as 4:2:0 JPEGs at QF 30, 70, 95, are analysed with OpenVINO fp32 and with each int8 graph
(and OpenVINO bf16 for comparison): the largest headline and per-pixel QF differences, then the time of one
1 MP pass of each. This is a check of the idea, not a backend: no int8 path ships.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jpegtrace.analysis import check_pixels, finish_analysis
from jpegtrace.io import list_images, load_rgb
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.engine import _layers_of
from jpegtrace.nn.openvino import OpenVinoRunner
from jpegtrace.nn.qfnet import network_input
from jpegtrace.nn.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]


def layer_inputs(model, pairs, images) -> list[torch.Tensor]:
    """Every layer's input values over ``images`` (a subsample), fp32."""
    seen = [[] for _ in pairs]
    with torch.no_grad():
        for image in images:
            x = network_input(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255, model.config)
            for i, (conv, relu) in enumerate(pairs):
                seen[i].append(x.flatten()[::7])
                x = conv(x)
                x = x.relu() if relu else x
    return [torch.cat(s) for s in seen]


def int8_graph(pairs, quantised: tuple[int, ...], ranges: list[float]):
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter(ov.PartialShape([-1, pairs[0][0].in_channels, -1, -1]), ov.Type.f32, name="input")
    x = image.output(0)
    for i, (conv, relu) in enumerate(pairs):
        d, p = conv.dilation[0], conv.padding[0]
        w = conv.weight.detach().float().numpy()
        weight = ops.constant(w)
        if i in quantised:
            high = np.float32(ranges[i])
            x = ops.fake_quantize(x, np.float32(0), high, np.float32(0), high, 256)
            w_max = np.abs(w).reshape(w.shape[0], -1).max(1).reshape(-1, 1, 1, 1).astype(np.float32)
            weight = ops.fake_quantize(weight, -w_max, w_max, -w_max, w_max, 255)
        x = ops.convolution(x, weight, strides=[1, 1], pads_begin=[p, p], pads_end=[p, p], dilations=[d, d])
        x = ops.add(x, ops.constant(conv.bias.detach().float().numpy().reshape(1, -1, 1, 1)))
        if relu:
            x = ops.relu(x)
    return ov.Model([ops.result(x)], [image], "qfnet_int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clean"))
    parser.add_argument("--images", type=int, default=6, help="val images compared")
    parser.add_argument("--calibration-images", type=int, default=6, help="train images the ranges come from")
    args = parser.parse_args()
    import openvino as ov

    model = load_weights()
    pairs = _layers_of(model)
    data = Path(args.data)
    calibration = []
    for path in list_images(data, data / "split.csv", "train")[: args.calibration_images]:
        crop = load_rgb(path)[:256, :256]
        calibration += [crop] + [jpeg_compress(crop, q, "4:2:0") for q in (20, 60, 90)]
    inputs = layer_inputs(model, pairs, calibration)
    percentile = [float(torch.quantile(v[: 2 ** 24], 0.99999)) for v in inputs]
    maximum = [float(v.max()) for v in inputs]
    print("layer input ranges: 99.999th percentile", [round(r, 2) for r in percentile],
          "maximum", [round(m, 2) for m in maximum])

    threads = torch.get_num_threads()
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    runners = {}
    inner = tuple(range(1, len(pairs) - 1))
    for name, quantised, ranges in (("int8 inner, percentile ranges", inner, percentile),
                                    ("int8 inner, maximum ranges", inner, maximum),
                                    ("int8 all but the first", (*inner, len(pairs) - 1), percentile)):
        runner = OpenVinoRunner(model, precision="fp32", threads=threads)
        runner.compiled = ov.Core().compile_model(int8_graph(pairs, quantised, ranges), "CPU", config)
        runner.request = runner.compiled.create_infer_request()
        runners[name] = runner
    runners["bf16 (for comparison)"] = OpenVinoRunner(model, precision="bf16", threads=threads)
    exact_runner = OpenVinoRunner(model, precision="fp32", threads=threads)

    worst = {name: {"pixel": 0.0, "headline": 0.0} for name in runners}
    val = list_images(data, data / "split.csv", "val")[: args.images]
    for path in val:
        image = load_rgb(path)
        for quality in (None, 30, 70, 95):
            test = image if quality is None else jpeg_compress(image, quality, "4:2:0")
            checks = check_pixels(test)
            exact = finish_analysis(test, exact_runner.predict_maps(test), copy.deepcopy(checks),
                                    quality_calibration=model.quality_calibration)
            for name, runner in runners.items():
                approx = finish_analysis(test, runner.predict_maps(test), copy.deepcopy(checks),
                                         quality_calibration=model.quality_calibration)
                w = worst[name]
                w["pixel"] = max(w["pixel"], float(np.abs(exact.quality_map - approx.quality_map).max()))
                if exact.headline_quality is not None and approx.headline_quality is not None:
                    w["headline"] = max(w["headline"], abs(exact.headline_quality - approx.headline_quality))
    side = Image.fromarray(load_rgb(val[0])).resize((1024, 1024), Image.LANCZOS)
    photo = np.asarray(side)
    print(f"\n{len(val)} val images x (clean, QF 30, 70, 95), against OpenVINO fp32; {threads} threads\n")
    print("| path | max headline QF diff | max pixel QF diff | 1 MP ms |")
    print("|---|---:|---:|---:|")
    for name, runner in {**runners, "fp32": exact_runner}.items():
        runner.predict_maps(photo)
        start = time.perf_counter()
        runner.predict_maps(photo)
        ms = 1000 * (time.perf_counter() - start)
        w = worst.get(name, {"pixel": 0.0, "headline": 0.0})
        print(f"| {name} | {w['headline']:.3f} | {w['pixel']:.3f} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
