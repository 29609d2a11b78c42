"""cdc-avif's default decode as one fixed function, base -> image, for an inference engine to run.

At one step from gamma 0 at t = 1 the DDIM decode is a single denoiser call on a zero residual, so
``AvifRestorationModel.restore(base, quality, 0, 1, 1.0, settings)`` is exactly this module's
forward: nothing is left that depends on noise, seeds or a step count. Multi-step, gamma > 0 and
t_start < 1 decodes stay on ``restore`` (eager torch). The exported copy upsamples by sub-pixel
convolutions (``model.nn.subpixel``: the same map), which an int8 engine quantises, and folds each
block's modulation into its LayerNorm (``model.nn.folded_norm``: the same map, fewer passes).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .folded_norm import with_folded_norms
from .subpixel import with_subpixel_upsampling

INPUTS = ("base", "quality", "settings")  # N x 3 x H x W in [-1, 1]; N AVIF qualities; N x 3 settings features
OUTPUT = "image"


class OneStepRestoration(nn.Module):
    def __init__(self, model):  # an AvifRestorationModel
        super().__init__()
        self.model = model.eval()

    def forward(self, base, quality, settings):
        ones = torch.ones_like(quality)  # t = 1, and the base is present
        r0 = self.model.denoiser(torch.zeros_like(base), base, ones, quality, ones, settings)
        return base + r0 / self.model.cfg.residual_scale


def export_onnx(model, path: str, opset: int = 17) -> None:
    """The one-step restoration of ``model`` as an ONNX graph at ``path``: batch, height and width dynamic
    (height and width multiples of ``model.pad_multiple``). A network without settings inputs has no
    ``settings`` input in the graph."""
    size = model.pad_multiple * 2
    example = (torch.zeros(1, 3, size, size), torch.full((1,), 30.0), torch.zeros(1, 3))
    image = {0: "n", 2: "h", 3: "w"}
    dims = {"base": image, "quality": {0: "n"}, "settings": {0: "n"}, OUTPUT: image}
    with torch.inference_mode(False), torch.no_grad():  # a caller's inference mode would stop the tracer
        graph = OneStepRestoration(with_folded_norms(with_subpixel_upsampling(copy.deepcopy(model))))
        torch.onnx.export(graph, example, path, dynamo=False, input_names=list(INPUTS), output_names=[OUTPUT],
                          dynamic_axes=dims, opset_version=opset)
