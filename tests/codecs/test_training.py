"""The training job on tiny configs: runs, resumes, exports loadable weights; the LPIPS term."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from jobs.export_run import main as export_run_main
from jobs.train import main as train_main
from model import build_network, load_codec, named_config


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(4):
        yy, xx = np.mgrid[0:90, 0:120]
        img = np.stack([xx * 2 + i * 9, yy * 3, xx + yy], axis=2) % 256 + rng.normal(0, 6, (90, 120, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
    Image.fromarray(np.full((70, 70), 128, np.uint8)).save(folder / "grey.png")  # mode L is converted
    return folder


@pytest.mark.parametrize("config", ["cdc-tiny", "hyperprior-tiny"])
def test_train_resume_export(photo_folder, tmp_path, config, capsys):
    out, weights = tmp_path / "run", tmp_path / "weights"
    args = ["--config", config, "--data", str(photo_folder), "--out", str(out), "--batch-size", "2",
            "--crop", "64", "--workers", "0", "--checkpoint-every", "2", "--final-step-fraction", "0.5"]
    assert train_main(args + ["--steps", "3"]) == 0
    state = out / "ckpt" / "state.json"
    assert json.loads(state.read_text())["step"] == 3
    # jobs/export_run.py: the latest checkpoint as weights, without training or touching the run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "ckpt").iterdir()}
    assert export_run_main([str(out), "tiny-snap"]) == 0 and "step 3 of 3" in capsys.readouterr().out
    assert json.loads((out / "weights" / "tiny-snap.json").read_text())["steps_trained"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in (out / "ckpt").iterdir()} == before
    snap = load_codec(str(out / "weights" / "tiny-snap.safetensors"))
    assert snap.decode(snap.encode([np.zeros((20, 30, 3), np.uint8)]))[0].size == (30, 20)
    assert export_run_main([str(tmp_path), "nothing"]) == 2  # not a run folder: says which file it lacks
    assert str(tmp_path / "train_config.json") in capsys.readouterr().err
    state.write_text(json.dumps({**json.loads(state.read_text()), "elapsed_s": 1e4}))  # marks this checkpoint
    assert train_main(args + ["--steps", "5", "--export", "tiny-x", "--weights-dir", str(weights)]) == 0
    assert "tiny-x.safetensors" in capsys.readouterr().out
    card = json.loads((weights / "tiny-x.json").read_text())
    assert card["steps_trained"] == 5 and card["family"] == config.split("-")[0]
    # a diffusion decoder's card says what it was trained for (half the batch at t = 1: a prior); the hyperprior has none
    assert card.get("objective") == {"cdc-tiny": "diffusion", "hyperprior-tiny": None}[config]
    assert 1e4 <= card["wall_time_s"] < 1e4 + 600  # resumed: the checkpoint's clock went on
    codec = load_codec(str(weights / "tiny-x.safetensors"))
    assert codec.codec_id.startswith("tiny-x@")
    blobs = codec.encode([np.zeros((20, 30, 3), np.uint8)])
    assert codec.decode(blobs, **codec.select_options("decode", {"steps": 2}))[0].size == (30, 20)


def test_learning_rate_decays_over_the_last_steps_and_a_resumed_run_follows_it(photo_folder, tmp_path):
    from model.training import TrainConfig
    from model.training.loop import learning_rate

    cfg = TrainConfig(steps=100, lr=1e-3, lr_decay_steps=40, final_lr=1e-5)
    rates = [learning_rate(cfg, s) for s in range(101)]
    assert rates[0] == rates[60] == 1e-3 and rates[100] == pytest.approx(1e-5)
    assert rates[80] == pytest.approx((1e-3 + 1e-5) / 2)  # half way down the half cosine
    assert all(a >= b for a, b in zip(rates[60:], rates[61:]))
    assert learning_rate(TrainConfig(steps=100, lr=1e-3), 99) == 1e-3  # no decay asked: constant

    out = tmp_path / "run"
    args = ["--config", "cdc-tiny", "--data", str(photo_folder), "--out", str(out), "--batch-size", "2",
            "--crop", "64", "--workers", "0", "--checkpoint-every", "2", "--lr", "1e-3"]
    assert train_main(args + ["--steps", "2"]) == 0  # constant rate: the checkpoint's optimiser says 1e-3
    assert train_main(args + ["--steps", "4", "--lr-decay-steps", "2", "--final-lr", "1e-5"]) == 0
    saved = torch.load(out / "ckpt" / "optim.pt", weights_only=True)["opt"]["param_groups"][0]["lr"]
    assert saved == pytest.approx(learning_rate(TrainConfig(steps=4, lr=1e-3, lr_decay_steps=2, final_lr=1e-5), 3))
    assert saved < 0.6e-3  # the last of 4 steps is half way down a 2-step decay


def test_kodak_refused_as_training_data(tmp_path, capsys):
    assert train_main(["--data", "../shared/data/kodak", "--out", str(tmp_path)]) == 2
    assert "evaluation set" in capsys.readouterr().err


def test_lpips_term_enters_the_cdc_loss():
    import lpips

    from model.training.objectives import Terms, latent_diffusion

    perceptual = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    perceptual.requires_grad_(False)
    torch.manual_seed(0)
    model = build_network(named_config("cdc-tiny")).train()
    x = torch.rand(2, 3, 64, 64)

    def loss(rho):
        torch.manual_seed(1)  # the same t and noise at each call
        return latent_diffusion(model.cfg, model(x), (x,), Terms(lmbda=0.01, rho=rho, perceptual=perceptual))

    parts, plain = loss(0.9), loss(0.0)
    assert float(parts["lpips"]) > 0
    assert float(parts["loss"] - plain["loss"]) == pytest.approx(0.9 * float(parts["lpips"]), rel=1e-4)
    parts["lpips"].backward()  # and its gradient reaches the encoder
    assert model.g_a[0].weight.grad.abs().sum() > 0


def test_training_crops_stream_from_webdataset_shards(photo_folder, tmp_path):
    from itertools import islice

    from jobs.make_shards import main as make_shards
    from model.training import RandomCrops

    assert make_shards([str(photo_folder), "--output", str(tmp_path), "--shards", "2"]) == 0
    shards = sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    crops = list(islice(iter(RandomCrops(shards, crop=48, seed=0)), 12))  # more than the 5 photos: it loops
    assert len(crops) == 12 and all(c.shape == (3, 48, 48) and c.dtype == torch.float32 for c in crops)
    assert 0.0 <= min(float(c.min()) for c in crops) and max(float(c.max()) for c in crops) <= 1.0
    assert len({round(float(c.mean()), 4) for c in crops}) > 1  # different photos and positions


def test_adversarial_run_trains_a_discriminator_resumes_it_and_says_so_on_the_card(photo_folder, tmp_path):
    """--adversarial: the patch discriminator's loss enters the network's, the discriminator learns,
    is checkpointed and resumed with the run, and the exported card names the weights it was trained with."""
    from safetensors.torch import load_file

    from model.training.adversarial import PatchDiscriminator
    from model.training.objectives import Terms, restoration

    out, weights = tmp_path / "run", tmp_path / "weights"
    args = ["--config", "cdc-avif-tiny", "--data", str(photo_folder), "--out", str(out), "--batch-size", "2",
            "--crop", "32", "--pair-size", "64", "--pairs-per-image", "1", "--workers", "0", "--checkpoint-every", "2",
            "--final-step-fraction", "1", "--final-gammas", "0", "--base-dropout", "0", "--adversarial", "0.1",
            "--critic-lr", "1e-2"]
    assert train_main(args + ["--steps", "2"]) == 0
    first = load_file(str(out / "ckpt" / "critic.safetensors"))
    assert train_main(args + ["--steps", "4", "--export", "tiny-gan", "--weights-dir", str(weights)]) == 0
    resumed = load_file(str(out / "ckpt" / "critic.safetensors"))
    assert json.loads((out / "ckpt" / "state.json").read_text())["step"] == 4
    assert any(not torch.equal(first[k], resumed[k]) for k in first)  # the discriminator went on learning
    assert torch.load(out / "ckpt" / "optim.pt", weights_only=True)["critic"]["state"]  # its Adam state kept
    card = json.loads((weights / "tiny-gan.json").read_text())
    assert card["objective"] == "restoration" and card["objective_settings"]["adversarial"] == 0.1

    # the generator loss enters the network's loss with its weight
    model = build_network(named_config("cdc-avif-tiny"))
    critic = PatchDiscriminator(width=8)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    batch = (x, x.clamp(-0.5, 0.5), torch.tensor([10.0, 20.0]), torch.zeros(2, 3))
    kw = dict(final_step_fraction=1.0, final_gammas=(0.0,), base_dropout=0.0, generator=torch.Generator().manual_seed(0))
    plain = restoration(model.cfg, model(*batch, **kw), batch, Terms())
    adv = restoration(model.cfg, model(*batch, **{**kw, "generator": torch.Generator().manual_seed(0)}), batch,
                      Terms(critic=critic, adversarial=0.5))
    expected = float(plain["loss"].detach()) + 0.5 * float(adv["adv"])
    assert float(adv["loss"].detach()) == pytest.approx(expected, rel=1e-5)
    assert adv["fake"].shape == x.shape and not adv["fake"].requires_grad


def test_multiscale_discriminator_judges_coarser_scales_and_learns_from_each():
    """--critic-scales 3: one patch discriminator per scale (1, 1/2, 1/4), each on the pooled image and
    condition; the losses average the scales, and every scale's critic gets a gradient."""
    from model.training.adversarial import MultiScaleDiscriminator, discriminator_loss, generator_loss, make_critic

    critic = MultiScaleDiscriminator(scales=3, width=8)
    x, cond = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    maps = critic(x, cond)
    assert [m.shape[-1] for m in maps] == [8, 4, 2]  # 1/8 of 64, 32, 16 px
    discriminator_loss(critic, x, x.flip(-1), cond).backward()
    assert all(c.body[0].parametrizations.weight.original.grad.abs().sum() > 0 for c in critic.critics)
    single = critic.critics[0]
    assert float(generator_loss(single, x, cond)) == pytest.approx(
        float(torch.nn.functional.softplus(-single(x, cond)).mean()))
    assert type(make_critic(1)).__name__ == "PatchDiscriminator" and len(make_critic(2).critics) == 2


def test_the_training_side_says_what_each_family_trains_on():
    """``model/training/samples.py``: cdc-avif's networks train on AVIF pairs, the others' on photo crops (the
    default, also for a family no one registered); a family's own training code registers its samples there."""
    from model import families
    from model.training.avif_pairs import pair_crops
    from model.training.data import photo_crops
    from model.training.samples import _SAMPLES, register_samples, samples_for

    used = {f.name: samples_for(f.name) for f in families() if f.networks is not None}
    assert used == {"cdc-avif": pair_crops, "cdc": photo_crops, "hyperprior": photo_crops}
    mine = lambda cfg, seed: None  # noqa: E731
    register_samples("mine", mine)
    try:
        assert samples_for("mine") is mine and samples_for("unregistered") is photo_crops
    finally:
        del _SAMPLES["mine"]


def test_the_msssim_term_enters_the_restoration_loss_and_its_gradient_raises_ms_ssim():
    from model.training.objectives import Terms, restoration

    torch.manual_seed(0)
    model = build_network(named_config("cdc-avif-tiny")).train()
    x = torch.rand(2, 3, 128, 128) * 2 - 1  # 128 px: the training crops' size, the term's 7-tap window
    batch = (x, (x * 0.6).clamp(-0.5, 0.5), torch.tensor([10.0, 20.0]), torch.zeros(2, 3))

    def parts(weight):
        kw = dict(final_step_fraction=1.0, final_gammas=(0.0,), base_dropout=0.0,
                  generator=torch.Generator().manual_seed(0))
        return restoration(model.cfg, model(*batch, **kw), batch, Terms(msssim=weight))

    plain, weighed = parts(0.0), parts(0.7)
    assert "msssim" not in plain and 0 < float(weighed["msssim"]) < 1
    expected = float(plain["loss"].detach()) + 0.7 * (1 - float(weighed["msssim"]))
    assert float(weighed["loss"].detach()) == pytest.approx(expected, rel=1e-5)
    # a step down the term's gradient alone raises MS-SSIM
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = float(weighed["msssim"])
    for _ in range(3):
        opt.zero_grad()
        (parts(1.0)["loss"] - parts(0.0)["loss"]).backward()  # the term's gradient, without the MSE's
        opt.step()
    assert float(parts(1.0)["msssim"]) > before
