"""The built-in codec families, one module each, registered here (the order is the listings' only; which
family a name goes to is the registry's rule, ``model.registry.offered_to``).

A new family is one module here (its registration, its hooks: ``model.hooks``) and one entry below,
or a plugin outside the package (``$DIFFARC_CODEC_PLUGINS``, entry points ``diffarc.codecs``; see
``model.plugins``).
"""

from ..registry import register_family
from . import cdc, cdc_avif, diffc, hyperprior, pillow

BUILT_IN = (
    pillow.FAMILY,
    hyperprior.FAMILY,
    cdc.FAMILY,
    cdc_avif.FAMILY,
    diffc.AVIF_FAMILY,
    diffc.FAMILY,
)

for _family in BUILT_IN:
    register_family(_family)
