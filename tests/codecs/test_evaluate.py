import csv
import json
import math
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from jobs.evaluate import build_parser, main
from model import Codec, Option, load_codec, load_image
from model.evaluation.rd import averages
from model.evaluation.results import write_card_figures
from model.evaluation.sweep import codec_names, curve_name, evaluate_codec, expand_braces
from model import random_codec
from model.nn.weights_file import save_weights

torch.set_num_threads(1)


def test_expand_braces_and_qualities():
    assert expand_braces("webp-q{10,30}") == ["webp-q10", "webp-q30"]
    assert expand_braces("{jpeg,avif}-q{1,2}") == ["jpeg-q1", "jpeg-q2", "avif-q1", "avif-q2"]
    assert codec_names(["jpeg", "webp-q{5,5}", "cdc-s-q1"], [20, 40]) == [
        "jpeg-q20", "jpeg-q40", "webp-q5", "cdc-s-q1",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="--qualities"):
        codec_names(["avif"], None)


def test_curve_name_groups_qualities_and_decoder_settings():
    assert curve_name("webp-q30", {}) == "webp"
    assert curve_name("cdc-s-q2", {"steps": 8, "gamma": 0.8}) == "cdc-s steps=8 gamma=0.8"
    assert curve_name("my_model", {}) == "my_model"


def _photo_like(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 50 * np.sin(x / 7.0 + seed)[..., None] * np.cos(y / 11.0)[..., None] * np.array([1.0, 0.6, -0.4])
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


class _StochasticJpeg(Codec):
    """A JPEG codec dressed as a diffusion codec, recording the decoder settings it is asked for."""

    name = family = "fake-q1"
    options = (Option("steps", int, 1, "decode"), Option("gamma", float, 0.0, "decode"),
               Option("seed", int, 0, "decode"))

    def __init__(self):
        self.inner, self.calls, self.encodes = load_codec("jpeg-q50"), [], []

    def _encode_rgb(self, rgbs):
        self.encodes.append(len(rgbs))
        return self.inner._encode_rgb(rgbs, quality=50)

    def _decode_containers(self, containers, steps, gamma, seed):
        self.calls.append((steps, gamma, seed))
        return self.inner._decode_containers(containers)


def _images(n=2, h=32, w=40):
    return [(f"im{i}.png", load_image(_png_bytes(_photo_like(h, w, i)))) for i in range(n)]


def test_stochastic_codec_is_decoded_at_every_steps_gamma_pair():
    codec, seen, kept = _StochasticJpeg(), [], []
    points = evaluate_codec(codec, _images(), {"steps": [1, 4], "gamma": [0.0, 0.8], "quality": [5, 9]},
                            {"seed": 3}, None, lambda: seen.append(1), lambda *a: kept.append(a))
    assert len(points) == 2 * 4 and len(seen) == 2 and codec.encodes == [1, 1]  # no encode options: one encode each
    assert sorted(set(codec.calls)) == [(1, 0.0, 3), (1, 0.8, 3), (4, 0.0, 3), (4, 0.8, 3)]
    assert {p["curve"] for p in points} == {f"fake steps={s} gamma={g:g}" for s in (1, 4) for g in (0, 0.8)}
    assert len(kept) == 8 and kept[0][2].shape == (32, 40, 3)
    rows = averages(points)
    assert len(rows) == 4 and all(r["images"] == 2 for r in rows)


def test_encode_option_gives_one_point_per_value_each_encoded_separately():
    codec = load_codec("webp-q50")
    points = evaluate_codec(codec, _images(1, 48, 64), {"quality": [10, 50, 90], "steps": [1, 8]}, {"seed": 0})
    assert [p["codec"] for p in points] == ["webp-q10", "webp-q50", "webp-q90"]  # steps: not a webp option
    assert [p["encode"] for p in points] == ["quality=10", "quality=50", "quality=90"]
    assert len({p["bytes"] for p in points}) == 3 and points[0]["bpp"] < points[1]["bpp"] < points[2]["bpp"]
    assert points[0]["psnr"] < points[2]["psnr"] and {p["curve"] for p in points} == {"webp"}
    assert codec.name == "webp-q50"  # the sweep left the codec itself as it was
    assert len(averages(points)) == 3


def _png_bytes(arr):
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _random_lpips_folder(folder, nets=("alex", "squeeze")):
    """lpips_<net>.pth files of LPIPS with random backbones (no download), as ../shared/data/perceptual holds."""
    import lpips

    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    for net in nets:
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        torch.save(model.state_dict(), folder / f"lpips_{net}.pth")
    return folder


def test_evaluate_end_to_end_on_tiny_images(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_photo_like(176, 192, 0)).save(folder / "a.png")
    Image.fromarray(_photo_like(192, 176, 1)).save(folder / "b.png")
    Image.fromarray(_photo_like(48, 64, 2)[..., 0]).save(folder / "grey.png")  # mode L, too small for MS-SSIM
    out = tmp_path / "out"

    rc = main(
        ["--images", str(folder), "--out", str(out), "--codecs", "jpeg-q{15,85}", "webp",
         "--qualities", "10,80", "--lpips-weights", str(_random_lpips_folder(tmp_path / "lpips")),
         "--gallery-image", "b.png", "--gallery-crop", "64", "--gallery-bpp", "1.0"]
    )  # fmt: skip

    assert rc == 0
    for name in ("results.json", "points.csv", "averages.csv", "bd_rate.csv", "bd_rate.md", "vs_anchor.csv",
                 "vs_anchor.md", "rd_psnr.png", "rd_ms_ssim.png", "rd_lpips.png", "rd_lpips_squeeze.png",
                 "gallery.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    points = results["points"]
    assert len(points) == 3 * 4
    with (out / "points.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(points)
    for p in points:
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / (p["height"] * p["width"]))
        assert 10 < p["psnr"] < 60 and 0 <= p["lpips"] and p["encode_s"] > 0 and p["decode_s"] > 0
        assert 0 <= p["lpips_squeeze"] and p["lpips_squeeze"] != p["lpips"]  # a second, different network
        assert (p["ms_ssim"] is None) == (p["image"] == "grey.png")
    rows = {r["codec"]: r for r in results["averages"]}
    for low, high in (("jpeg-q15", "jpeg-q85"), ("webp-q10", "webp-q80")):
        assert rows[low]["bpp"] < rows[high]["bpp"]
        assert rows[low]["psnr"] < rows[high]["psnr"]
        assert rows[low]["ms_ssim"] < rows[high]["ms_ssim"] <= 1
    (bd,) = results["bd_rate"]
    assert bd["curve"] == "jpeg" and bd["anchor"] == "webp" and math.isfinite(bd["bd_rate_psnr"])
    assert math.isfinite(bd["bd_rate_lpips_squeeze"]) and "LPIPS-squeeze" in (out / "bd_rate.md").read_text()
    assert set(results["config"]["lpips_weights"]) == {"alex", "squeeze"}
    with Image.open(out / "gallery.png") as g:
        assert g.size == (3 * (240 + 6), 64 + 16 * 4 + 4 + 6)  # one line: original + jpeg + webp, 4 label lines
    printed = capsys.readouterr().out
    assert "jpeg-q85" in printed and "BD-rate against webp" in printed


def test_evaluate_sweeps_an_encode_option_from_its_flag(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_photo_like(48, 64, 0)).save(folder / "a.png")
    assert main(["--images", str(folder), "--out", str(tmp_path / "out"), "--codecs", "avif-q50", "--quality",
                 "20,80", "--no-lpips", "--gallery-crop", "32"]) == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["averages"]
    assert [(r["codec"], r["encode"]) for r in sorted(rows, key=lambda r: r["bpp"])] == [
        ("avif-q20", "quality=20"), ("avif-q80", "quality=80")]


@pytest.mark.skipif(not shutil.which("butteraugli_main"), reason="butteraugli_main missing (libjxl-devtools)")
def test_evaluate_measures_butteraugli_when_asked(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_photo_like(48, 64, 0)).save(folder / "a.png")
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), "--codecs", "avif", "webp", "--qualities", "10,40,90",
                 "--no-lpips", "--metrics", "psnr,butteraugli", "--anchor", "avif", "--gallery-crop", "32"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert all(p["butteraugli"] > p["butteraugli_p3"] > 0 and p["ssimulacra"] is None for p in results["points"])
    assert results["config"]["tool_metrics"] == ["butteraugli"] and (out / "rd_butteraugli_p3.png").exists()
    (bd,) = results["bd_rate"]
    assert math.isfinite(bd["bd_rate_butteraugli_p3"]) and "Butteraugli-3n" in (out / "bd_rate.md").read_text()
    assert "Butteraugli-3n ratio" in (out / "vs_anchor.md").read_text()
    assert "Butt-3n" in capsys.readouterr().out


def test_held_out_evaluates_only_what_training_never_reads_and_resize_max_downscales(tmp_path):
    from model.training.data import held_out

    folder = tmp_path / "images"
    folder.mkdir()
    names = [f"photo{i:02d}.png" for i in range(12)]
    for i, name in enumerate(names):
        Image.fromarray(_photo_like(40, 60, i)).save(folder / name)
    expected = {n for n in names if held_out(n, 4)}
    assert 0 < len(expected) < len(names)  # the hash splits this set: the test can fail either way
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), "--codecs", "jpeg-q50", "--no-lpips",
                 "--held-out", "4", "--resize-max", "30", "--gallery-crop", "16"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {p["image"] for p in results["points"]} == expected
    assert all((p["height"], p["width"]) == (20, 30) for p in results["points"])
    assert results["config"]["held_out"] == 4 and results["config"]["resize_max"] == 30


def test_images_come_from_a_folder_or_from_shards():
    from jobs.compress import DEFAULT_INPUT
    from model.evaluation.inputs import load_images

    images = load_images(DEFAULT_INPUT + "/shard-{000000..000001}.tar", limit=5)
    assert [name for name, _ in images] == ["img0000.jpg", "img0001.jpg", "img0002.jpg", "img0003.png", "img0004.jpg"]
    assert all(im.rgb.ndim == 3 for _, im in images)


def test_spread_samples_limit_images_evenly_over_the_sorted_names(tmp_path):
    from model.evaluation.inputs import load_images

    for prefix in ("a", "b"):  # two sources, sorted one after the other
        for i in range(6):
            Image.fromarray(_photo_like(8, 8, i)).save(tmp_path / f"{prefix}{i}.png")
    assert [n for n, _ in load_images(tmp_path, 4)] == ["a0.png", "a1.png", "a2.png", "a3.png"]
    assert [n for n, _ in load_images(tmp_path, 4, spread=True)] == ["a0.png", "a3.png", "b0.png", "b3.png"]
    assert len(load_images(tmp_path, 40, spread=True)) == 12


def test_help_mentions_brace_expansion():
    assert "webp-q{10,30,50}" in build_parser().format_help()


def test_write_cards_records_figures_only_in_the_matching_card(tmp_path):
    codec = random_codec("hyperprior-tiny", seed=1)
    save_weights(codec.model, tmp_path / "hp-tiny-q1.safetensors", {"name": "hp-tiny-q1"})
    shipped = load_codec(str(tmp_path / "hp-tiny-q1.safetensors"))
    save_weights(random_codec("hyperprior-tiny", seed=3).model, tmp_path / "hp-tiny-q2.safetensors", {"name": "x"})
    stale = random_codec("hyperprior-tiny", seed=2)  # named like the card beside it, other weights
    stale.name = "hp-tiny-q2"
    row = {"codec": "hp-tiny-q1", "steps": None, "gamma": None, "bpp": 0.123456, "psnr": 27.5, "ms_ssim": 0.9,
           "lpips": math.nan, "encode_s": 0.1, "decode_s": 0.2}
    config = {"images": "/data/kodak", "n_images": 24, "command": "python -m jobs.evaluate ..."}
    with pytest.warns(UserWarning, match="other weights"):
        written = write_card_figures([shipped, stale, load_codec("jpeg-q5")], [row], config, weights_dir=tmp_path)
    assert written == [tmp_path / "hp-tiny-q1.json"]
    card = json.loads(written[0].read_text())
    assert card["evaluation"]["images"] == "kodak" and card["evaluation"]["n_images"] == 24
    assert card["evaluation"]["averages"] == [
        {"steps": None, "gamma": None, "bpp": 0.1235, "psnr": 27.5, "ms_ssim": 0.9, "lpips": None,
         "encode_s": 0.1, "decode_s": 0.2}
    ]  # fmt: skip
    assert "evaluation" not in json.loads((tmp_path / "hp-tiny-q2.json").read_text())


def test_write_cards_refuses_a_partial_image_set(tmp_path):
    with pytest.raises(SystemExit, match="drop --limit"):
        main(["--images", str(tmp_path), "--out", str(tmp_path), "--codecs", "jpeg-q5", "--limit", "2",
              "--write-cards"])


@pytest.fixture
def zero_cdc_avif(tmp_path):
    """A tiny cdc-avif weights file with the zero-initialised head: it decodes to the AVIF base exactly."""
    from model import named_config
    from model.nn.restoration import AvifRestorationModel

    torch.manual_seed(0)
    path = tmp_path / "cdc-avif-zero.safetensors"
    save_weights(AvifRestorationModel(named_config("cdc-avif-tiny")), path,
                 {"name": "cdc-avif-zero", "description": "test", "steps_trained": 0, "default_steps": 1})
    return path


def _image_folder(tmp_path, n=2, h=128, w=192):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(_photo_like(h, w, i)).save(folder / f"{'ab'[i]}.png")
    return folder


def test_cdc_avif_curve_per_decode_setting_against_avif(tmp_path, zero_cdc_avif, capsys):
    out = tmp_path / "out"
    assert main(["--images", str(_image_folder(tmp_path)), "--out", str(out), "--codecs", "avif-q{20,45,70}",
                 "cdc-avif-zero-q{20,45,70}", "--weights-dir", str(zero_cdc_avif.parent), "--steps", "1,2",
                 "--gammas", "0,0.8", "--anchor",
                 "avif", "cdc-avif-zero steps=1 gamma=0", "--no-lpips", "--gallery-bpp", "0.5", "--gallery-crop", "32", "--gallery-image", "a.png",
                 "b.png", "--gallery-codecs", "cdc-avif-zero steps=2 gamma=0.8", "avif"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    ours = [f"cdc-avif-zero steps={s} gamma={g}" for s in (1, 2) for g in ("0", "0.8")]
    assert {r["curve"] for r in results["averages"]} == {"avif", *ours}
    bd = {(b["curve"], b["anchor"]): b["bd_rate_psnr"] for b in results["bd_rate"]}
    assert sorted(c for c, a in bd if a == "avif") == ours and len(bd) == 2 * len(ours)
    assert bd["cdc-avif-zero steps=2 gamma=0", ours[0]] == pytest.approx(0, abs=1e-9)  # same pixels, same bytes
    assert bd["avif", ours[0]] > 0 > bd[ours[0], "avif"]  # the anchors compared both ways
    points = {(p["curve"], p["image"], p["encode"]): p for p in results["points"]}
    for (curve, image, encode), p in points.items():  # the zero head returns AVIF's pixels in fewer bytes
        if curve != "avif":
            assert p["psnr"] == points["avif", image, encode]["psnr"]
            assert p["bytes"] < points["avif", image, encode]["bytes"]
    compared = [r for r in results["vs_anchor"] if r["psnr_diff"] is not None and r["anchor"] == "avif"]
    assert {r["encode"] for r in compared} == {"quality=45", "quality=70"}  # quality 20 is under avif's lowest bpp
    assert all(r["psnr_diff"] > 0 for r in compared) and len(compared) == 4 * 2
    vs_text = (out / "vs_anchor.md").read_text()
    assert "## cdc-avif-zero steps=2 gamma=0.8" in vs_text and "# Against cdc-avif-zero steps=1 gamma=0 " in vs_text
    printed = capsys.readouterr().out  # the name does not say the quality, so the summary does
    assert "cdc-avif-zero quality=45" in printed and "avif-q45 " in printed and "avif-q45 quality" not in printed
    assert "BD-rate against avif (" in printed and "BD-rate against cdc-avif-zero steps=1 gamma=0 (" in printed
    assert (out / "bd_rate.md").read_text().count("| curve | PSNR |") == 2
    with Image.open(out / "gallery.png") as g:  # two images, each a row: original + the two curves asked for
        assert g.size == (3 * (240 + 6), 2 * (32 + 16 * 3 + 4 + 6))


def test_frontier_puts_each_cdc_avif_over_avif_at_its_own_effort(tmp_path, zero_cdc_avif):
    import PIL.AvifImagePlugin

    out = tmp_path / "out"
    assert main(["--frontier", "--images", str(_image_folder(tmp_path, 1, 48, 64)), "--out", str(out),
                 "--codecs", "cdc-avif-zero", "--weights-dir", str(zero_cdc_avif.parent), "--qualities", "20,60",
                 "--jxl-qualities", "30,80", "--no-lpips", "--gallery-crop", "16"]) == 0
    results = json.loads((out / "results.json").read_text())
    efforts = ("fast", "medium", "best")
    curves = {f"{name} {e}" for name in ("avif", "cdc-avif-zero") for e in efforts}
    assert {p["curve"] for p in results["points"]} == curves | {"jxl e7"}
    points = {(p["curve"], re.search(r"quality=(\d+)", p["encode"]).group(1)): p for p in results["points"]}
    for effort in efforts:  # the zero head returns its base's pixels: the same AVIF settings as "avif EFFORT"
        for q in ("20", "60"):
            ours, avif = points[f"cdc-avif-zero {effort}", q], points[f"avif {effort}", q]
            assert ours["psnr"] == avif["psnr"] and ours["bytes"] < avif["bytes"]
    assert points["avif best", "20"]["psnr"] != points["avif fast", "20"]["psnr"]  # the efforts differ
    with (out / "frontier.csv").open() as f:
        rows = {r["curve"]: r for r in csv.DictReader(f)}
    assert set(rows) == curves | {"jxl e7"} and float(rows["avif fast"]["bd_vs_default"]) == 0
    assert all(float(rows[f"cdc-avif-zero {e}"]["bd_vs_own"]) < 0 for e in efforts)  # same PSNR, fewer bytes
    assert all(float(r["encode_s_mp"]) > 0 and float(r["decode_s_mp"]) > 0 for r in rows.values())
    assert (out / "frontier.png").stat().st_size > 0 and "--frontier" in (out / "frontier.md").read_text()
    assert results["config"]["frontier"]["codec_threads"] == 1 and PIL.AvifImagePlugin.DEFAULT_MAX_THREADS == 0


def test_frontier_times_every_codec_on_one_thread_and_restores_the_counts():
    import PIL.AvifImagePlugin
    import pillow_jxl.JpegXLImagePlugin

    from model.codecs import pillow
    from model.evaluation.frontier import one_thread

    torch.set_num_threads(2)
    try:
        with one_thread():
            assert (PIL.AvifImagePlugin.DEFAULT_MAX_THREADS, pillow_jxl.JpegXLImagePlugin.DECODE_THREADS,
                    pillow.JXL_THREADS, torch.get_num_threads()) == (1, 1, 1, 1)
        assert (PIL.AvifImagePlugin.DEFAULT_MAX_THREADS, pillow.JXL_THREADS, torch.get_num_threads()) == (0, -1, 2)
    finally:
        torch.set_num_threads(1)


def test_frontier_takes_only_cdc_avif_codecs(tmp_path, no_evaluation):
    with pytest.raises(SystemExit, match="--frontier --codecs takes cdc-avif codecs.*not webp-q30"):
        main(["--frontier", "--images", str(_image_folder(tmp_path, 1, 48, 64)), "--out", str(tmp_path / "out"),
              "--codecs", "webp-q30", "--qualities", "20,60", "--no-lpips"])


@pytest.fixture
def no_evaluation(monkeypatch):
    """Fails the test if main() starts evaluating: these refusals must come before the hours of decoding."""
    monkeypatch.setattr("jobs.evaluate.evaluate_codec", lambda *a, **k: pytest.fail("evaluated before refusing"))


def test_unknown_gallery_curve_fails_before_evaluating(tmp_path, zero_cdc_avif, no_evaluation):
    with pytest.raises(SystemExit, match=r"no such curve.*'cdc-avif-zero steps=1 gamma=0'"):
        main(["--images", str(_image_folder(tmp_path, 1)), "--out", str(tmp_path / "out"), "--codecs",
              str(zero_cdc_avif), "--steps", "1", "--gammas", "0", "--no-lpips", "--gallery-codecs",
              "cdc-avif-zero steps=4 gamma=0"])  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_sweep_that_repeats_codecs_is_refused_before_evaluating(tmp_path, no_evaluation):
    with pytest.raises(SystemExit, match=r"jpeg-q20 quality=20, jpeg-q40 quality=40: made by more than one"):
        main(["--images", str(_image_folder(tmp_path, 1)), "--out", str(tmp_path / "out"), "--codecs",
              "jpeg-q{5,10}", "webp-q10", "--quality", "20,40", "--no-lpips"])  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_gallery_picks_the_named_curves_in_order_nearest_the_target_bpp():
    from model.evaluation.report import gallery_picks

    def point(curve, bpp, steps=None):
        return ({"curve": curve, "bpp": bpp, "steps": steps}, np.zeros((2, 2, 3), np.uint8))

    gallery = [point("avif", 0.1), point("avif", 0.18), point("x steps=8 gamma=0.8", 0.16, 8),
               point("x steps=1 gamma=0", 0.12, 1), point("x steps=1 gamma=0", 0.3, 1), point("webp", 0.15)]
    picked = gallery_picks(gallery, 0.15, 8, ["x steps=1 gamma=0", "avif"])
    assert [(p["curve"], p["bpp"]) for p, _ in picked] == [("x steps=1 gamma=0", 0.12), ("avif", 0.18)]
    by_default = gallery_picks(gallery, 0.15, 8)  # every curve, diffusion ones at 8 steps only
    assert [(p["curve"], p["bpp"]) for p, _ in by_default] == [("avif", 0.18), ("webp", 0.15),
                                                                ("x steps=8 gamma=0.8", 0.16)]
