"""Image files, apart from any codec: ``pixels`` (an input file or array turned into the 8-bit RGB every
codec works on, and back; the list of image extensions; the held-out slice), ``metadata`` (what a file
carries besides its pixels, read once and written back into restored files), ``segments`` (the JPEG
segments and PNG chunks Pillow neither reads nor writes), ``lossless`` (JPEG XL: a JPEG recompressed
byte for byte, pixels kept exactly). The archive's keeping and restore rules use them; the codecs,
training and evaluation load images through ``pixels``. A bottom layer: it imports nothing of
``model`` or the rest of ``pipeline``."""
