"""cdc-avif: an AVIF base layer restored by a conditional diffusion decoder (DIRAC-style).

Names: ``cdc-avif-mse`` (a weights file) takes the AVIF quality as an encode option;
``cdc-avif-mse-q40`` presets it. One weights file serves every quality: the network is told the
base's quality and, for networks trained on several, its encoder settings (``effort``, or
``speed``/``subsampling``/``tune`` one by one). The payload is one string: the quality byte (then,
for any settings but Pillow's default, a tag and two settings bytes) and the AVIF file with its box
headers stripped (``avif_box``: rebuilt at decode, 277 bytes saved; the format is ``base_layer``'s,
which DiffC shares), so the bits are AVIF's, less its headers, plus the container. Rate control
(``target_psnr``, ``max_bpp``, ``max_bytes``) searches the quality per image (``quality_search``). Decoding is AVIF's decode, then ``steps`` DDIM steps over the residual
from r_N = gamma * noise (gamma 0 and 1 step: the distortion end; over a prior trained at every noise
level, more steps and gamma > 0 draw texture), deterministic or, with ``eta`` 1, ancestral. An
untrained (zero-head) network returns the AVIF base exactly. Every cdc-avif bitstream is the same
base layer, so ``decoder`` restores it with other cdc-avif weights: ``cdc-avif-m-realism``, a one-step
decoder trained with a patch discriminator, is the ``realism`` preset of the MSE weights' cards.
"""

from __future__ import annotations

import functools
import re
import warnings
import zlib
from dataclasses import dataclass, replace

import numpy as np

from .avif_base import EFFORTS, SETTINGS_OPTIONS, BaseSettings, base_settings
from .base_layer import STRENGTH_STEPS, base_head, base_payload, read_base_payload, settings_text, with_strength
from .quality_search import RateChoice, choose_quality
from ..codec import Codec, Option, OptionError
from ..engine import ENGINES, EngineError, native_bf16, onnxruntime, restorer, warn_missing
from ..format import BitstreamError, Container, pack
from ..hooks import Evaluation, Networks
from ..registry import CodecInfo, CodecRequest, Family, ParsedName
from ..nn.config import DiffusionConfig, RestorationConfig
from ..nn.psnr import psnr_from_mse
from ..weights import RESTORATION, make_codec_id
from ..zoo import load_network

DEFAULT_STEPS = 1  # a restoration decoder is distortion-optimal in one step
NAME = re.compile(r"^(cdc-avif-[a-z0-9-]+?)(?:-q(\d{1,3}))?$")
CARD_FIELDS = ("name", "description", "steps_trained", "default_steps")


SIZES = {
    "cdc-avif-tiny": RestorationConfig(widths=(8, 16), blocks=(1, 1), emb=16,
                                       diffusion=DiffusionConfig(train_steps=100)),  # unit tests
    "cdc-avif-s": RestorationConfig(),  # about 66 kMAC per pixel per step
    # told the base's settings, wider and one level deeper (receptive field); for every effort
    "cdc-avif-m": RestorationConfig(widths=(48, 80, 112, 144, 160), blocks=(2, 2, 2, 2, 1), emb=128,
                                    base_dropout=0.0, settings_features=3),
    # fast decoders (issue 32): the first level at 1/4 resolution, no LayerNorm; about 30 and 19 kMAC per pixel.
    # The first level keeps 48 channels for the 48 residual values of a 4x4 block: 32 (tried) restored nothing
    "cdc-avif-lite": RestorationConfig(widths=(48, 96, 160), blocks=(2, 2, 2), base_dropout=0.0, unshuffle=4,
                                       norm="none"),
    "cdc-avif-fast": RestorationConfig(widths=(48, 80, 128), blocks=(1, 1, 1), base_dropout=0.0, unshuffle=4,
                                       norm="none"),
}

# cdc-avif's effort defaults to its weights card's default_effort (the effort its network was measured
# best at against AVIF), else fast
EFFORT_OPTION = replace(SETTINGS_OPTIONS[0],
                        help=SETTINGS_OPTIONS[0].help + " (default: the weights card's default_effort, else fast)")
OPTIONS = (
    Option("quality", int, 30, "encode", "AVIF quality of the base layer (higher: more bits)", min=0, max=100),
    EFFORT_OPTION, *SETTINGS_OPTIONS[1:],
    Option("target_psnr", float, None, "encode", "per image, the smallest base quality whose restored image "
           "reaches this PSNR in dB (the decoder runs in the encoder; replaces quality)", min=0.0),
    Option("max_bpp", float, None, "encode", "per image, the largest base quality whose bitstream fits "
           "this many bits per pixel (with target_psnr: the cap wins)", min=0.0),
    Option("max_bytes", int, None, "encode", "per image, the largest base quality whose bitstream fits "
           "this many bytes (with target_psnr: the cap wins)", min=1),
    Option("gate", bool, False, "encode", "per image, where the full network would lose to the AVIF base "
           "(text, graphics, flat areas), weigh its residual by the strength (0..15 sixteenths; 4 bytes) whose "
           "decode comes nearest: costs one network pass per image at encode (eager fp32). Images the network "
           "improves keep the same bytes"),
    Option("steps", int, None, "decode", f"DDIM steps over the residual from r_N (default: the weights card's "
           f"default_steps, else {DEFAULT_STEPS}: the one-step restoration)", min=1),
    Option("gamma", float, 0.0, "decode", "start-noise scale: 0 deterministic, 0.8 stochastic", min=0.0),
    Option("seed", int, 0, "decode", "seed of the start noise when gamma > 0"),
    Option("t_start", float, 1.0, "decode", "noise level where sampling starts (below 1: start late)",
           min=0.001, max=1.0),
    Option("eta", float, 0.0, "decode", "sampler: 0 deterministic DDIM, 1 ancestral (fresh noise at every step, "
           "seeded like gamma's)", min=0.0, max=1.0),
    Option("decoder", str, None, "decode", "restore with these cdc-avif weights instead of the bitstream's own "
           "(the base layer is the same), e.g. cdc-avif-m-realism: the one-step realism decoder"),
    Option("engine", str, "auto", "decode", "what runs the network: auto (for the one-step decode from gamma "
           "0 at t_start 1 on a CPU: torch-bf16 where the CPU has native bf16, else onnx where onnxruntime "
           "imports; else torch), onnx (ONNX Runtime, fp32: the same image within rounding), torch-bf16 (eager "
           "under bf16 autocast), onnx-int8 (int8: fastest, a little less faithful on photos, several dB "
           "worse on text and flat graphics), torch (eager fp32, the reference); multi-step, gamma > 0 and "
           "t_start < 1 decodes run on torch (docs/engines.md)",
           choices=ENGINES),
)


@dataclass(frozen=True)
class Restoring:
    """How one decode restores its bases: the network (the codec's own, or ``decoder``'s), the sampler's
    settings (the decode options) and the engine that runs the one-step decode (None: eager torch)."""

    model: object
    steps: int = DEFAULT_STEPS
    gamma: float = 0.0
    seed: int = 0
    t_start: float = 1.0
    eta: float = 0.0
    engine: object = None  # ``model.engine``'s one-step restorer


class AvifDiffusionCodec(Codec):
    family = "cdc-avif"
    options = OPTIONS

    def __init__(self, model, name: str, sha256: str, device: str = "cpu", default_steps: int = 1,
                 default_effort: str = "fast", batch_pixels: int = 4 * 768 * 512, tile: int = 1024, overlap: int = 128,
                 objective: str | None = None, resolver=None):
        import torch

        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.name, self.sha256, self.device = name, sha256, torch.device(device)
        # images above tile x tile pixels are restored in overlapping tiles: bounded memory
        self.batch_pixels, self.tile, self.overlap = batch_pixels, tile, overlap
        if default_effort not in EFFORTS:
            raise ValueError(f"{name}: default_effort {default_effort!r} is none of {', '.join(EFFORTS)}")
        # only a card's own effort becomes a preset: fast is the option's declared default
        self.presets = self._merged_presets(steps=default_steps,
                                            **({} if default_effort == "fast" else {"effort": default_effort}))
        self.objective, self._warned_untrained = objective, False  # the card's (model.weights.objective_card)
        self._resolver, self._decoders = resolver, {}  # other weights asked for by ``decoder``, loaded once
        self._engines = {}  # (weights sha256, engine) -> its one-step restorer (model.engine), made once

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.sha256)

    def _encode_rgb(self, rgbs, **encode_options):
        return [strings for strings, _ in self._encode_chosen(rgbs, **encode_options)]

    def _encode_chosen(self, rgbs, quality: int, effort: str, speed, subsampling, tune, target_psnr, max_bpp,
                       max_bytes, gate: bool):
        settings = base_settings(effort, speed, subsampling, tune)
        if target_psnr is not None or max_bpp is not None or max_bytes is not None:
            chosen = [(c.quality, c.payload) for c in
                      (self.rate_controlled(rgb, settings, target_psnr, max_bpp, max_bytes) for rgb in rgbs)]
        else:
            chosen = [(quality, base_payload(rgb, quality, settings)) for rgb in rgbs]
        coded = []
        for rgb, (q, payload) in zip(rgbs, chosen):
            sixteenths = self.strength(rgb, payload) if gate else STRENGTH_STEPS
            if sixteenths < STRENGTH_STEPS:
                payload = with_strength(payload, sixteenths)
            coded.append(((payload,), settings_text(q, settings, sixteenths / STRENGTH_STEPS)))
        return coded

    def strength(self, rgb: np.ndarray, payload: bytes) -> int:
        """The weight, in sixteenths, of the network's residual over this base: 16 (none written) where the
        full network comes at least as near ``rgb`` as the base alone, else the one of 0..15 whose decode
        comes nearest (0: the base itself), so a written strength never decodes below the base. The decode
        is emulated exactly on the restoration at the model's default steps by eager fp32 torch, as rate
        control measures: the bytes must not depend on the machine that encodes."""
        import torch

        base = read_base_payload(payload, *rgb.shape[:2], self.name)
        padded, restored, sizes = self._restored([base], Restoring(self.model, steps=self.presets["steps"]))
        target = rgb.astype(np.float64)

        @functools.cache  # each sixteenth's decode once; where the network helps, only 0 and 16 are tried
        def error(sixteenths: int) -> float:
            weighed = _weighed(padded, restored, torch.tensor([sixteenths / STRENGTH_STEPS]))
            return float(np.sum((_rgb8(weighed, sizes)[0] - target) ** 2))

        if error(STRENGTH_STEPS) <= error(0):  # the network helps: the bytes stay as without the gate
            return STRENGTH_STEPS
        return min(range(STRENGTH_STEPS), key=error)

    def rate_controlled(self, rgb: np.ndarray, settings: BaseSettings, target_psnr: float | None = None,
                        max_bpp: float | None = None, max_bytes: int | None = None) -> RateChoice:
        """The base quality that meets the targets (``quality_search``); ``target_psnr`` is measured on the
        image restored at the model's default steps, by eager fp32 torch (the same on every machine)."""
        h, w = rgb.shape[:2]
        # the container around the payload, for the longest mode name Pillow gives (exact bound)
        overhead = len(pack(Container(self.codec_id, h, w, "I;16B", (b"",))))
        caps = [c for c in (max_bytes, None if max_bpp is None else int(max_bpp * h * w / 8)) if c is not None]
        payloads, psnrs = {}, {}

        def payload(q):
            if q not in payloads:
                payloads[q] = base_payload(rgb, q, settings)
            return payloads[q]

        def psnr(q):
            if q not in psnrs:
                base = read_base_payload(payload(q), h, w, self.name)
                # eager fp32 (engine None), whatever this CPU's default decode engine: the base quality
                # rate control chooses, and so the bytes, must not depend on the machine that encodes
                restored = self._restore([base], Restoring(self.model, steps=self.presets["steps"]))[0]
                psnrs[q] = psnr_from_mse(np.mean((restored.astype(np.float64) - rgb) ** 2))
            return psnrs[q]

        quality, met = choose_quality(payload, psnr, min(caps) - overhead if caps else None, target_psnr)
        return RateChoice(quality, payload(quality), met, len(payloads), psnrs.get(quality))

    def describe(self, blob: bytes) -> dict[str, str]:
        quality, settings, _, strength = base_head(self._payload(self.parse(blob)), self.name)
        return settings_text(quality, settings, strength)

    def resolve_options(self, side, given, preset=None):
        """The codec's options, ``engine`` resolved to the one that runs (auto -> torch-bf16, onnx or torch), so
        what a decode records names it: a decode under another engine is another decode."""
        opts = super().resolve_options(side, given, preset)
        if side == "decode":
            opts["engine"] = self.effective_engine(opts["engine"], opts["steps"], opts["gamma"], opts["t_start"])
        return opts

    def effective_engine(self, engine: str, steps: int, gamma: float, t_start: float) -> str:
        one_step = steps == 1 and gamma == 0 and t_start == 1
        if engine == "auto":  # the engines are CPU engines for the one-step decode
            if self.device.type != "cpu" or not one_step:
                return "torch"
            if native_bf16():
                return "torch-bf16"
            if onnxruntime() is None:
                warn_missing()
                return "torch"
            return "onnx"
        if engine != "torch" and self.device.type != "cpu":
            raise OptionError(f"{self.name}: engine {engine!r} runs on the CPU, this codec on {self.device}: use "
                              f"engine 'auto' or 'torch'")
        if engine != "torch" and not one_step:
            raise OptionError(f"{self.name}: engine {engine!r} runs the one-step decode only (steps 1, gamma 0, "
                              f"t_start 1), not steps={steps}, gamma={gamma}, t_start={t_start}: use engine "
                              f"'auto' or 'torch'")
        if engine.startswith("onnx") and onnxruntime() is None:
            raise OptionError(f"{self.name}: engine {engine!r} needs onnxruntime, which is not importable "
                              f"(pip install onnxruntime==1.32.0 onnx==1.23.2), or use engine 'torch'")
        return engine

    def _engine(self, model, sha256: str, name: str, engine: str):
        """The one-step restorer of these weights for ``engine`` (None: eager torch fp32), made once."""
        if engine == "torch":
            return None
        if (sha256, engine) not in self._engines:
            try:
                self._engines[sha256, engine] = restorer(model, sha256, engine, name)
            except EngineError as exc:
                raise OptionError(f"{self.name}: {exc}") from None
        return self._engines[sha256, engine]

    def _decode_containers(self, containers, steps: int, gamma: float, seed: int, t_start: float, eta: float,
                           decoder: str | None = None, engine: str = "torch"):
        import torch

        from ..nn.tiling import batches_by_shape

        model, name, objective, sha256 = self._decoder(decoder)
        self._warn_if_untrained(name, objective, steps, gamma, t_start)
        runner = self._engine(model, sha256, name, self.effective_engine(engine, steps, gamma, t_start))
        how = Restoring(model, steps, gamma, seed, t_start, eta, runner)
        bases = [self._base(c) for c in containers]
        out: list = [None] * len(containers)
        with torch.inference_mode():
            for _, idxs in batches_by_shape([b.rgb.shape[:2] for b in bases], model.pad_multiple, self.batch_pixels):
                x = self._restore([bases[i] for i in idxs], how)
                for k, i in enumerate(idxs):
                    out[i] = x[k]
        return out

    def _decoder(self, name: str | None):
        """(network, name, card objective, sha256) of the weights that restore: the codec's own, or ``name``'s."""
        if name is None or name == self.name:
            return self.model, self.name, self.objective, self.sha256
        if name not in self._decoders:
            import torch

            from ..weights import WeightsResolver

            weights = (self._resolver or WeightsResolver.from_env()).find(name)
            if weights is None or weights.family != "cdc-avif":
                found = f"a {weights.family} weights file" if weights else "not found"
                raise ValueError(f"decoder {name!r}: {found}; it must be cdc-avif weights (python -m model list)")
            model = load_network(weights.path).eval().to(self.device, memory_format=torch.channels_last)
            self._decoders[name] = (model, name, weights.objective, weights.sha256)
        return self._decoders[name]

    def _warn_if_untrained(self, name: str, objective: str | None, steps: int, gamma: float, t_start: float) -> None:
        """Once per codec: a restoration network was trained for one step from gamma 0 at t = 1 only."""
        if objective == RESTORATION and (steps > 1 or gamma > 0 or t_start < 1) and not self._warned_untrained:
            self._warned_untrained = True
            warnings.warn(f"{name} is a restoration network (its card's objective): trained for the "
                          f"one-step decode from gamma 0 at t = 1 only; steps={steps}, gamma={gamma}, "
                          f"t_start={t_start} cost more and add noise, not texture (use steps 1, gamma 0, or "
                          f"weights whose card's objective is 'diffusion')", stacklevel=4)

    def _base(self, c):
        return read_base_payload(self._payload(c), c.height, c.width, self.name)

    def _payload(self, c) -> bytes:
        """The container's one string (quality byte + AVIF)."""
        if len(c.strings) != 1:
            raise BitstreamError(f"{self.name} bitstream must hold one string (quality byte + AVIF), "
                                 f"has {len(c.strings)} string(s) of {[len(s) for s in c.strings]} bytes")
        return c.strings[0]

    def _restore(self, items, how: Restoring) -> list[np.ndarray]:
        """Pad the bases of one batch, restore them as ``how`` says (the sampler, or the one-step decode on an
        engine; in tiles when large), weigh each residual by its base's strength (the gate), crop."""
        import torch

        base, x, sizes = self._restored(items, how)
        return _rgb8(_weighed(base, x, torch.tensor([b.strength for b in items])), sizes)

    def _restored(self, items, how: Restoring):
        """(the padded bases, the network's restoration of them: None where every strength is 0, the sizes)
        in [-1, 1]."""
        import torch
        import torch.nn.functional as F

        from ..nn.diffusion import alpha_bar

        multiple = how.model.pad_multiple
        sizes = [b.rgb.shape[:2] for b in items]  # one padded shape; the sizes may differ
        hp, wp = (-(-side // multiple) * multiple for side in sizes[0])
        base = torch.stack([F.pad(torch.from_numpy(np.array(b.rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1,
                                  (0, wp - w, 0, hp - h), mode="replicate")[0]
                            for b, (h, w) in zip(items, sizes)])
        quality = torch.tensor([float(b.quality) for b in items])
        settings = torch.tensor([b.settings.features() for b in items])
        if not any(b.strength for b in items):  # the encoder's gate turned the network off: nothing to run
            return base, None, sizes
        if how.engine is not None:  # the one-step decode: a zero start, no noise to draw
            return base, self._run(base, quality, None, settings, (), how), sizes
        noise_sd = how.gamma * float((1 - alpha_bar(torch.tensor(how.t_start), how.model.cfg.diffusion)).sqrt())
        r_start = torch.stack([_noise((3, hp, wp), how.seed, b.crc) for b in items]) * noise_sd
        x = self._run(base.to(self.device, memory_format=torch.channels_last), quality.to(self.device),
                      r_start.to(self.device, memory_format=torch.channels_last), settings.to(self.device),
                      [b.crc for b in items], how)
        return base, x, sizes

    def _run(self, base, quality, r_start, settings, crcs, how: Restoring):
        """The restored batch, whole or tile by tile (overlaps blended): bounded memory. The ancestral
        sampler's step noise is drawn per tile (seeded by its corner), so overlaps blend two draws."""
        from ..nn.tiling import blended

        _, _, h, w = base.shape
        if how.engine is not None:
            if h * w <= self.tile**2:
                return how.engine(base, quality, settings)
            return blended(lambda rows, cols, *_: how.engine(base[..., rows, cols], quality, settings),
                           base.shape, self.tile, self.overlap)

        def restore(rows: slice, cols: slice):
            noise = _step_noise(how.seed, crcs, rows.start, cols.start, rows.stop - rows.start,
                                cols.stop - cols.start, self.device)
            return how.model.restore(base[..., rows, cols], quality, r_start[..., rows, cols], how.steps,
                                     how.t_start, settings, how.eta, noise)

        if h * w <= self.tile**2:
            return restore(slice(0, h), slice(0, w))
        return blended(lambda rows, cols, *_: restore(rows, cols), base.shape, self.tile, self.overlap)


def _weighed(base, x, strength):
    """The decoded batch: each base plus the network's residual weighed by its strength (1: the network's
    output as it is; 0: the base)."""
    if x is None:
        return base
    if not (strength < 1).any():
        return x
    s, b = strength.to(x.device, x.dtype)[:, None, None, None], base.to(x.device, x.dtype)
    return b + s * (x - b)


def _rgb8(x, sizes) -> list[np.ndarray]:
    """uint8 H x W x 3 images of a padded batch in [-1, 1], cropped to ``sizes``."""
    x = ((x + 1) * 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [x[k, :h, :w] for k, (h, w) in enumerate(sizes)]


def _noise(shape, seed: int, crc: int):
    """gamma's noise, seeded per image by (seed, AVIF bytes): independent of batching and device."""
    import torch

    from ..nn.diffusion import image_generator

    return torch.randn(shape, generator=image_generator(seed, crc))


def _step_noise(seed: int, crcs, top: int, left: int, h: int, w: int, device):
    """The ancestral sampler's noise at step i for a batch (or one tile of it): one draw per image,
    seeded by (seed, AVIF bytes, step, tile corner), so independent of batching."""
    import torch

    def draw(i: int):
        salts = [zlib.crc32(f"{crc}:{i}:{top}:{left}".encode()) for crc in crcs]
        return torch.stack([_noise((3, h, w), seed, salt) for salt in salts]).to(device)

    return draw


def parse(name: str) -> ParsedName | None:
    m = NAME.match(name)
    if not m:
        return None
    return ParsedName(m.group(1), {"quality": int(m.group(2))} if m.group(2) else {})


def load(request: CodecRequest) -> AvifDiffusionCodec:
    w = request.weights
    return AvifDiffusionCodec(load_network(w.path), w.card.get("name", w.name), w.sha256, request.device,
                              default_steps=w.card.get("default_steps", DEFAULT_STEPS),
                              default_effort=w.card.get("default_effort", "fast"), objective=w.objective,
                              resolver=request.resolver)


def listing(weights) -> list[CodecInfo]:
    return [CodecInfo(w.name, "cdc-avif", f"{w.card.get('description', '')} (quality: --quality or "
                      f"{w.name}-qN)", w.path) for w in weights if w.family == "cdc-avif"]


def wrap(network, name: str, sha256: str, device: str = "cpu", **settings):
    return AvifDiffusionCodec(network, name, sha256, device, **settings)


def network(cfg: RestorationConfig):
    from ..nn.restoration import AvifRestorationModel

    return AvifRestorationModel(cfg)


FAMILY = Family(name="cdc-avif", load=load, parse=parse, prefixes=("cdc-avif-",), options=OPTIONS,
                card_fields=CARD_FIELDS, listing=listing,
                network_at={"encode": ("target_psnr", "max_bpp", "max_bytes", "gate"), "decode": True},
                # trained on (crop, its AVIF decode, quality) triples: model/training/samples.py
                networks=Networks(RestorationConfig, network, SIZES, wrap, default_steps=DEFAULT_STEPS),
                evaluation=Evaluation(base_layer="avif"),
                description="AVIF base layer + conditional diffusion decoder")
