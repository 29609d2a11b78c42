"""Engines for cdc-avif's one-step decode: bf16 torch, and ONNX Runtime graphs cached per weights file.

``engine``, a cdc-avif decode option (docs/engines.md): ``torch`` is eager PyTorch (the reference);
``onnx`` runs ``model.nn.one_step``'s graph on ONNX Runtime in fp32 (the same image within rounding);
``torch-bf16`` is eager PyTorch under bf16 autocast (CPUs with native bf16: AVX512-BF16 or AMX);
``onnx-int8`` runs the graph quantised to int8 (static, per-channel weights, activation ranges calibrated on
training crops and shipped in ``model/calibration/``): faster, at a measured fidelity cost. ``auto``
(the default), for the one-step decode on a CPU, is ``torch-bf16`` where the CPU has native bf16, else
``onnx`` where ONNX Runtime imports, else torch; other decodes run on torch.

The graphs live in ``$DIFFARC_CACHE`` (else ``~/.cache/diffarc``) under ``engines/``, named by the
weights' sha256, the kind and the exporter's versions. Each is written to a temporary file and renamed
into place (processes exporting at once each rename a whole file), with its sha256 in a file beside
it and the weights' sha256 in its metadata: a graph whose bytes or weights do not match is rebuilt.
Using or building one removes the same weights' graphs of that kind from older graph formats.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

ENGINES = ("auto", "onnx", "onnx-int8", "torch-bf16", "torch")
INT8 = "onnx-int8"  # its cached graphs' kind: this, a dash and the calibration ranges' hash
ENV_CACHE = "DIFFARC_CACHE"
ENV_DISABLE = "DIFFARC_NO_ONNXRUNTIME"  # "1": decode as if onnxruntime were not installed
ENV_BF16 = "DIFFARC_CPU_BF16"  # "0" or "1": overrides whether this CPU computes bf16 natively
INSTALL = "pip install onnxruntime==1.32.0 onnx==1.23.2"
CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
# bump when the exported function or its inputs change: old cached graphs and calibrations are then unused
GRAPH_FORMAT = 3  # 2: sub-pixel upsampling (int8 covers it); 3: modulation folded into the LayerNorms
_warned_missing = False


class EngineError(RuntimeError):
    """An engine that cannot run these weights (the message says why and what to do)."""


def onnxruntime():
    """The onnxruntime module, or None where it is not installed (or ``$DIFFARC_NO_ONNXRUNTIME`` is 1)."""
    if os.environ.get(ENV_DISABLE) == "1":
        return None
    try:
        import onnxruntime as ort
        import onnx  # noqa: F401  (torch's exporter writes through it)
    except ImportError:
        return None
    return ort


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (elsewhere torch emulates it, slower than fp32)."""
    forced = os.environ.get(ENV_BF16)
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_flags_bf16()


@functools.cache
def _cpu_flags_bf16() -> bool:
    """The CPU's flags, read once per process (every decode asks which engine runs)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


class Bf16Restorer:
    """The one-step restoration in eager torch under bf16 autocast; the base is added in fp32."""

    def __init__(self, model):
        self.model = model

    def __call__(self, base, quality, settings):
        import torch

        base = base.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model.restore(base, quality, torch.zeros_like(base), 1, 1.0, settings).float()


def warn_missing() -> None:
    """One line per process: auto decodes on eager torch because ONNX Runtime is missing."""
    global _warned_missing
    if not _warned_missing:
        _warned_missing = True
        warnings.warn(f"onnxruntime is not importable: cdc-avif decodes on eager torch, about 7 % slower "
                      f"({INSTALL})", RuntimeWarning, stacklevel=3)


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "diffarc") / "engines"


def versions() -> str:
    import onnx
    import torch

    torch_version = torch.__version__.split("+")[0]
    return f"g{GRAPH_FORMAT}-torch{torch_version}-onnx{onnx.__version__}-ort{onnxruntime().__version__}"


def graph_path(sha256: str, kind: str) -> Path:
    return cache_dir() / f"{sha256}-{kind}-{versions()}.onnx"


def checksum_path(graph: Path) -> Path:
    return graph.with_name(graph.name + ".sha256")


def cached_graph(sha256: str, kind: str, build) -> bytes:
    """The graph of these weights and kind: the cached one where its checksum and weights hash match,
    else ``build(path)``'s, written atomically and then cached."""
    path = graph_path(sha256, kind)
    graph = _valid(path, sha256)
    if graph is not None:
        _prune_older_formats(sha256, kind)  # a cache filled before pruning existed is cleared too
        return graph
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        built = Path(tmp) / "graph.onnx"
        build(str(built))
        _stamp(built, sha256, kind)
        graph = built.read_bytes()
        _atomic_write(checksum_path(path), hashlib.sha256(graph).hexdigest().encode())
        os.replace(built, path)
    _prune_older_formats(sha256, kind)
    return graph


def _prune_older_formats(sha256: str, kind: str) -> None:
    """Remove this weights file's graphs of this kind from older graph formats (for int8, under any
    calibration key: a new format comes with new calibrations): no version of this code reads them again,
    and each format bump would otherwise leave tens of MB per weights file behind."""
    family, key = (INT8, r"-[0-9a-f]+") if kind.startswith(f"{INT8}-") else (kind, "")
    for old in cache_dir().glob(f"{sha256}-{family}-*.onnx"):
        made = re.fullmatch(rf"{sha256}-{re.escape(family)}{key}-g(\d+)-torch.*\.onnx", old.name)
        if made and int(made.group(1)) < GRAPH_FORMAT:
            for stale in (old, checksum_path(old)):
                stale.unlink(missing_ok=True)  # another process pruning at once is as good


def _valid(path: Path, sha256: str) -> bytes | None:
    """The graph's bytes if they match the checksum beside them and were made from these weights."""
    try:
        graph, expected = path.read_bytes(), checksum_path(path).read_text().strip()
    except OSError:
        return None
    if hashlib.sha256(graph).hexdigest() != expected:
        return None
    import onnx

    try:
        meta = {p.key: p.value for p in onnx.load_from_string(graph).metadata_props}
    except Exception:  # noqa: BLE001  (a graph onnx cannot read is rebuilt, like a corrupt one)
        return None
    return graph if meta.get("weights_sha256") == sha256 else None


def _stamp(path: Path, sha256: str, kind: str) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in (("weights_sha256", sha256), ("engine", kind), ("versions", versions())):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class OnnxRestorer:
    """The one-step restoration as an ONNX Runtime session: (base, quality, settings) tensors -> image."""

    def __init__(self, graph: bytes, threads: int):
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # errors only: not the optimiser's notes
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, base, quality, settings):
        import torch

        feed = {"base": base.float().contiguous().numpy(), "quality": quality.float().numpy(),
                "settings": settings.float().numpy()}
        out = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feed.items() if k in self.inputs})[0]
        return torch.from_numpy(out)


def restorer(model, sha256: str, kind: str, name: str, calibration: Path | None = None):
    """The one-step restoration of ``model`` (weights ``name``, hash ``sha256``) for engine ``kind``:
    torch-bf16, onnx or onnx-int8 (whose activation ranges are read from ``calibration``, default the
    shipped file)."""
    import torch

    from .nn.one_step import export_onnx

    if kind == "torch-bf16":
        return Bf16Restorer(model)
    if onnxruntime() is None:
        raise EngineError(f"engine {kind!r} needs onnxruntime, which is not importable ({INSTALL})")

    def fp32(path):
        export_onnx(model, path)

    graph = fp32_graph = cached_graph(sha256, "onnx", fp32)
    if kind == INT8:  # keyed by the ranges too: a recalibration is another graph
        ranges = _ranges_for(calibration or CALIBRATION_DIR / f"{name}.json", sha256, name)
        key = hashlib.sha256(json.dumps(ranges, sort_keys=True).encode()).hexdigest()[:12]
        graph = cached_graph(sha256, f"{INT8}-{key}", lambda path: quantise(fp32_graph, ranges, path))
    return OnnxRestorer(graph, torch.get_num_threads())


def _ranges_for(path: Path, sha256: str, name: str) -> dict:
    """The calibration cache (ONNX Runtime's JSON of activation ranges) in ``path``, checked against the weights."""
    if not path.exists():
        raise EngineError(f"engine 'onnx-int8': no calibration for weights {name} ({path} is missing); make it with "
                          f"diffarc-calibrate-engine {name}, or decode with engine 'onnx'")
    card = json.loads(path.read_text())
    if card.get("weights_sha256") != sha256:
        raise EngineError(f"engine 'onnx-int8': {path} calibrates other weights (sha256 "
                          f"{str(card.get('weights_sha256'))[:12]}, these are {sha256[:12]}); recalibrate: "
                          f"diffarc-calibrate-engine {name}")
    made = str(card.get("versions", "")).split("-")[0]
    if made != f"g{GRAPH_FORMAT}":
        raise EngineError(f"engine 'onnx-int8': {path} calibrates another graph format ({made or 'none'}, this is "
                          f"g{GRAPH_FORMAT}); recalibrate: diffarc-calibrate-engine {name}")
    return card["ranges"]


# the upsampling's pixel shuffle (DepthToSpace) moves quantised values as they are: no error, fewer conversions
QUANTISED_OPS = ["Conv", "DepthToSpace"]


class _NoPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantiser():
    """ONNX Runtime's quantiser advises pre-processing on the root logger at every call; its pre-processing
    fails on these graphs (symbolic shape inference), so the advice would only puzzle a first int8 decode."""
    advice = _NoPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


def quantise(graph: bytes, ranges: dict, path: str) -> None:
    """Static int8 (QDQ: uint8 activations with the calibrated ranges, int8 weights per output channel)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="diffarc-q8-") as tmp:
        src, cache = Path(tmp) / "fp32.onnx", Path(tmp) / "ranges.json"
        src.write_bytes(graph)
        cache.write_text(json.dumps(ranges))
        with _quiet_quantiser():
            quantize_static(str(src), path, None, quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibration_cache_path=str(cache))


def calibrate(graph: bytes, feeds) -> dict:
    """ONNX Runtime's MinMax activation ranges of the fp32 ``graph`` over ``feeds`` (dicts of input arrays)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import onnx

    names = {i.name for i in onnx.load_from_string(graph).graph.input}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            feed = next(self.items, None)
            return None if feed is None else {k: v for k, v in feed.items() if k in names}

    with tempfile.TemporaryDirectory(prefix="diffarc-cal-") as tmp:
        src, cache = Path(tmp) / "fp32.onnx", Path(tmp) / "ranges.json"
        src.write_bytes(graph)
        with _quiet_quantiser():
            quantize_static(str(src), str(Path(tmp) / "q8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=QUANTISED_OPS, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibration_cache_path=str(cache))
        return json.loads(cache.read_text())
