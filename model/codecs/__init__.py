"""The built-in codec families, one module each; importing a module registers its family.

A new family is one module here (plus its tests) and one import line below, or a plugin outside
the package (``$DIFFARC_CODEC_PLUGINS``, entry points ``diffarc.codecs``; see ``model.registry``).
"""

from . import pillow  # noqa: F401  (first: its names never collide with weights files)
from . import hyperprior  # noqa: F401
from . import cdc  # noqa: F401
from . import cdc_avif  # noqa: F401
from . import diffc  # noqa: F401  (after cdc_avif: it loads cdc-avif weights)
