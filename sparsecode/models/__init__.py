"""Model families: each file holds one family's ``nn.Module``, its inference, loss and initialisation."""

from .conv_psd import CONV_ENCODERS, ConvPSD
from .drsae import DrSAE
from .lcod import LCoD
from .lista import LISTA, inhibition_mask, make_loss
from .psd import (
    ENCODERS,
    PSD,
    LinearEncoder,
    PSDCode,
    ShrinkEncoder,
    TanhEncoder,
    psd_energy,
    psd_inference,
    psd_loss,
)

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
    "PSDCode",
    "psd_inference",
    "psd_energy",
    "psd_loss",
    "ConvPSD",
    "CONV_ENCODERS",
]
