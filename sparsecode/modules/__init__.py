"""Learned encoders (``torch.nn.Module``), one architecture per file, each initialised from a dictionary."""

from .conv import CONV_ENCODERS, ConvPSD
from .drsae import DrSAE
from .lcod import LCoD
from .lista import LISTA, inhibition_mask, make_loss
from .psd import ENCODERS, PSD, LinearEncoder, ShrinkEncoder, TanhEncoder

__all__ = [
    "DrSAE",
    "LISTA",
    "LCoD",
    "inhibition_mask",
    "make_loss",
    "PSD",
    "ENCODERS",
    "TanhEncoder",
    "ShrinkEncoder",
    "LinearEncoder",
    "ConvPSD",
    "CONV_ENCODERS",
]
