"""cdc-avif's decode engines (model/engine.py): ONNX Runtime against eager torch, the cached graphs,
the fallback where onnxruntime is missing, the option and what a decode records."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cdc_avif import photo, tiny_model

from model import engine, list_codecs, load_codec
from model.codec import OptionError
from model.codecs.cdc_avif import AvifDiffusionCodec
from model.nn.folded_norm import FoldedChannelNorm
from model.nn.one_step import export_onnx
from model.nn.subpixel import SubPixelUp
from model.nn.unet import ChannelNorm
from pipeline.decode.decoding import DecodeSettings, resolved_options

SHIPPED = [i.name for i in list_codecs() if i.family == "cdc-avif" and i.path is not None]
PSNR_BOUND_DB = 0.05  # the default engine against eager torch (issue 32's bound)


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def tiny_codec(seed=0) -> AvifDiffusionCodec:
    return AvifDiffusionCodec(tiny_model(seed, zero_head=False), f"cdc-avif-t{seed}", f"{seed:x}" * 64)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_default_engines_match_eager_on_every_shipped_weights_file(name):
    """auto's engines (torch-bf16 on CPUs with native bf16, else onnx) within the bound of eager fp32."""
    img = photo(64, 96)
    codec = load_codec(name)
    assert codec.resolve_options("decode", {})["engine"] == ("torch-bf16" if engine.native_bf16() else "onnx")
    blob = codec.encode([img])[0]
    eager, onnx, bf16 = (np.asarray(codec.decode([blob], engine=e)[0]) for e in ("torch", "onnx", "torch-bf16"))
    for decoded in (onnx, bf16):
        assert abs(psnr(img, decoded) - psnr(img, eager)) <= PSNR_BOUND_DB
    assert np.abs(onnx.astype(int) - eager).max() <= 1  # fp32 against fp32: rounding only


def test_the_exported_sub_pixel_upsampling_is_the_transposed_convolution():
    """The graph's 3x3 convolution + pixel shuffle computes the network's ConvTranspose2d(4, 2, 1)."""
    torch.manual_seed(0)
    transposed, x = torch.nn.ConvTranspose2d(8, 5, 4, stride=2, padding=1), torch.randn(2, 8, 7, 9)
    with torch.no_grad():
        assert torch.allclose(SubPixelUp(transposed)(x), transposed(x), atol=1e-5)
    with pytest.raises(ValueError, match="4x4 stride-2"):
        SubPixelUp(torch.nn.ConvTranspose2d(8, 5, 2, stride=2))


def test_the_exported_folded_norm_is_the_modulated_norm(tmp_path):
    """The graph's LayerNormalization with a per-image scale and bias computes ChannelNorm's norm-then-modulate,
    in torch and in ONNX Runtime, and leaves no multiply or add on the norm's output."""
    import onnx

    torch.manual_seed(0)
    norm = ChannelNorm(6)
    torch.nn.init.normal_(norm.norm.weight), torch.nn.init.normal_(norm.norm.bias)
    x, scale, shift = torch.randn(2, 6, 5, 7), torch.randn(2, 6), torch.randn(2, 6)

    class Modulated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = FoldedChannelNorm(norm)

        def forward(self, x, scale, shift):
            return self.norm(x, scale, shift)

    with torch.no_grad():
        want, folded = norm(x, scale, shift), Modulated()
        assert torch.allclose(folded(x, scale, shift), want, atol=1e-5)
        assert torch.equal(folded.norm(x), norm(x))  # unmodulated: the plain norm
        torch.onnx.export(folded, (x, scale, shift), tmp_path / "n.onnx", dynamo=False, opset_version=17,
                          input_names=["x", "scale", "shift"])
    graph = onnx.load(tmp_path / "n.onnx").graph
    normed = {o for n in graph.node if n.op_type == "LayerNormalization" for o in n.output}
    assert normed and not [n for n in graph.node if n.op_type in ("Mul", "Add") and set(n.input) & normed]
    ort = engine.onnxruntime()
    got = ort.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy(), "scale": scale.numpy(), "shift": shift.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-5)


def test_missing_onnxruntime_falls_back_to_torch_with_one_line(monkeypatch):
    monkeypatch.setenv(engine.ENV_DISABLE, "1")  # the seam: onnxruntime() answers None
    monkeypatch.setenv(engine.ENV_BF16, "0")  # and a CPU without native bf16, so auto has no engine left
    monkeypatch.setattr(engine, "_warned_missing", False)
    codec = tiny_codec()
    blob = codec.encode([photo(32, 48)])[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = [np.asarray(codec.decode([blob])[0]) for _ in range(2)]
    lines = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(lines) == 1 and "pip install onnxruntime" in lines[0] and "\n" not in lines[0]
    assert codec.resolve_options("decode", {})["engine"] == "torch"
    assert np.array_equal(images[0], np.asarray(codec.decode([blob], engine="torch")[0]))
    with pytest.raises(OptionError, match="needs onnxruntime"):
        codec.decode([blob], engine="onnx")


def test_engine_option_is_validated_and_a_decode_records_the_engine_that_ran(monkeypatch):
    monkeypatch.setenv(engine.ENV_BF16, "0")  # auto: onnx
    codec = tiny_codec()
    blob = codec.encode([photo(32, 48)])[0]
    with pytest.raises(OptionError, match="must be one of"):
        codec.decode([blob], engine="tensorrt")
    with pytest.raises(OptionError, match="one-step decode only"):
        codec.decode([blob], engine="onnx", steps=2)
    assert codec.resolve_options("decode", {"steps": 2})["engine"] == "torch"  # auto: torch runs multi-step
    codecs = {codec.codec_id: codec}
    recorded = [DecodeSettings(options=o, codec_options=resolved_options(codecs, o)).fingerprint()
                for o in ({}, {"engine": "torch"}, {"engine": "auto"})]
    assert recorded[0]["codec_options"][codec.codec_id]["engine"] == "onnx"
    assert recorded[0]["codec_options"] != recorded[1]["codec_options"]  # another engine: another decode
    assert recorded[0]["codec_options"] == recorded[2]["codec_options"]


def test_a_corrupt_or_stale_cached_graph_is_rebuilt_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path))
    a, b = tiny_model(0, zero_head=False), tiny_model(1, zero_head=False)
    sha_a, sha_b = "a" * 64, "b" * 64
    builds = []

    def graph_of(model, sha):
        return engine.cached_graph(sha, "onnx", lambda path: (builds.append(sha), export_onnx(model, path)))

    first = graph_of(a, sha_a)
    assert graph_of(a, sha_a) == first and builds == [sha_a]  # cached
    path = engine.graph_path(sha_a, "onnx")
    flipped = bytearray(path.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    assert graph_of(a, sha_a) == first and builds == [sha_a] * 2  # corrupt: rebuilt
    stale = graph_of(b, sha_b)  # other weights' graph, with a checksum that matches it, in a's place
    path.write_bytes(stale)
    engine.checksum_path(path).write_bytes(engine.checksum_path(engine.graph_path(sha_b, "onnx")).read_bytes())
    assert graph_of(a, sha_a) == first and builds == [sha_a, sha_a, sha_b, sha_a]  # stale: rebuilt
    base = torch.rand(1, 3, 32, 48) * 2 - 1
    out = engine.OnnxRestorer(path.read_bytes(), 1)(base, torch.tensor([30.0]), torch.zeros(1, 3))
    eager = a.restore(base, torch.tensor([30.0]), torch.zeros_like(base), 1, 1.0)
    assert torch.allclose(out, eager, atol=1e-5)


def test_building_a_graph_removes_that_weights_graphs_of_older_formats(tmp_path, monkeypatch):
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path))
    sha, other, g = "e" * 64, "f" * 64, engine.GRAPH_FORMAT
    fp32 = engine.graph_path(sha, "onnx").name
    int8 = engine.graph_path(sha, "onnx-int8-" + "a" * 12).name

    def at(name, fmt):
        return name.replace(f"-g{g}-", f"-g{fmt}-")

    old_fp32, old_int8 = at(fp32, g - 1), at(int8, g - 1).replace("a" * 12, "b" * 12)  # recalibrated since
    others = [old_fp32.replace(sha, other), at(fp32, g + 1), int8.replace("a" * 12, "c" * 12)]
    (tmp_path / "engines").mkdir()
    for name in [old_fp32, old_int8, *others]:
        (tmp_path / "engines" / name).write_bytes(b"graph")
        engine.checksum_path(tmp_path / "engines" / name).write_text("0" * 64)

    def left():
        return sorted(p.name for p in (tmp_path / "engines").iterdir() if p.suffix == ".onnx")

    def build(path):
        export_onnx(tiny_model(0), path)

    engine.cached_graph(sha, "onnx", build)  # an older fp32 graph goes; int8, other weights, newer stay
    assert left() == sorted([fp32, old_int8, *others])
    engine.cached_graph(sha, "onnx-int8-" + "a" * 12, build)  # an older int8 graph goes, whatever its key
    assert left() == sorted([fp32, int8, *others])
    assert all(engine.checksum_path(tmp_path / "engines" / n).exists() for n in left())
    assert not engine.checksum_path(tmp_path / "engines" / old_fp32).exists()
    (tmp_path / "engines" / old_fp32).write_bytes(b"graph")  # left by a version that did not prune
    engine.cached_graph(sha, "onnx", lambda path: pytest.fail("the cached graph is valid"))
    assert left() == sorted([fp32, int8, *others])


def test_int8_engine_uses_only_ranges_calibrated_for_its_weights(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))  # so the int8 graph is built here
    model = tiny_model(0, zero_head=False)
    sha = "c" * 64
    graph = engine.cached_graph(sha, "onnx", lambda path: export_onnx(model, path))
    bases = [torch.from_numpy(photo(32, 48, seed)).permute(2, 0, 1)[None].float() / 127.5 - 1 for seed in range(4)]
    feeds = [{"base": b.numpy(), "quality": np.array([30.0], np.float32)} for b in bases]
    calibration = tmp_path / "cdc-avif-t.json"
    card = {"weights_sha256": sha, "versions": engine.versions(), "ranges": engine.calibrate(graph, feeds)}
    calibration.write_text(json.dumps(card))
    int8 = engine.restorer(model, sha, "onnx-int8", "cdc-avif-t", calibration)
    # ONNX Runtime's advice to pre-process (which fails on these graphs) is not shown at a first int8 decode
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    out = int8(bases[0], torch.tensor([30.0]), torch.zeros(1, 3))
    eager = model.restore(bases[0], torch.tensor([30.0]), torch.zeros_like(bases[0]), 1, 1.0)
    assert 0 < (out - eager).abs().mean() * 127.5 < 1.0  # quantised: not fp32, yet within a level on average
    with pytest.raises(engine.EngineError, match="calibrates other weights"):
        engine.restorer(model, "d" * 64, "onnx-int8", "cdc-avif-t", calibration)
    with pytest.raises(engine.EngineError, match="no calibration"):
        engine.restorer(model, sha, "onnx-int8", "cdc-avif-t", tmp_path / "missing.json")
    older = tmp_path / "cdc-avif-older.json"  # ranges of an earlier graph name tensors this one lacks
    older.write_text(json.dumps({**card, "versions": "g1-" + card["versions"].split("-", 1)[1]}))
    with pytest.raises(engine.EngineError, match="another graph format"):
        engine.restorer(model, sha, "onnx-int8", "cdc-avif-t", older)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_weights_file_ships_its_int8_calibration(name):
    """engine="onnx-int8" refuses ranges of other weights: retrained weights need diffarc-calibrate-engine."""
    card = json.loads((engine.CALIBRATION_DIR / f"{name}.json").read_text())
    assert card["weights_sha256"] == load_codec(name).sha256 and card["ranges"]["data"]
    assert card["versions"].startswith(f"g{engine.GRAPH_FORMAT}-")


def test_the_engine_benchmark_prints_and_writes_its_table(tmp_path, capsys):
    from PIL import Image

    from model.evaluation.benchmark_engines import main

    (tmp_path / "photos").mkdir()
    Image.fromarray(photo(64, 96)).save(tmp_path / "photos" / "a.png")
    main(["--codecs", SHIPPED[-1], "--engines", "torch", "onnx", "--data", str(tmp_path / "photos"),
          "--holdout-every", "1", "--photos", "1", "--rounds", "2", "--out", str(tmp_path / "out")])
    rows = json.loads((tmp_path / "out" / "engines.json").read_text())["rows"]
    for r in rows:  # the median of two rounds, between the fastest and the slowest
        assert r["cpu_s_per_mp_range"][0] <= r["cpu_s_per_mp"] <= r["cpu_s_per_mp_range"][1]
    assert [r["ran"] for r in rows] == ["torch", "onnx"] and abs(rows[1]["d_psnr"]) <= PSNR_BOUND_DB
    assert all(r["cpu_s_per_mp"] > 0 and r["network_vs_around"] > 0 for r in rows)
    assert "| onnx |" in capsys.readouterr().out and (tmp_path / "out" / "table.md").exists()


def test_builders_racing_for_one_cached_graph_each_rename_a_whole_file(tmp_path, monkeypatch):
    """Ray workers may export the same graph at once: each builds in its own temporary file and renames
    it into place, so every one gets a whole graph and the cache holds one that validates."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path))
    exported = tmp_path / "exported.onnx"
    export_onnx(tiny_model(0, zero_head=False), str(exported))

    def build(path):  # a copy of one export: the race, not the exporter, is under test
        Path(path).write_bytes(exported.read_bytes())

    graphs = list(ThreadPoolExecutor(8).map(lambda _: engine.cached_graph("e" * 64, "onnx", build), range(8)))
    assert len(set(graphs)) == 1 and engine._valid(engine.graph_path("e" * 64, "onnx"), "e" * 64) == graphs[0]


def test_the_fast_presets_name_the_int8_engine():
    codec = load_codec("cdc-avif-mse")
    assert codec.resolve_options("decode", {}, "realism-fast")["engine"] == "onnx-int8"
    img = photo(64, 96)
    blob = codec.encode([img])[0]
    fast, eager = (np.asarray(codec.decode([blob], **kw)[0]) for kw in ({"preset": "fast"}, {"engine": "torch"}))
    assert np.array_equal(fast, np.asarray(codec.decode([blob], engine="onnx-int8")[0]))
    assert abs(psnr(img, fast) - psnr(img, eager)) <= 0.1  # int8: a little, and measured (results/engines)


def test_the_fastest_preset_is_the_small_decoder_on_int8():
    # cdc-avif-mse's `fastest`: another network (cdc-avif-fast-mse) restores the same base, on the int8 engine
    codec = load_codec("cdc-avif-mse")
    options = codec.resolve_options("decode", {}, "fastest")
    assert (options["decoder"], options["engine"]) == ("cdc-avif-fast-mse", "onnx-int8")
    img = photo(64, 96)
    blob = codec.encode([img])[0]
    fastest = np.asarray(codec.decode([blob], preset="fastest")[0])
    assert np.array_equal(fastest, np.asarray(codec.decode([blob], decoder="cdc-avif-fast-mse", engine="onnx-int8")[0]))
    default = np.asarray(codec.decode([blob])[0])
    assert not np.array_equal(fastest, default)  # another network, not the default's on another engine
    assert abs(psnr(img, fastest) - psnr(img, default)) <= 0.5  # a small cost (results/engines: held-out photos)
