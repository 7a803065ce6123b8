"""The ``groups`` parameter of the convolutional estimators: group sparsity across feature maps."""

import numpy as np
import pytest
import torch

from estimators import ConvDictionaryLearning, ConvSparseCoder
from sparsecode import MapGroupL1, solve_conv_lasso


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).randn(3, 10, 9)


@pytest.mark.parametrize("groups, labels", [(2, [0, 0, 1, 1]), ([1, 0, 1, 0], [1, 0, 1, 0]),
                                            ([[0, 3], [1, 2]], [0, 1, 1, 0])])
def test_coder_groups_are_the_map_group_lasso(images, groups, labels):
    filters = np.random.RandomState(1).randn(4, 3, 3)
    coder = ConvSparseCoder(filters, groups=groups, transform_alpha=0.8, transform_tol=1e-8, device="cpu")
    codes = coder.fit_transform(images).reshape(3, 4, 8, 7)
    penalty = MapGroupL1(torch.tensor(labels), positive=False)
    ref = solve_conv_lasso(torch.tensor(images), torch.tensor(filters), 0.8, penalty=penalty, tol=1e-8).code
    np.testing.assert_allclose(codes, ref.numpy(), atol=1e-6)
    # each group's maps are zero or not together at every position
    labels = np.array(labels)
    for g in range(2):
        on = codes[:, labels == g] != 0
        assert (on.all(1) == on.any(1)).all() and on.any() and not on.all()


def test_coder_positive_groups(images):
    coder = ConvSparseCoder(np.random.RandomState(1).randn(4, 3, 3), groups=2, positive_code=True,
                            transform_alpha=0.5, device="cpu")
    assert (coder.fit_transform(images) >= 0).all()


def test_bad_groups_raise(images):
    coder = ConvSparseCoder(np.ones((3, 2, 2)), groups=[0, 1], device="cpu")
    with pytest.raises(ValueError, match="one label per component"):
        coder.fit_transform(images)


def test_dictionary_learning_with_groups(images):
    cdl = ConvDictionaryLearning(4, kernel_size=3, groups=2, alpha=0.3, max_iter=3, random_state=0, device="cpu")
    codes = cdl.fit(images).transform(images).reshape(3, 4, 8, 7)
    assert all(b <= a + 1e-9 for a, b in zip(cdl.loss_curve_, cdl.loss_curve_[1:]))
    on = codes[:, :2] != 0
    assert (on.all(1) == on.any(1)).all()
    plain = ConvDictionaryLearning(4, kernel_size=3, alpha=0.3, max_iter=3, random_state=0, device="cpu")
    assert not np.allclose(plain.fit(images).components_, cdl.components_)
