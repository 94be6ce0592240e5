"""What runs the network, and in which arithmetic: the backends, and the choice ``'auto'`` makes.

Backends: ``'torch'`` (jpegtrace's streaming engine, :mod:`jpegtrace.nn.engine`; every device),
``'onnxruntime'`` (the exported graph, :mod:`jpegtrace.nn.onnx`; CPU, fp32) and ``'openvino'``
(:mod:`jpegtrace.nn.openvino`; CPU, fp32 and bf16). OpenVINO comes with jpegtrace; torch and ONNX Runtime are
extras (``jpegtrace[torch]``, ``jpegtrace[onnx]``).

:func:`resolve` turns the settings into what runs. ``backend='auto'`` takes the fastest backend
installed for the device and precision, in the order of :data:`CPU_SPEED_ORDER` (measured by
``benchmarks/bench_backends.py``). ``precision='auto'`` takes bf16 where the CPU computes it natively
*and* the model's bf16 maps on that backend were checked to keep the answer (:data:`TOLERANCE`, on
the corpus' ``val`` images, by ``benchmarks/check_precision.py``, recorded in
``jpegtrace/weights/precision.json`` under the weights' fingerprint); fp32 otherwise, so a model of
one's own runs fp32 until it is checked. Grayscale images need a check of their own (the shipped model
misses the tolerance on them in bf16, so they run fp32).

Everything here takes a torch :class:`~jpegtrace.nn.qfnet.QFNet` or the arrays of a weights file
(:class:`~jpegtrace.nn.weights.NetworkWeights`); for the latter on the CPU nothing imports torch, so an
analysis on OpenVINO runs without it.

References
----------
Issue 24 of the project; measurements in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import weakref
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a model is run, not to list the backends (the CLI's parser)
    import torch

    from .qfnet import QFNet
    from .weights import NetworkWeights

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
#: On a CPU, per precision, the backends from fastest to slowest (1 MP, the shipped network, 2 cores of
#: an AVX-512 BF16 machine; ``benchmarks/RESULTS.md``). ONNX Runtime runs fp32 only.
CPU_SPEED_ORDER = {"fp32": ("openvino", "onnxruntime", "torch"), "bf16": ("openvino", "torch")}
#: What a lower precision must keep against fp32, on every val image and QF, to be chosen by 'auto':
#: the whole-image (headline) QF within 0.25, every pixel's QF within 2, the same verdict.
TOLERANCE = {"max_image_qf": 0.25, "max_pixel_qf": 2.0, "verdict_changes": 0}
#: Per backend, the first layer its bf16 computes in bfloat16 (the layers from there to the last but one
#: do). OpenVINO keeps layer 1 in f32 too (see :data:`jpegtrace.nn.openvino.FIRST_BF16_LAYER`, which is
#: this entry).
BF16_FIRST_LAYER = {"torch": 1, "openvino": 2}
#: Per backend, whether its bf16 takes the last layer's products in bfloat16 too, summed into f32 maps with
#: an f32 bias (``'bf16>f32'`` in :func:`bf16_layers`); else the last layer is f32.
BF16_LAST_LAYER_PRODUCTS = {"torch": False, "openvino": True}
PRECISION_RECORD = Path(__file__).resolve().parents[1] / "weights" / "precision.json"
_PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnx", "onnxruntime"), "openvino": ("openvino",)}


def installed_backends() -> tuple[str, ...]:
    """The backends whose packages are installed."""
    return tuple(b for b in BACKENDS
                 if all(importlib.util.find_spec(p) is not None for p in _PACKAGES.get(b, ())))


def device_type(device: str | torch.device | None) -> str:
    """``'cpu'``, ``'cuda'``, ... of a device name or torch device (None: the CPU). Only a device off
    the CPU imports torch, to read its name; a name torch does not know is returned as it is (moving
    a model there then says why it cannot be used)."""
    if device is None or (isinstance(device, str) and device == "cpu"):
        return "cpu"
    import torch

    try:
        return torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        return str(device)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), read from ``/proc/cpuinfo``;
    where that is not readable (not Linux), what torch's oneDNN says.

    Without them bfloat16 is emulated and slower than float32 (on a 2-core AVX2 AMD EPYC a training
    step took 33 s in bf16 against 1.0 s in fp32), so 'auto' does not take it.
    """
    flags = cpuinfo_flags()
    if flags is not None:
        return "avx512_bf16" in flags or "amx_bf16" in flags
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the check: do not second-guess the user
        return True


def cpuinfo_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The first CPU's feature flags in a Linux ``/proc/cpuinfo``; None where it cannot be read or has none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            line = next((line for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if line is None or ":" not in line else frozenset(line.split(":", 1)[1].split())


def bf16_layers(backend: str, depth: int) -> str:
    """The arithmetic of each of a ``depth``-layer network's convolutions under ``precision='bf16'`` on
    ``backend``, as recorded with each check in the precision record, e.g. ``'f32 f32 bf16 bf16 bf16 bf16
    bf16>f32'``: ``bf16>f32`` is bfloat16 products summed into f32 (the maps, with an f32 bias).

    A check of one arrangement does not count for another (:func:`bf16_checked`).
    """
    first, last = BF16_FIRST_LAYER[backend], "bf16>f32" if BF16_LAST_LAYER_PRODUCTS[backend] else "f32"
    return " ".join("bf16" if first <= i < depth - 1 else last if i == depth - 1 else "f32" for i in range(depth))


def bf16_is_fast(device: str | torch.device | None = "cpu") -> bool:
    """Whether bfloat16 arithmetic is worth asking for on ``device``: on a CPU,
    :func:`cpu_has_native_bf16`; other devices (GPUs) are assumed fast."""
    return cpu_has_native_bf16() if device_type(device) == "cpu" else True


def network_arrays(model: QFNet | NetworkWeights) -> NetworkWeights | None:
    """``model``'s weights as arrays (:class:`~jpegtrace.nn.weights.NetworkWeights`), itself when it is
    one; None for a torch network that is not a plain stack of 'same' 3x3 convolutions and ReLUs of
    its config's dilations (what the runtimes build)."""
    from .weights import NetworkWeights

    if isinstance(model, NetworkWeights):
        return model
    from .engine import _layers_of

    pairs = _layers_of(model)
    dilations = getattr(getattr(model, "config", None), "dilations", None)
    if (pairs is None or dilations is None or len(pairs) != len(dilations)
            or [conv.kernel_size for conv, _ in pairs] != [(3, 3)] * len(pairs)
            or [conv.dilation[0] for conv, _ in pairs] != list(dilations)
            or [relu for _, relu in pairs] != [True] * (len(pairs) - 1) + [False]
            or any(conv.bias is None for conv, _ in pairs)):
        return None
    return NetworkWeights.of_model(model)


def torch_model(model: QFNet | NetworkWeights) -> QFNet:
    """The torch network of ``model``: itself, or for arrays a :class:`~jpegtrace.nn.qfnet.QFNet` built
    once per arrays object (kept while it lives)."""
    from .weights import NetworkWeights

    if not isinstance(model, NetworkWeights):
        return model
    if model not in _TORCH_MODELS:
        _TORCH_MODELS[model] = model.to_model()
    return _TORCH_MODELS[model]


def model_device(model: QFNet | NetworkWeights):
    """Where ``model`` lives: its parameters' torch device; the CPU for arrays."""
    from .weights import NetworkWeights

    return "cpu" if isinstance(model, NetworkWeights) else next(model.parameters()).device


def choose_backend(backend: str = "auto", *, device: str | torch.device | None = "cpu",
                   precision: str = "fp32") -> str:
    """The backend ``backend`` names: itself, or for ``'auto'`` the fastest installed one that runs
    ``precision`` on ``device`` (off the CPU: torch).

    Raises
    ------
    ValueError
        For an unknown backend, or one that cannot run ``precision`` or ``device``.
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be auto or one of {', '.join(BACKENDS)}, got {backend!r}")
    on_cpu = device_type(device) == "cpu"
    if backend == "auto":
        if not on_cpu:
            return "torch"
        installed = installed_backends()
        return next(b for b in CPU_SPEED_ORDER[precision] if b in installed)
    if backend != "torch" and not on_cpu:
        raise ValueError(f"the {backend} backend runs on the CPU only, not on {device}")
    if backend == "onnxruntime" and precision != "fp32":
        raise ValueError("the onnxruntime backend runs fp32 only")
    return backend


def weights_fingerprint(model: QFNet | NetworkWeights) -> str:
    """SHA-256 of the network's float32 tensors in name order: names a model's precision check (the same
    for a torch network and the arrays of its weights file)."""
    from .weights import NetworkWeights

    if isinstance(model, NetworkWeights):
        tensors = model.tensors.items()
    else:
        tensors = ((name, tensor.detach().float().cpu().numpy()) for name, tensor in model.state_dict().items())
    digest = hashlib.sha256()
    for name, values in sorted(tensors, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _precision_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("models", {})
    except (OSError, ValueError):
        return {}


def bf16_checked(model: QFNet | NetworkWeights, backend: str, *, grayscale: bool = False, record: Path = PRECISION_RECORD) -> bool:
    """Whether ``model``'s bf16 maps on ``backend`` were checked and kept :data:`TOLERANCE`: on colour
    images (4:2:0 JPEGs), or with ``grayscale`` on grayscale ones, a check of its own (the record's
    ``grayscale`` entry), since a model can keep the answer on one and not the other. Only a check of the
    layers' arithmetic the code runs counts (:func:`bf16_layers`)."""
    fingerprint = _cached_fingerprint(model)
    entry = _precision_record(Path(record)).get(fingerprint, {})
    if grayscale:
        entry = entry.get("grayscale", {})
    check = entry.get("bf16", {}).get(backend, {})
    return (bool(check.get("within_tolerance", False))
            and check.get("layers") == bf16_layers(backend, len(model.config.dilations)))


def resolve(model: QFNet | NetworkWeights, *, backend: str = "auto", precision: str = "auto",
            device: str | torch.device | None = "cpu", grayscale: bool = False) -> tuple[str, str]:
    """The ``(backend, precision)`` that run ``model`` for these settings.

    Parameters
    ----------
    model : QFNet
    backend : {'auto', 'torch', 'onnxruntime', 'openvino'}
    precision : {'auto', 'fp32', 'bf16'}
        'auto': bf16 where ``device`` computes it natively (:func:`bf16_is_fast`)
        and :func:`bf16_checked` says ``model`` keeps the answer on the backend that would run it;
        fp32 otherwise (and always on ONNX Runtime).
    device : str or torch.device, optional
    grayscale : bool
        The image is grayscale: 'auto' then takes bf16 only where the model's grayscale check kept the
        answer (:func:`bf16_checked`).

    Raises
    ------
    ValueError
        For unknown settings, or a backend that cannot run the precision or the device.
    """
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend == "auto" and not _runs_on_runtimes(model):  # not a plain QFNet: torch's eager path runs it, in fp32
        return "torch", "fp32" if precision == "auto" else precision
    if precision != "auto":
        return choose_backend(backend, device=device, precision=precision), precision
    if backend != "onnxruntime" and bf16_is_fast(device or "cpu"):
        candidate = choose_backend(backend, device=device, precision="bf16")
        if bf16_checked(model, candidate, grayscale=grayscale):
            return candidate, "bf16"
    return choose_backend(backend, device=device, precision="fp32"), "fp32"


def provenance(model: QFNet | NetworkWeights, *, backend: str = "auto", precision: str = "auto",
               device: str | torch.device | None = None, grayscale: bool = False) -> dict[str, str]:
    """What computes ``model``'s maps for these settings, as records report it (their ``network``):
    ``{"model": the weights' fingerprint to 16 hex digits, "backend": ..., "precision": ...}``, resolved
    as :func:`resolve` does (on the model's own device when ``device`` is None, as
    :func:`jpegtrace.analysis.predict_maps` runs it)."""
    if device is None:
        device = model_device(model)
    backend, precision = resolve(model, backend=backend, precision=precision, device=device, grayscale=grayscale)
    fingerprint = _cached_fingerprint(model)
    return {"model": fingerprint[:16], "backend": backend, "precision": precision}


def provenance_by_kind(model: QFNet | NetworkWeights, *, backend: str = "auto", precision: str = "auto",
                       device: str | torch.device | None = None) -> dict[bool, dict[str, str]]:
    """:func:`provenance` for a colour image (key False) and a grayscale one (True): with 'auto' they may
    differ, the grayscale one needing a check of its own."""
    return {gray: provenance(model, backend=backend, precision=precision, device=device, grayscale=gray)
            for gray in (False, True)}


def runner(model: QFNet | NetworkWeights, backend: str, precision: str):
    """A cached runner of ``model`` on ``backend`` (onnxruntime or openvino) in ``precision``: one per
    model object and setting, kept while the model lives (building one takes 0.1-1 s). Its
    ``predict_maps(image, tile_size=...)`` computes tiles of ``tile_size`` pixels a side and their halo."""
    runners = _per_weights(_RUNNERS, model, dict)
    key = (backend, precision)
    if key not in runners:
        if backend == "onnxruntime":
            from .onnx import OnnxRunner

            runners[key] = OnnxRunner(torch_model(model))
        elif backend == "openvino":
            from .openvino import OpenVinoRunner

            runners[key] = OpenVinoRunner(model, precision=precision)
        else:
            raise ValueError(f"no runner for backend {backend!r}")
    return runners[key]


def _runs_on_runtimes(model: QFNet | NetworkWeights) -> bool:
    """Whether ONNX Runtime and OpenVINO can run ``model``: arrays always, a torch network when it is a
    plain stack of convolutions and ReLUs (:func:`jpegtrace.nn.engine.supports`)."""
    from .weights import NetworkWeights

    if isinstance(model, NetworkWeights):
        return True
    from .engine import supports

    return supports(model)


def _weights_version(model: QFNet | NetworkWeights) -> tuple[int, ...] | None:
    """A token that changes whenever a torch network's weights change in place (an optimiser step, a
    ``load_state_dict``): torch counts each tensor's in-place changes. None for arrays, which are read once.

    The runners copy the weights into their graphs, and the fingerprint hashes them: both are cached per
    model object and rebuilt when this changes, so a model validated during training is run as it is
    now, not as it was at the first validation."""
    from .weights import NetworkWeights

    if isinstance(model, NetworkWeights):
        return None
    return tuple(tensor._version for tensor in model.state_dict(keep_vars=True).values())


def _per_weights(cache: weakref.WeakKeyDictionary, model: QFNet | NetworkWeights, make):
    """``cache``'s value for ``model``, made again by ``make()`` when the model is new to it or its weights
    have changed since (:func:`_weights_version`)."""
    version = _weights_version(model)
    entry = cache.get(model)
    if entry is None or entry[0] != version:
        entry = cache[model] = (version, make())
    return entry[1]


def _cached_fingerprint(model: QFNet | NetworkWeights) -> str:
    return _per_weights(_FINGERPRINTS, model, lambda: weights_fingerprint(model))


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TORCH_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
