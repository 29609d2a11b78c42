"""The built-in codec families, one module each, registered here in the order names are offered to them.

A new family is one module here (plus the examples the conformance suite loads, ``Family.examples``)
and one entry below, or a plugin outside the package (``$DIFFARC_CODEC_PLUGINS``, entry points
``diffarc.codecs``; see ``model.registry``).
"""

from ..registry import register_family
from . import cdc, cdc_avif, diffc, hyperprior, pillow

BUILT_IN = (
    pillow.FAMILY,  # first: its names (jpeg-qN, webp-qN, avif-qN) never collide with weights files
    hyperprior.FAMILY,
    cdc.FAMILY,
    cdc_avif.FAMILY,
    diffc.AVIF_FAMILY,  # before diffc: "diffc-avif-X" must not be read as "diffc-" + weights "avif-X"
    diffc.FAMILY,
)

for _family in BUILT_IN:
    register_family(_family)
