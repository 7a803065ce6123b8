"""ConvDictionaryLearning: learning, partial_fit, transform, dtypes."""

import numpy as np
import pytest

import estimators.conv_dictionary
from estimators import ConvDictionaryLearning, ConvSparseCoder


@pytest.fixture(scope="module")
def images():
    """Sparse sums of three 4x4 kernels plus a little noise."""
    rng = np.random.RandomState(0)
    kernels = rng.randn(3, 4, 4)
    kernels /= np.linalg.norm(kernels.reshape(3, -1), axis=1)[:, None, None]
    X = np.zeros((12, 16, 16))
    for i in range(12):
        for _ in range(6):
            k, r, c = rng.randint(3), rng.randint(13), rng.randint(13)
            X[i, r:r + 4, c:c + 4] += rng.randn() * kernels[k]
    return X + 0.01 * rng.randn(*X.shape)


def test_fit_learns_unit_norm_kernels_and_lowers_the_energy(images):
    cdl = ConvDictionaryLearning(3, kernel_size=4, alpha=0.05, max_iter=6, random_state=0, device="cpu")
    cdl.fit(images)
    assert cdl.components_.shape == (3, 1, 4, 4) and cdl.kernel_size_ == (4, 4)
    np.testing.assert_allclose(np.linalg.norm(cdl.components_.reshape(3, -1), axis=1), 1, atol=1e-3)
    assert all(b <= a + 1e-9 for a, b in zip(cdl.loss_curve_, cdl.loss_curve_[1:]))
    assert cdl.n_iter_ == 6 and cdl.n_steps_ == 6
    # the fitted model's transform is ConvSparseCoder's with the learned kernels
    coder = ConvSparseCoder(cdl.components_, transform_alpha=0.05, device="cpu")
    np.testing.assert_allclose(cdl.transform(images), coder.transform(images), atol=1e-10)
    init = ConvDictionaryLearning(3, kernel_size=4, alpha=0.05, max_iter=0, random_state=0, device="cpu")
    assert cdl.score(images) > init.fit(images).score(images)


def test_minibatches_and_partial_fit(images):
    params = dict(kernel_size=4, alpha=0.05, random_state=0, device="cpu")
    batch = ConvDictionaryLearning(3, max_iter=3, batch_size=4, **params).fit(images)
    assert batch.n_steps_ == 9
    online = ConvDictionaryLearning(3, **params)
    for _ in range(3):
        for s in range(0, 12, 4):
            online.partial_fit(images[s:s + 4])
    assert online.n_steps_ == 9
    start = ConvDictionaryLearning(3, max_iter=0, **params).fit(images)
    assert online.score(images) > start.score(images)
    with pytest.raises(ValueError, match="features"):
        online.partial_fit(images[:, :8, :8])


def test_float32_and_positive_codes(images):
    cdl = ConvDictionaryLearning(2, kernel_size=4, max_iter=2, positive_code=True, random_state=0, device="cpu")
    codes = cdl.fit(images.astype(np.float32)).transform(images.astype(np.float32))
    assert codes.dtype == np.float32 and cdl.components_.dtype == np.float32
    assert (codes >= 0).all()
    rebuilt = cdl.inverse_transform(codes)
    assert rebuilt.shape == (12, 256)


def test_the_defaults_learn_alike_on_any_scaling_of_the_images(images):
    """alpha=None is a fraction of the patches' root-mean-square norm, and the solvers see the images over
    their largest magnitude (ADMM's penalty rule assumes a unit range), so that scaling the images scales
    the penalty, the codes and the energies, and nothing else. A fixed alpha of 0.1 coded pixel values in
    [0, 255] densely, and images of unit norm with few atoms; unscaled, ADMM converged more slowly on
    [0, 255] than on [0, 1]."""
    fits = [ConvDictionaryLearning(3, kernel_size=4, max_iter=2, random_state=0, device="cpu").fit(c * images)
            for c in (1.0, 255.0)]
    assert fits[0].alpha_ > 0 and np.isclose(fits[1].alpha_, 255.0 * fits[0].alpha_)
    np.testing.assert_allclose(fits[1].components_, fits[0].components_, atol=1e-6)
    np.testing.assert_allclose(fits[1].loss_curve_, 255.0**2 * np.array(fits[0].loss_curve_), rtol=1e-6)
    codes = [fit.transform(c * images) for fit, c in zip(fits, (1.0, 255.0))]
    np.testing.assert_allclose(codes[1], 255.0 * codes[0], atol=1e-6 * 255 * np.abs(codes[0]).max())
    given = ConvDictionaryLearning(3, kernel_size=4, alpha=0.05, max_iter=0, device="cpu").fit(images)
    assert given.alpha_ == 0.05


def test_verbose_prints_a_line_per_pass(images, capsys):
    ConvDictionaryLearning(3, kernel_size=4, max_iter=2, random_state=0, device="cpu").fit(images)
    assert capsys.readouterr().out == ""
    ConvDictionaryLearning(3, kernel_size=4, max_iter=2, verbose=1, random_state=0, device="cpu").fit(images)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[ConvDictionaryLearning] pass 1/2",
                                                      "[ConvDictionaryLearning] pass 2/2"]


@pytest.mark.parametrize("batch_size", [None, 5])
def test_ctrl_c_keeps_the_last_completed_step(images, monkeypatch, capsys, batch_size):
    params = dict(n_components=3, kernel_size=4, batch_size=batch_size, random_state=0, device="cpu")
    steps_per_pass = 1 if batch_size is None else -(-len(images) // batch_size)
    two_passes = ConvDictionaryLearning(max_iter=2, **params).fit(images)
    step, calls = estimators.conv_dictionary.conv_dictionary_step, []

    def ctrl_c_in_the_third_pass(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2 * steps_per_pass:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    monkeypatch.setattr(estimators.conv_dictionary, "conv_dictionary_step", ctrl_c_in_the_third_pass)
    cdl = ConvDictionaryLearning(max_iter=5, verbose=1, **params).fit(images)
    assert cdl.interrupted_ and not two_passes.interrupted_
    assert (cdl.n_iter_, cdl.n_steps_) == (2, 2 * steps_per_pass)
    np.testing.assert_array_equal(cdl.components_, two_passes.components_)
    assert cdl.loss_curve_ == two_passes.loss_curve_
    assert f"interrupted after {2 * steps_per_pass} steps" in capsys.readouterr().out
    assert np.isfinite(cdl.transform(images)).all()
