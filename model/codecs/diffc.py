"""DiffC (Theis et al. 2022) on the cdc-avif network: progressive bitstreams by reverse-channel coding.

Two families, one module (they differ only in the prior's condition):

- ``diffc-avif-<weights>`` (``-qN`` presets the AVIF quality): the AVIF base layer is coded first,
  as in cdc-avif; DiffC then communicates the scaled residual r = (x - base) * residual_scale
  against the prior p(r_{t-1} | r_t, base).
- ``diffc-<weights>``: no base; the network's base-dropout mode (has_base 0, base zeros, scale 1)
  is an unconditional prior over the image r = x.

Both load only weights whose card family is ``cdc-avif`` and whose card says they are a prior
(``model.weights.objective_card``): objective ``diffusion`` (trained over every noise level), and for
``diffc-<weights>`` base dropout too; a restoration network (trained at t = 1 only) predicts nothing
useful at the intermediate levels DiffC codes, and is refused (bitstreams it wrote before cards said
so still decode: ``load_codec_for_id`` loads it). A name without weights (``diffc-avif``,
``diffc-avif-q40``, ``diffc``) means the shipped prior, ``DEFAULT_PRIOR``; its codec id names the
weights (``diffc-avif-cdc-avif-m-prior@...``), so archives keep decoding when the default moves on.

The encoder draws r_T at t = 1 from the shared
generator, then communicates r at each level of a coarse schedule (model/diffc/schedule.py), one
container string per step (model/diffc/stream.py), through RCC (model/rcc). Any prefix of the steps
decodes: the decoder rebuilds r at the last step it has, bit for bit, and denoises it (probability
flow or ancestral). The rate is set at encode time (``stop_step``, ``max_bpp``) or later by
truncation (``python -m model truncate``, or the decode options ``truncate_step`` / ``truncate_bpp``).

Cost, bounded by the options: encoding runs per step one prior evaluation and one RCC search of
3 * H * W * 2^cap_bits normals; decoding per step one prior evaluation and one RCC decode
(3 * H * W normals), then ``steps`` prior evaluations. The prior runs one image at a time on one
thread, so that both sides get the same bits (model/diffc/process.py).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from itertools import islice

import numpy as np

from pipeline.imagefiles.pixels import as_loaded

from .cdc_avif import OPTIONS as AVIF_OPTIONS
from .base_layer import base_payload, read_base_payload
from ..codec import Codec, Option, declared
from ..diffc import DENOISERS
from ..diffc.schedule import ScheduleConfig
from ..format import BitstreamError, Container, pack
from ..hooks import Evaluation
from ..registry import CodecInfo, CodecRequest, Family, ParsedName
from ..weights import DIFFUSION, Weights, WeightsError, make_codec_id
from ..zoo import load_network

DEFAULT_PRIOR = "cdc-avif-m-prior"  # the shipped prior (cdc-avif-m over every noise level, base dropout 0.1)
DEFAULT_DENOISE_STEPS = 1  # the posterior mean E[r_0 | r_t]: best PSNR at every prefix measured (results/diffc)
# diffc-avif: log-SNR -1..2 of the residual, measured on cdc-avif-m-prior snapshots (results/diffc/README.md):
# the step above 2 cost 3 bpp for 0.85 dB (BD-rate vs AVIF +110 % with it, +73 % without), starting at -1
# rather than 0 saved 5-10 points more; 4 searches at cap_bits 10 keep the encode of a 256² crop near 15 s
# on one core. diffc: from the image's coarse structure (its domain is the image), -2..2 in 5 searches (the
# step from 2 to 3 cost 0.65 bpp for 1.8 dB, and a sixth search 20 % more time).
SCHEDULES = {True: ScheduleConfig(levels=4, first_log_snr=-1.0, last_log_snr=2.0),
             False: ScheduleConfig(levels=5, first_log_snr=-2.0, last_log_snr=2.0)}


def encode_options(schedule: ScheduleConfig) -> tuple[Option, ...]:
    return (
        Option("stop_step", int, None, "encode", "code the first K steps of the schedule (default: all of them); "
               "truncation lowers it later", min=0),
        Option("max_bpp", float, None, "encode", "stop before the bitstream exceeds this many bits per pixel",
               min=0.0),
        Option("final_log_snr", float, schedule.last_log_snr, "encode", "the noise level where the schedule ends, "
               "log(alpha_bar / (1 - alpha_bar)) (higher: more bits)", min=schedule.first_log_snr + 0.5, max=12.0),
        Option("levels", int, schedule.levels, "encode", "coded steps of the schedule (each is one RCC search)",
               min=1, max=64),
        Option("cap_bits", int, 10, "encode", "RCC: 2^cap_bits candidates per chunk (encode work; lower: more bias)",
               min=6, max=16),
        Option("bitstream_version", int, BITSTREAM_VERSION, "encode", "DiffC bitstream version: 2, step payloads "
               "entropy-coded by constriction (constant time per symbol); 1, by the big-integer rANS of earlier "
               "diffarc (older installs decode it; slower to decode)", min=1, max=BITSTREAM_VERSION),
    )

DECODE_OPTIONS = (
    Option("denoiser", str, "ode", "decode", "ode: probability flow (DDIM); ancestral: sample the reverse process",
           choices=DENOISERS),
    Option("steps", int, DEFAULT_DENOISE_STEPS, "decode", "denoising steps after the last coded step", min=1),
    Option("seed", int, 0, "decode", "seed of the ancestral sampler's noise"),
    Option("truncate_step", int, None, "decode", "decode only the first K coded steps (a lower-rate preview)",
           min=0),
    Option("truncate_bpp", float, None, "decode", "decode only the coded steps within this many bits per pixel",
           min=0.0),
)
# The base quality: 40, not cdc-avif's 30 (600-step prior snapshot, 4 held-out crops, BD-rate vs AVIF fast
# on PSNR: q20 +85 %, q30 +58 %, q40 +41 %; DiffC's steps cost more bits per dB than AVIF's, so a stream
# does best starting from a better base; results/diffc/README.md).
QUALITY = replace(declared(AVIF_OPTIONS)["quality"], default=40)
FAMILIES = {True: "diffc-avif", False: "diffc"}
BITSTREAM_VERSION = 2  # what new encodes write (model/diffc/stream.py); every version up to it decodes


def rcc_config(cap_bits: int, bitstream_version: int = BITSTREAM_VERSION):
    """Chunks of about cap_bits - 4 bits of KL, halved above cap_bits - 2 (model/rcc benchmark:
    about 2 bits per chunk above KL, and a small pull of the sample toward p); 8 check bits per step;
    the steps' payload format is the bitstream version."""
    from ..rcc import RCCConfig

    return RCCConfig(chunk_bits=cap_bits - 4, max_chunk_bits=cap_bits - 2, cap_bits=cap_bits, check_bits=8,
                     payload_format=bitstream_version)


@dataclass(frozen=True)
class EncodeTrace:
    """What the encoder did, for tests and results: the states the decoder must rebuild exactly."""

    strings: tuple[bytes, ...]
    states: list  # r after each coded step (torch tensors, 1 x 3 x H x W)
    kl_bits: list[float]  # KL of each coded step
    chunks: list[int]  # RCC chunks of each coded step


class DiffCCodec(Codec):
    def __init__(self, model, name: str, sha256: str, conditional: bool, device: str = "cpu"):
        import torch

        self.model = model.eval().to(device)
        self.name, self.sha256, self.device = name, sha256, torch.device(device)
        self.conditional, self.schedule = conditional, SCHEDULES[conditional]
        self.family = FAMILIES[conditional]
        self.options = family_options(conditional)

    @property
    def codec_id(self) -> str:
        return make_codec_id(self.name, self.sha256)

    @property
    def diffusion(self):
        return self.model.cfg.diffusion

    # ----- encoding ------------------------------------------------------------------------
    def _encode_rgb(self, rgbs, **options):
        return [self._encode_one(rgb, **options).strings for rgb in rgbs]

    def encode_traced(self, image, **options) -> tuple[bytes, EncodeTrace]:
        """``encode`` of one image, with the encoder's trace."""
        opts = self.resolve_options("encode", options)
        im = as_loaded(image)
        trace = self._encode_one(im.rgb, **opts)
        return pack(Container(self.codec_id, im.rgb.shape[0], im.rgb.shape[1], im.mode, trace.strings)), trace

    def _encode_one(self, rgb, stop_step, max_bpp, final_log_snr, levels, cap_bits, bitstream_version,
                    quality=None) -> EncodeTrace:
        from ..diffc.process import encode_steps
        from ..diffc.schedule import training_steps
        from ..diffc.stream import Header

        h, w = rgb.shape[:2]
        rcc = rcc_config(cap_bits, bitstream_version)
        schedule = training_steps(replace(self.schedule, levels=levels, last_log_snr=final_log_snr), self.diffusion)
        fixed = (Header(1 + self.conditional, rcc, schedule).pack(),)
        if self.conditional:
            fixed += (base_payload(rgb, quality),)
        prior, base, scale = self._prior(fixed, h, w)
        r0 = (_to_unit(rgb) - base) * scale
        size = len(pack(Container(self.codec_id, h, w, "RGB", fixed)))  # "RGB": the longest mode
        budget = np.inf if max_bpp is None else max_bpp * h * w / 8
        trace = EncodeTrace(fixed, [], [], [])
        if size + 4 > budget:  # not even an empty step fits: spare the search
            stop_step = 0
        for step in islice(encode_steps(prior, r0, schedule, self.diffusion, rcc), stop_step):
            size += 4 + len(step.payload)  # the container frames each string with a u32 length
            if size > budget:
                break
            trace = EncodeTrace(trace.strings + (step.payload,), trace.states + [step.state],
                                trace.kl_bits + [step.kl_bits], trace.chunks + [step.chunks])
        return trace

    # ----- decoding ------------------------------------------------------------------------
    def _decode_containers(self, containers, denoiser, steps, seed, truncate_step, truncate_bpp):
        from ..diffc.process import denoise
        from ..nn.diffusion import image_generator  # torch: imported only when decoding

        out = []
        for c in containers:
            c = self._truncated(c, truncate_step, truncate_bpp)
            header, states, prior, base, scale = self._states(c)
            crc = zlib.crc32(b"".join(c.strings))
            generator = image_generator(seed, crc)
            t = header.schedule[len(states) - 1] / self.diffusion.train_steps
            r0 = denoise(prior, states[-1], t, self.diffusion, denoiser, steps, generator)
            x = base + r0 / scale
            out.append(((x[0] + 1) * 127.5).clamp(0, 255).round().byte().permute(1, 2, 0).numpy())
        return out

    def decode_states(self, blob: bytes, truncate_step: int | None = None) -> list:
        """r_T and the state after each coded step, as the decoder rebuilds them."""
        return self._states(self._truncated(self.parse(blob), truncate_step, None))[1]

    def _truncated(self, c: Container, step, bpp) -> Container:
        from ..diffc.stream import truncated

        return c if step is None and bpp is None else truncated(c, step, bpp)

    def _states(self, c: Container):
        from ..diffc.process import decode_steps
        from ..diffc.stream import split
        from ..rcc import RCCError

        header, fixed, payloads = split(c, self.name)
        n = self.diffusion.train_steps
        if header.schedule[0] != n:
            raise BitstreamError(f"{self.name}: the bitstream's schedule starts at {header.schedule[0]} training "
                                 f"steps, this model has {n}: it was written with another model")
        if header.fixed != 1 + self.conditional:
            raise BitstreamError(f"{self.name}: the bitstream {'lacks' if self.conditional else 'has'} a base "
                                 f"layer: it was written by the other DiffC family")
        prior, base, scale = self._prior(fixed, c.height, c.width)
        try:
            states = decode_steps(prior, payloads, header.schedule, tuple(base.shape), self.diffusion, header.rcc)
        except RCCError as exc:
            raise BitstreamError(f"{self.name}: a coded step does not decode ({exc})") from None
        return header, states, prior, base, scale

    # ----- the prior -----------------------------------------------------------------------
    def _prior(self, fixed: tuple[bytes, ...], h: int, w: int):
        """(prior(r_t, t) -> r0 prediction, the base in [-1, 1], the residual scale) for one image."""
        import torch
        import torch.nn.functional as F

        from ..threads import fixed_threads

        if self.conditional:
            decoded = read_base_payload(fixed[1], h, w, self.name)  # as the decoder sees it
            if decoded.strength != 1:  # cdc-avif's gate; DiffC's coded steps are the residual itself
                raise BitstreamError(f"{self.name}: the base layer carries a strength (cdc-avif's gate), which "
                                     f"a DiffC stream never writes")
            quality, base_rgb = decoded.quality, decoded.rgb
            base, scale = _to_unit(base_rgb), self.model.cfg.residual_scale
        else:
            quality, base, scale = 0, torch.zeros(1, 3, h, w), 1.0
        m = self.model.pad_multiple
        pad = (0, -w % m, 0, -h % m)
        padded_base = F.pad(base, pad, mode="replicate").to(self.device)
        cond = torch.tensor([float(quality)], device=self.device), torch.tensor([float(self.conditional)],
                                                                                 device=self.device)

        def prior(r_t, t: float):
            with fixed_threads(1), torch.no_grad():
                r = F.pad(r_t, pad, mode="replicate").to(self.device)
                out = self.model.denoiser(r, padded_base, torch.tensor([t], device=self.device), *cond)
            return out[..., :h, :w].float().cpu()

        return prior, base, scale


def _to_unit(rgb):
    """uint8 H x W x 3 -> float32 1 x 3 x H x W in [-1, 1]."""
    import torch

    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1


def family_options(conditional: bool) -> tuple[Option, ...]:
    return ((QUALITY,) if conditional else ()) + encode_options(SCHEDULES[conditional]) + DECODE_OPTIONS


# ----- registration ---------------------------------------------------------------------------
def is_prior(weights: Weights, conditional: bool) -> bool:
    """Whether a DiffC family may code against these weights: a diffusion objective, and for the
    unconditional family base dropout too (its card says so; model.weights.objective_card)."""
    if weights.family != "cdc-avif":
        return False
    return weights.objective == DIFFUSION if conditional else weights.unconditional_prior


def not_a_prior(weights: Weights, conditional: bool) -> WeightsError:
    settings = weights.card.get("objective_settings", {})
    what = ("its card states no training objective" if weights.objective is None else
            f"its card's objective is '{weights.objective}'" + (f" ({settings})" if settings else ""))
    need = "a diffusion prior (objective 'diffusion')" + ("" if conditional else " with base dropout > 0")
    why = ("The unconditional family codes the image without a base, which a network trained without base "
           "dropout never saw"
           if weights.objective == DIFFUSION else "DiffC codes the levels between t = 1 and t = 0, which a "
           "restoration network (trained at t = 1 only) never saw")
    return WeightsError(
        f"{FAMILIES[conditional]}: weights '{weights.name}' ({weights.path}) are not {need}: {what}. "
        f"{why}. Use the shipped prior: '{FAMILIES[conditional]}' (= "
        f"{FAMILIES[conditional]}-{DEFAULT_PRIOR}), or weights exported from a run over every noise level "
        f"(jobs/train.py --final-step-fraction below 1{'' if conditional else ', --base-dropout above 0'})")


def _family(conditional: bool) -> Family:
    prefix = FAMILIES[conditional] + "-"
    quality = r"(?:-q(?P<quality>\d{1,3}))?" if conditional else ""
    default = re.compile(rf"^{FAMILIES[conditional]}{quality}$")  # no weights named: the shipped prior
    named = re.compile(rf"^{prefix}(?P<weights>.+?){quality}$")

    def parse(name: str) -> ParsedName | None:
        m = default.match(name) or named.match(name)
        if m is None:
            return None
        found = m.groupdict()
        return ParsedName(found.get("weights", DEFAULT_PRIOR),
                          {"quality": int(found["quality"])} if found.get("quality") else {})

    def load(request: CodecRequest) -> DiffCCodec:
        w = request.weights
        if not is_prior(w, conditional) and request.short_hash is None:  # archived bitstreams still decode
            raise not_a_prior(w, conditional)
        return DiffCCodec(load_network(w.path), prefix + w.name, w.sha256, conditional, request.device)

    def listing(weights) -> list[CodecInfo]:
        """Pattern rows (no path: the weights files are cdc-avif's, listed under that family)."""
        priors = [w.name for w in weights if is_prior(w, conditional)]
        what = "over the AVIF base, progressive" if conditional else "unconditional prior, progressive"
        suffix = "[-qN]" if conditional else ""
        shipped = "" if DEFAULT_PRIOR in priors else " (not installed)"
        return [CodecInfo(f"{FAMILIES[conditional]}{suffix}", FAMILIES[conditional],
                          f"DiffC {what}, with the shipped prior {DEFAULT_PRIOR}{shipped}"),
                CodecInfo(f"{prefix}WEIGHTS{suffix}", FAMILIES[conditional],
                          f"DiffC {what}; WEIGHTS: a cdc-avif prior ({', '.join(priors) or 'none installed'}; "
                          f"restoration networks are not priors)")]

    return Family(name=FAMILIES[conditional], load=load, parse=parse, prefixes=(FAMILIES[conditional],),
                  options=family_options(conditional), loads_cards_of=("cdc-avif",), listing=listing,
                  evaluation=Evaluation(examples=(f"{prefix}WEIGHTS-q30" if conditional else f"{prefix}WEIGHTS",)),
                  description="DiffC: progressive reverse-channel coding over a cdc-avif diffusion prior")


AVIF_FAMILY, FAMILY = _family(True), _family(False)  # diffc-avif-X: its longer prefix is asked first (registry)
