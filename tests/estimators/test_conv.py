"""ConvSparseCoder and ConvSparseAutoencoder: layouts, features, training, pickling, pipelines."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, load_sample_image
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from estimators import ConvSparseAutoencoder, ConvSparseCoder
from sparsecode import (
    L1,
    border_weights,
    conv_lasso_energy,
    conv_lipschitz_constant,
    conv_reconstruct,
    solve_conv_lasso,
)
from tests.estimators.conftest import fit_quietly


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).randn(6, 2, 7, 8)


@pytest.fixture(scope="module")
def filters():
    return np.random.RandomState(1).randn(3, 2, 3, 2)


def _channel_last_rows(X):
    return np.moveaxis(X, 1, -1).reshape(len(X), -1)


def test_coder_matches_the_engine_in_every_layout(images, filters):
    coder = ConvSparseCoder(
        filters, transform_alpha=0.4, transform_tol=1e-6, transform_max_iter=5000, device="cpu"
    )
    codes = coder.transform(images)
    expected = solve_conv_lasso(
        torch.from_numpy(images), torch.from_numpy(filters), 0.4, tol=1e-6, max_iter=5000
    ).code
    np.testing.assert_allclose(codes, expected.flatten(1).numpy(), atol=1e-10)
    fista = clone(coder).set_params(transform_algorithm="fista").transform(images)  # the same optimum
    np.testing.assert_allclose(fista, codes, atol=1e-4)
    assert codes.dtype == np.float64 and codes.shape == (6, 3 * 5 * 7)
    rows = clone(coder).set_params(image_shape=(7, 8, 2))
    np.testing.assert_allclose(
        rows.fit(_channel_last_rows(images)).transform(_channel_last_rows(images)), codes
    )
    one = ConvSparseCoder(filters[:, 0], transform_alpha=0.4, device="cpu")
    np.testing.assert_allclose(
        one.transform(images[:, 0]),
        ConvSparseCoder(
            filters[:, :1], image_shape=(7, 8), transform_alpha=0.4, device="cpu"
        ).transform(images[:, 0].reshape(6, -1)),
    )
    f32 = clone(coder).set_params(transform_tol=1e-4).transform(images.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, codes, atol=2e-2)


def test_coder_border_weighting_and_positive_codes(images, filters):
    X, D = torch.from_numpy(images), torch.from_numpy(filters)
    w = border_weights((7, 8), (3, 2), like=X)
    coder = ConvSparseCoder(
        filters,
        transform_alpha=0.3,
        border_weighting=True,
        positive_code=True,
        transform_tol=1e-6,
        device="cpu",
    )
    expected = solve_conv_lasso(X, D, 0.3, weights=w, penalty=L1(positive=True), tol=1e-6).code
    np.testing.assert_allclose(coder.transform(images), expected.flatten(1).numpy(), atol=1e-10)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_pooling_of_absolute_maps_keeps_partial_windows(images, filters, pooling):
    flat = ConvSparseCoder(filters, transform_alpha=0.2, device="cpu").fit(images)
    maps = np.abs(flat.transform(images).reshape(6, 3, 5, 7))
    pooled = ConvSparseCoder(
        filters, transform_alpha=0.2, pooling=pooling, pool_size=(2, 3), device="cpu"
    )
    out = pooled.fit(images).transform(images).reshape(6, 3, 3, 3)
    reduce = np.max if pooling == "max" else np.mean
    for i in range(3):
        for j in range(3):
            window = maps[:, :, 2 * i : 2 * i + 2, 3 * j : 3 * j + 3]
            np.testing.assert_allclose(
                out[:, :, i, j], reduce(window, axis=(2, 3)), rtol=1e-6, atol=1e-12
            )
    names = pooled.get_feature_names_out()
    assert len(names) == 27 and names[0] == "convsparsecoder0"


def test_coder_inverse_transform_rebuilds_channel_last_rows(images, filters):
    coder = ConvSparseCoder(filters, transform_alpha=0.1, device="cpu").fit(images)
    codes = coder.transform(images)
    rebuilt = coder.inverse_transform(codes)
    maps = torch.from_numpy(codes).view(6, 3, 5, 7)
    expected = conv_reconstruct(maps, torch.from_numpy(filters)).numpy()
    assert rebuilt.shape == (6, 7 * 8 * 2) and rebuilt.dtype == np.float64
    np.testing.assert_allclose(rebuilt, _channel_last_rows(expected), atol=1e-12)
    # the optimal codes have a lower energy than zero codes, so they explain part of the images
    assert np.linalg.norm(rebuilt - _channel_last_rows(images)) < np.linalg.norm(images)
    assert coder.inverse_transform(codes.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="expects 105"):
        coder.inverse_transform(codes[:, :-1])
    pooled = clone(coder).set_params(pooling="max").fit(images)
    with pytest.raises(ValueError, match="pooling='max'"):
        pooled.inverse_transform(pooled.transform(images))


def test_coder_errors(images, filters):
    with pytest.raises(ValueError, match="channel"):
        ConvSparseCoder(filters[:, :1], device="cpu").transform(images)
    with pytest.raises(ValueError, match="does not match"):
        ConvSparseCoder(filters, image_shape=(8, 7, 2), device="cpu").fit(images)
    with pytest.raises(ValueError, match="n_features=5"):
        ConvSparseCoder(filters[:, :1], image_shape=(5, 1), device="cpu").fit(np.ones((2, 5)))
    with pytest.raises(ValueError, match="holds 12 values"):
        ConvSparseCoder(filters, image_shape=(2, 3, 2), device="cpu").fit(np.ones((2, 10)))
    with pytest.raises(ValueError, match="filters must be"):
        ConvSparseCoder(np.ones((3, 3)), device="cpu").fit(np.ones((2, 10)))
    with pytest.warns(ConvergenceWarning, match="transform_max_iter"):
        ConvSparseCoder(filters, transform_max_iter=2, device="cpu").transform(images)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16.0, y[:240]


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    ae = ConvSparseAutoencoder(n_components=4, kernel_size=3, alpha=0.2, image_shape=(8, 8), max_iter=6,
                               batch_size=32, learning_rate=1e-2, inference_max_iter=30, random_state=0,
                               device="cpu")
    return fit_quietly(ae, X)


def test_autoencoder_starts_from_unit_norm_image_patches(digits):
    X, _ = digits
    ae = ConvSparseAutoencoder(
        n_components=5, kernel_size=3, image_shape=(8, 8), max_iter=0, random_state=0, device="cpu"
    ).fit(X)
    assert np.allclose(ae.mean_, [X.mean()])  # the model subtracts the mean pixel
    patches = np.lib.stride_tricks.sliding_window_view((X - ae.mean_).reshape(-1, 8, 8), (3, 3), axis=(1, 2))
    patches = patches.reshape(-1, 9)
    patches = patches[np.linalg.norm(patches, axis=1) > 0]
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    kernels = ae.components_.reshape(5, 9)
    np.testing.assert_allclose(np.linalg.norm(kernels, axis=1), 1, rtol=1e-6)
    # each kernel is one patch of the centred images, up to the 1e-3 jitter of init_dictionary
    assert (kernels @ patches.T).max(1).min() > 0.999


def test_autoencoder_trains_unit_norm_kernels_and_predicts_the_codes(fitted, digits):
    X, _ = digits
    assert fitted.components_.shape == (4, 1, 3, 3) and fitted.encoder_kernels_.shape == (
        4,
        1,
        3,
        3,
    )
    np.testing.assert_allclose(
        np.linalg.norm(fitted.components_.reshape(4, -1), axis=1), 1, rtol=1e-5
    )
    curve = fitted.loss_curve_
    assert len(curve) == fitted.n_iter_ == 6 and curve[-1] < 0.9 * curve[0]
    assert fitted.image_shape_ == (8, 8, 1) and fitted.kernel_size_ == (3, 3)
    encoded = fitted.transform(X)
    assert encoded.shape == (240, 4 * 6 * 6) and encoded.dtype == np.float64
    inferred = copy.deepcopy(fitted).set_params(transform_algorithm="inference")
    codes = inferred.transform(X)
    D = torch.from_numpy(fitted.components_).float()
    Xt = torch.from_numpy(X - fitted.mean_).float().view(-1, 1, 8, 8)  # the model's images: less the mean
    w = border_weights((8, 8), (3, 3), like=Xt)

    def energy(Z):
        return conv_lasso_energy(Xt, torch.from_numpy(Z).float().view(-1, 4, 6, 6), D, 0.2, w)

    assert bool((energy(codes) <= energy(encoded) + 1e-4).all())
    # the encoder predicts the inferred codes better than zero does
    assert np.linalg.norm(encoded - codes) < 0.75 * np.linalg.norm(codes)
    assert fitted.score(X) < 0


def test_sgd_steps_the_encoder_at_the_rate_over_the_lipschitz_constant(digits):
    X = digits[0][:32]
    params = dict(
        n_components=3, kernel_size=3, image_shape=(8, 8), optimizer="sgd", learning_rate=0.5,
        batch_size=32, inference_max_iter=20, random_state=0, device="cpu",
    )
    start = ConvSparseAutoencoder(max_iter=0, **params).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stepped = ConvSparseAutoencoder(max_iter=1, **params).fit(X)  # one full-batch step
    module = start._module
    Xt = torch.from_numpy(X - start.mean_).view(-1, 1, 8, 8) / start.input_scale_  # the model's units
    module.training_loss(Xt).backward()
    L = conv_lipschitz_constant(
        module.decoder_weight.detach(), (8, 8), weights=border_weights((8, 8), (3, 3), like=Xt)
    )
    with torch.no_grad():
        D = module.decoder_weight - 0.5 * module.decoder_weight.grad
        D /= D.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        W = module.encoder_weight - 0.5 / L * module.encoder_weight.grad
        b = module.threshold - 0.5 / L * module.threshold.grad
        beta = module.beta - 0.5 * module.beta.grad
    np.testing.assert_allclose(stepped.components_, D.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stepped.encoder_kernels_, W.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stepped._module.threshold.detach(), b.clamp(min=0), atol=1e-9)
    np.testing.assert_allclose(stepped._module.beta.detach(), beta, rtol=1e-9)


def test_autoencoder_inverse_transform_decodes_the_maps(fitted, digits):
    X, _ = digits
    inferred = copy.deepcopy(fitted).set_params(transform_algorithm="inference")
    codes = inferred.transform(X[:30])
    rebuilt = fitted.inverse_transform(codes)
    D = torch.from_numpy(fitted.components_).double()
    expected = conv_reconstruct(torch.from_numpy(codes).view(30, 4, 6, 6), D) + fitted.mean_[0]
    assert rebuilt.shape == X[:30].shape and rebuilt.dtype == np.float64
    np.testing.assert_allclose(rebuilt, expected.flatten(1).numpy(), atol=1e-6)
    # the inferred maps explain the digits far better than their mean does (0.55 of its error at alpha=0.2)
    assert np.linalg.norm(rebuilt - X[:30]) < 0.6 * np.linalg.norm(X[:30] - fitted.mean_)
    with pytest.raises(ValueError, match="pooling='avg'"):
        copy.deepcopy(fitted).set_params(pooling="avg").inverse_transform(codes)


def test_autoencoder_layouts_dtypes_and_clipped_kernels(digits):
    X, _ = digits
    params = dict(n_components=2, kernel_size=3, max_iter=1, batch_size=64, inference_max_iter=5, random_state=0,
                  device="cpu")
    rows = fit_quietly(ConvSparseAutoencoder(image_shape=(8, 8), **params), X[:64])
    cube = fit_quietly(ConvSparseAutoencoder(**params), X[:64].reshape(-1, 8, 8))
    f32 = fit_quietly(ConvSparseAutoencoder(image_shape=(8, 8), **params), X[:64].astype(np.float32))
    signal = fit_quietly(ConvSparseAutoencoder(pooling="avg", pool_size=4, **params), X[:64])
    np.testing.assert_allclose(rows.components_, cube.components_)
    np.testing.assert_allclose(rows.transform(X[:10]), cube.transform(X[:10].reshape(-1, 8, 8)))
    assert f32.transform(X[:5].astype(np.float32)).dtype == np.float32
    assert f32.components_.dtype == np.float32
    # image_shape=None: a 1 x 64 signal, so the 3x3 kernels are clipped to 1x3
    assert signal.image_shape_ == (1, 64, 1) and signal.kernel_size_ == (1, 3)
    assert signal.transform(X[:5]).shape == (5, 2 * 16)
    with pytest.raises(ValueError, match="fitted on"):
        cube.transform(X[:3].reshape(-1, 4, 16))
    with pytest.raises(ValueError, match="holds 64 values"):
        rows.transform(X[:3, :36].reshape(-1, 6, 6))


def test_autoencoder_tanh_encoder_color_images_and_warm_start():
    X = np.random.RandomState(0).rand(12, 3, 9, 9)
    ae = ConvSparseAutoencoder(
        n_components=3,
        kernel_size=4,
        encoder="tanh",
        max_iter=2,
        batch_size=6,
        inference_max_iter=10,
        warm_start=True,
        random_state=0,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae.fit(X)
        first = ae.components_.copy()
        ae.fit(X)
    assert ae.n_iter_ == 4 and ae.components_.shape == (3, 3, 4, 4)
    assert not np.allclose(first, ae.components_)
    assert ae.transform(X).shape == (12, 3 * 6 * 6)
    with pytest.raises(ValueError, match="warm_start"):
        ae.fit(X.reshape(12, 3, 3, 27))


def test_pickle_and_clone(fitted, digits):
    X, _ = digits
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X[:20]), fitted.transform(X[:20]))
    fresh = clone(fitted)
    assert not hasattr(fresh, "components_") and fresh.get_params() == fitted.get_params()


def test_pipeline_in_grid_search(digits):
    X, y = digits
    pipe = Pipeline(
        [
            (
                "conv",
                ConvSparseAutoencoder(
                    n_components=4,
                    kernel_size=3,
                    image_shape=(8, 8),
                    pooling="max",
                    max_iter=2,
                    batch_size=64,
                    inference_max_iter=10,
                    random_state=0,
                    device="cpu",
                ),
            ),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    )
    grid = GridSearchCV(pipe, {"conv__pool_size": [2, 3]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert grid.best_score_ > 0.3  # chance is 0.1
    assert grid.predict(X[:5]).shape == (5,)


@pytest.mark.parametrize("border_weighting", [False, True])
@pytest.mark.parametrize("positive", [False, True])
def test_all_zero_maps_warn_and_name_the_largest_useful_alpha(positive, border_weighting):
    """As SparseCoder: alpha above every correlation of an image with a filter gives zero maps; say so, and
    name the alpha below which they are not (just below it, one coefficient is non-zero)."""
    rng = np.random.RandomState(0)
    X = rng.rand(4, 12, 12)
    X /= np.linalg.norm(X.reshape(4, -1), axis=1)[:, None, None]
    F = rng.randn(5, 4, 4)
    F /= np.linalg.norm(F.reshape(5, -1), axis=1)[:, None, None]
    options = dict(positive_code=positive, border_weighting=border_weighting, device="cpu")
    with pytest.warns(UserWarning, match=r"max \|conv_correlate\(X, D\)\| = ") as record:
        assert not ConvSparseCoder(F, **options).fit_transform(X).any()
    alpha_max = float(str(record[0].message).split("= ")[1].split(",")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coder = ConvSparseCoder(F, transform_alpha=0.999 * alpha_max, transform_tol=1e-8, **options)
        assert coder.fit_transform(X).any()


@pytest.mark.parametrize("scale", [1 / 255, 1.0])
def test_autoencoder_codes_photographs_far_from_zero_mean(scale):
    """The model subtracts the training images' mean (mean_, added back by inverse_transform): on pixel
    values, trained on the raw images, the encoder's maps rebuilt crops of a photograph worse than their
    mean does (2.3 times its error here)."""
    img = load_sample_image("china.jpg").mean(axis=2)
    X = scale * np.stack([img[i:i + 16, j:j + 16] for i in range(0, 400, 40) for j in range(0, 600, 60)])[:60]
    ae = fit_quietly(ConvSparseAutoencoder(batch_size=16, max_iter=15, random_state=0, device="cpu"), X)
    flat = X.reshape(len(X), -1)
    error = np.sum((ae.inverse_transform(ae.transform(X)) - flat) ** 2) / np.sum((flat - flat.mean()) ** 2)
    assert error < 0.4 and np.allclose(ae.mean_, [X.mean()])
