import math
import shutil
import warnings

import numpy as np
import pytest
import torch

from model.evaluation.bdrate import bd_rate, ms_ssim_db
from model.evaluation.metrics import (TOOL_COLUMNS, TOOL_METRICS, default_lpips_path, load_lpips, lpips_column,
                                      lpips_distance, lpips_weight_files, ms_ssim, psnr, ssimulacra2, tool_values,
                                      usable_tool_metrics)

torch.set_num_threads(1)


def _smooth_image(h=192, w=208, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 9.0)[..., None] * np.cos(y / 13.0)[..., None] * np.array([1.0, 0.7, -0.5])
    return np.clip(base + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)


def _noisy(img, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_psnr_identical_is_inf_and_known_mse():
    a = _smooth_image()
    assert psnr(a, a) == math.inf
    b = a.astype(np.int16)
    b[..., 0] = np.where(b[..., 0] < 128, b[..., 0] + 3, b[..., 0] - 3)  # |error| 3 on one channel of 3
    mse = 9.0 / 3.0
    assert psnr(a, b.astype(np.uint8)) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)


def test_psnr_rejects_wrong_dtype_and_shape():
    a = _smooth_image()
    with pytest.raises(TypeError, match="uint8"):
        psnr(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, a[:-1])


def test_ms_ssim_identical_is_one_and_noise_lowers_it():
    a = _smooth_image()
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    light, heavy = ms_ssim(a, _noisy(a, 5)), ms_ssim(a, _noisy(a, 30))
    assert 1.0 > light > heavy > 0.0


def test_ssimulacra2_identical_is_100_and_falls_with_the_noise():
    a = _smooth_image()
    assert ssimulacra2(a, a) == pytest.approx(100.0, abs=1e-6)
    light, heavy = ssimulacra2(a, _noisy(a, 5)), ssimulacra2(a, _noisy(a, 30))
    assert 100.0 > light > heavy
    with pytest.raises(ValueError, match="shape"):
        ssimulacra2(a, a[:-1])


def test_ms_ssim_is_nan_below_minimum_size():
    a = _smooth_image(h=160, w=300)
    assert math.isnan(ms_ssim(a, a))


@pytest.fixture(scope="module")
def random_backbone_lpips(tmp_path_factory):
    """LPIPS with a random AlexNet (no download) and the package's own linear layers, via a state-dict file."""
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    path = tmp_path_factory.mktemp("lpips") / "lpips_alex_random.pth"
    torch.save(net.state_dict(), path)
    return load_lpips(path)


def test_lpips_identical_is_zero_noise_raises_it(random_backbone_lpips):
    a = _smooth_image(h=64, w=64)
    assert lpips_distance(random_backbone_lpips, a, a) == pytest.approx(0.0, abs=1e-7)
    light = lpips_distance(random_backbone_lpips, a, _noisy(a, 5))
    heavy = lpips_distance(random_backbone_lpips, a, _noisy(a, 40))
    assert 0.0 < light < heavy


def test_lpips_module_is_frozen_and_differentiable_in_its_input(random_backbone_lpips):
    assert not any(p.requires_grad for p in random_backbone_lpips.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = random_backbone_lpips(x * 2 - 1, torch.zeros(1, 3, 32, 32)).mean()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_load_lpips_names_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="lpips_alex.pth"):
        load_lpips(tmp_path / "nope.pth")


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_shared_lpips_weights_load_and_rank_noise(net):
    if default_lpips_path(net) is None:
        pytest.skip(f"../shared/data/perceptual/lpips_{net}.pth absent (fresh clone)")
    model = load_lpips(default_lpips_path(net), net=net)
    a = _smooth_image(h=64, w=64)
    assert 0.0 < lpips_distance(model, a, _noisy(a, 5)) < lpips_distance(model, a, _noisy(a, 40))


def test_lpips_weight_files_from_a_folder_or_one_file(tmp_path):
    (tmp_path / "lpips_squeeze.pth").write_bytes(b"x")
    assert lpips_weight_files(tmp_path) == {"squeeze": tmp_path / "lpips_squeeze.pth"}  # what is there
    (tmp_path / "lpips_alex.pth").write_bytes(b"x")
    assert set(lpips_weight_files(tmp_path)) == {"alex", "squeeze"}
    assert lpips_weight_files(tmp_path, ["squeeze"]) == {"squeeze": tmp_path / "lpips_squeeze.pth"}
    assert lpips_weight_files(tmp_path / "lpips_alex.pth") == {"alex": tmp_path / "lpips_alex.pth"}
    assert lpips_weight_files(None) == {}
    with pytest.raises(FileNotFoundError, match="one file .*pass the folder holding lpips_squeeze.pth"):
        lpips_weight_files(tmp_path / "lpips_alex.pth", ["alex", "squeeze"])
    with pytest.raises(ValueError, match="unknown LPIPS network.*vgg"):
        lpips_weight_files(tmp_path, ["vgg"])
    (tmp_path / "lpips_alex.pth").unlink()
    with pytest.raises(FileNotFoundError, match="LPIPS-alex weights not found at .*lpips_alex.pth"):
        lpips_weight_files(tmp_path, ["alex"])
    assert [lpips_column(n) for n in ("alex", "squeeze")] == ["lpips", "lpips_squeeze"]  # older results stay valid


def test_bd_rate_of_constant_rate_factor_is_that_factor():
    rates = np.array([0.1, 0.2, 0.4, 0.8, 1.2])
    quality = 25 + 4 * np.log2(rates / 0.1) + 0.3 * np.log2(rates / 0.1) ** 2
    assert bd_rate(rates, quality, rates * 0.8, quality) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(rates, quality, rates * 1.5, quality) == pytest.approx(50.0, abs=1e-6)
    assert bd_rate(rates, quality, rates * 0.8, quality, method="pchip") == pytest.approx(-20.0, abs=1e-6)


def test_pchip_bd_rate_of_an_envelope_counts_where_the_other_curve_wins():
    """Two curves crossing: their upper envelope (an oracle's pick per rate) saves bits against the one
    that is better at high rates, where the other wins at low rates; the piecewise fit follows the kink."""
    from model.evaluation.base_variants import envelope

    rates = np.geomspace(0.05, 2.0, 14)
    full = 30 + 5 * np.log2(rates / 0.05)
    small = full + 1.0 - 0.5 * np.log2(rates / 0.05)  # better at low rates, worse from about 0.2 bpp
    env = envelope(list(zip(rates, full)) + list(zip(rates, small)))
    assert all(b in rates for b, _ in env) and len(env) < 2 * len(rates)
    gain = bd_rate(rates, full, [b for b, _ in env], [p for _, p in env], method="pchip")
    assert -100 < gain < -1.0  # the envelope saves bits where the small curve is better


def test_the_base_variant_oracle_is_never_above_the_reference_on_a_real_encode():
    from model.evaluation.base_variants import DOWNSCALES, image_bd_rates, main

    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1)))  # blocks: cheap to downscale
    rgb = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
    rates = image_bd_rates(rgb, list(DOWNSCALES), "fast")
    assert {"0.75@4:2:0", "0.5@4:2:0", "best_of"} <= set(rates) and rates["best_of"] <= 1e-9
    assert all(rates[f"{v} encode s/MP"] > 0 for v in DOWNSCALES)
    with pytest.raises(SystemExit):  # argparse's error names the form
        main(["--variants", "1@4:2:0", "half@4:2:0"])


def test_bd_rate_partial_overlap_and_decreasing_metric():
    rates = np.array([0.1, 0.2, 0.4, 0.8])
    lpips_like = 0.5 - 0.1 * np.log2(rates / 0.1)  # lower is better
    shifted = rates * 0.9
    # test curve covers only part of the reference's range: still -10% on the overlap
    assert bd_rate(rates, lpips_like, shifted[1:], lpips_like[1:]) == pytest.approx(-10.0, abs=1e-6)
    # no shared quality range -> NaN
    assert math.isnan(bd_rate(rates, lpips_like, rates, lpips_like + 10))


def test_ms_ssim_db():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(1.0) == math.inf


needs_libjxl_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool, _ in TOOL_METRICS.values()),
    reason="butteraugli_main / ssimulacra_main missing (apt-get install libjxl-devtools)")


@needs_libjxl_tools
def test_butteraugli_and_ssimulacra_grow_with_the_distortion():
    a = _smooth_image(64, 80)
    assert tool_values(["butteraugli"], a, a)["butteraugli"] == 0.0
    light, heavy = (tool_values(list(TOOL_METRICS), a, _noisy(a, s)) for s in (3, 30))
    for column in TOOL_COLUMNS:
        assert 0 < light[column] < heavy[column], column
    assert math.isnan(tool_values([], a, a)["butteraugli"])  # not asked for: not measured


def test_a_missing_tool_is_skipped_with_the_package_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no tool on PATH
    usable, skipped = usable_tool_metrics(["butteraugli"])
    assert usable == [] and "butteraugli_main not found" in skipped[0] and "libjxl-devtools" in skipped[0]


def test_ssimulacra2_is_a_judge_metric_and_a_bd_rate_axis():
    from model.evaluation.rd import bd_rates

    a = _smooth_image(64, 80)
    light, heavy = (tool_values(["ssimulacra2"], a, _noisy(a, s)) for s in (3, 30))
    assert light["ssimulacra2"] > heavy["ssimulacra2"] and math.isnan(light["butteraugli"])  # a score: higher is better
    assert usable_tool_metrics(["ssimulacra2"]) == (["ssimulacra2"], [])  # no tool to find
    # a curve with the anchor's scores at 10 % fewer bits: BD-rate -10 % on that axis, whichever way it points
    ref = [{"bpp": b, "ssimulacra2": q, **dict.fromkeys(("psnr", "ms_ssim"), q / 100)} for b, q in
           ((0.2, 40.0), (0.4, 55.0), (0.8, 70.0))]
    test = [{**r, "bpp": r["bpp"] * 0.9} for r in ref]
    row = bd_rates({"ref": [{**r, **dict.fromkeys(("lpips", "lpips_squeeze", "butteraugli", "butteraugli_p3",
                                                    "ssimulacra"), math.nan)} for r in ref],
                    "test": [{**r, **dict.fromkeys(("lpips", "lpips_squeeze", "butteraugli", "butteraugli_p3",
                                                     "ssimulacra"), math.nan)} for r in test]}, "ref")[0]
    assert row["bd_rate_ssimulacra2"] == pytest.approx(-10.0, abs=1e-6)


def test_patches_tile_the_image_without_overlap():
    from model.evaluation.realism import patches

    img = np.arange(300 * 260 * 3, dtype=np.int64).reshape(300, 260, 3).astype(np.uint8)
    p = patches(img, 128)
    assert p.shape == (4, 128, 128, 3)  # 2 x 2 whole patches; the ragged edge is left out
    assert np.array_equal(p[1], img[:128, 128:256]) and np.array_equal(p[2], img[128:256, :128])


def test_kid_on_squeezenet_is_near_zero_for_one_set_and_rises_with_blur_and_noise():
    from scipy.ndimage import gaussian_filter

    from model.evaluation.realism import SqueezeFeatures, default_squeeze_path, kid, patches

    if default_squeeze_path() is None:
        pytest.skip("../shared/data/perceptual/lpips_squeeze.pth absent (fresh clone)")
    originals = np.concatenate([patches(_smooth_image(256, 512, seed=s)) for s in range(4)])  # 32 patches
    blurred = np.stack([gaussian_filter(p, (2, 2, 0)) for p in originals])
    noisy = _noisy(originals, 20)
    features = SqueezeFeatures()
    real = features(originals)
    same = kid(real, features(originals), subsets=20, subset_size=16)
    blur, noise = (kid(real, features(x), subsets=20, subset_size=16) for x in (blurred, noisy))
    assert abs(same.mean) < 0.05 and same.patches == 32
    assert blur.mean > 0.2 and blur.mean > 5 * blur.std
    assert noise.mean > 0.2 and noise.mean > 5 * noise.std
    with pytest.raises(ValueError, match="at least 4 patches"):
        kid(real[:3], real)


def test_psnr_from_mse_is_one_formula_for_every_peak():
    """The codecs' rate control, training's figures and ``psnr`` share it: 8-bit and [0, 1] scales agree."""
    from model.nn.psnr import psnr_from_mse

    assert psnr_from_mse(0.0) == math.inf
    assert psnr_from_mse(1e-4, peak=1.0) == pytest.approx(40.0, abs=1e-9)
    assert psnr_from_mse(65.025) == pytest.approx(30.0, abs=1e-9)
    assert psnr_from_mse(0.01 * 255**2) == pytest.approx(psnr_from_mse(0.01, peak=1.0), abs=1e-9)
