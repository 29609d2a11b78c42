"""DiffC, model-independent: the coarse schedule and its posteriors (``schedule``), the encoder's and
decoder's passes over any x0-predicting prior (``process``), and the progressive bitstream layout
with its truncation (``stream``). The codec families are model/codecs/diffc.py; RCC is model/rcc."""

DENOISERS = ("ode", "ancestral")  # probability flow (DDIM) or ancestral sampling, after the last coded step
