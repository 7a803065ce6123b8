"""scikit-learn estimators on the sparsecode torch engine."""

from sparsecode import __version__ as __version__  # one version for both packages

from .conv import ConvSparseCoder
from .conv_autoencoder import ConvSparseAutoencoder
from .conv_dictionary import ConvDictionaryLearning
from .dict_learning import DictionaryLearning
from .drsae import DrSAE
from .group_sparse import GroupSparseAutoencoder
from .lista import LISTA, LCoD
from .preprocessing import ContrastNormalization, Whitening
from .psd import PredictiveSparseDecomposition
from .sparse_coder import SparseCoder

__all__ = [
    "SparseCoder",
    "DictionaryLearning",
    "PredictiveSparseDecomposition",
    "GroupSparseAutoencoder",
    "Whitening",
    "ContrastNormalization",
    "ConvSparseCoder",
    "ConvSparseAutoencoder",
    "ConvDictionaryLearning",
    "DrSAE",
    "LISTA",
    "LCoD",
]
