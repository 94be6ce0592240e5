"""``jpegtrace calibrate``: fit a model's quality calibration and flag threshold on training images."""

from __future__ import annotations

from ..errors import JpegTraceError
from ..nn.weights import MAX_CALIBRATION_SLOPE
from .common import (
    add_data_options,
    add_model_options,
    add_quiet,
    data_files,
    display,
    error,
    error_of,
    positive_arg,
    positive_float_arg,
    progress_bar,
    write_error,
)


def add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a trained model's quality calibration and flag threshold on training images",
        description="Fit, on never-compressed training images of DIR, the two calibrations saved with a "
                    "model's weights, and write the weights with them to OUT. The quality calibration is a "
                    "monotone map of the quality map that puts the estimated QF (the quality map's "
                    "evidence-weighted median) of JPEGs of these images on their true QF (each image compressed at --per-image QFs from 5 to 95, as 4:2:0, "
                    "4:4:4, grayscale or with a shifted grid, and also kept as it is). The flag threshold is "
                    "the one with the best mean IoU on --pairs collages of these images (a QF-80 region pasted "
                    "into a 256-pixel crop; it makes the masks of collage and collage-benchmark). Whole-image "
                    "verdicts keep the mean flag above 0.5. Use images the model will not be measured on.")
    add_data_options(p, subset="train")
    p.add_argument("--out", required=True, metavar="OUT", help="weights file to write (a .safetensors file)")
    p.add_argument("--per-image", type=positive_arg, default=6,
                   help="QFs per image for the quality calibration, at most the 11 of 5..95 (default 6)")
    p.add_argument("--max-slope", type=positive_float_arg, default=MAX_CALIBRATION_SLOPE, metavar="S",
                   help="steepest stretch of the quality calibration, QF out per QF in: a steeper one magnifies "
                        f"every pixel's error by its slope (default {MAX_CALIBRATION_SLOPE:g})")
    p.add_argument("--pairs", type=positive_arg, default=100, help="collages for the flag threshold (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the QFs, kinds of JPEG and collages (default 0)")
    add_model_options(p, required=True, model_help="safetensors weights to calibrate")
    add_quiet(p)
    p.set_defaults(func=run_calibrate)


def run_calibrate(args) -> int:
    from safetensors import safe_open

    from ..analysis import to_device
    from ..eval.calibration import CALIBRATION_QUALITIES, calibrate_flag_threshold, fit_quality_calibration
    from ..io import as_analysis_array
    from ..nn.weights import load_weights, save_weights

    files = data_files(args)
    if files is None:
        return 2
    # A model of its own, not the cached one of load_model: its calibrations are about to change.
    # A bad file or device raises JpegTraceError, which main() reports in one line (status 2).
    model = to_device(load_weights(args.model), args.device)
    images, failures = {}, []
    for name, path in files.items():
        try:
            images[name] = as_analysis_array(path)[0]
        except JpegTraceError as exc:
            failures.append(exc)
            error(error_of(exc))
    if not images:
        error("no image could be read")
        return 1
    per_image = min(args.per_image, len(CALIBRATION_QUALITIES))
    calibration = fit_quality_calibration(model, images, per_image=per_image, seed=args.seed, max_slope=args.max_slope,
                                          tile_size=args.tile_size, device=args.device,
                                          progress=progress_bar(args, "quality calibration", " image"))
    threshold = calibrate_flag_threshold(model, list(files.values()), pairs=args.pairs, seed=args.seed,
                                         tile_size=args.tile_size, device=args.device,
                                         progress=progress_bar(args, "flag threshold", " collage"))
    model.quality_calibration, model.flag_threshold = calibration, threshold.best
    with safe_open(str(args.model), framework="pt") as f:  # keep what the file says of itself (its step, ...)
        kept = f.metadata() or {}
    try:
        save_weights(model, args.out, {**kept, "calibrated_on": display(args.data),
                                       "calibration_seed": str(args.seed)})
    except OSError as exc:
        return write_error(exc)
    print("quality calibration (QF in -> QF out): " + ", ".join(
        f"{100 * (1 - k):g} -> {100 * (1 - v):.1f}" for k, v in zip(calibration.knots, calibration.values)))
    print(f"flag threshold of localisation masks: {threshold.best:g} (mean IoU {max(threshold.mean_iou):.3f} "
          f"on {threshold.pairs} collages)")
    print(f"calibrated weights written to {display(args.out)}")
    return 1 if failures else 0
