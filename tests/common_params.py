"""Cheap constructor arguments for the common checks, and the checks each estimator is known to fail.

Each estimator adds one entry to ``CHECK_PARAMS`` (tiny models, a fixed few passes with ``tol=0`` so that no
check warns about convergence, ``device="cpu"``) and, only
with a reason, entries to ``EXPECTED_FAILED`` (the goal is an empty dict).
"""

import numpy as np

from estimators import DictionaryLearning

CHECK_PARAMS = {
    "SparseCoder": dict(dictionary=np.random.RandomState(0).randn(5, 3), device="cpu"),
    "DictionaryLearning": dict(n_components=4, max_iter=5, batch_size=16, random_state=0, device="cpu"),
    "PredictiveSparseDecomposition": dict(n_components=4, alpha=0.1, max_iter=3, batch_size=16,
                                          inference_max_iter=20, tol=0, random_state=0, device="cpu"),
    "GroupSparseAutoencoder": dict(n_components=4, group_size=2, alpha=0.1, max_iter=3, batch_size=16,
                                   inference_max_iter=20, tol=0, random_state=0, device="cpu"),
    "Whitening": dict(),
    "ContrastNormalization": dict(),
    "ConvSparseCoder": dict(filters=np.random.RandomState(0).randn(3, 1, 2), transform_max_iter=1000,
                            device="cpu"),
    "ConvSparseAutoencoder": dict(n_components=2, kernel_size=2, max_iter=2, batch_size=32,
                                  inference_max_iter=10, tol=0, random_state=0, device="cpu"),
    "ConvDictionaryLearning": dict(n_components=2, kernel_size=2, max_iter=2, coding_max_iter=50,
                                   transform_tol=1e-3, random_state=0, device="cpu"),
    "DrSAE": dict(n_components=8, n_layers=3, alpha=0.01, pretrain_iter=1, max_iter=10, batch_size=64,
                  optimizer="adam", learning_rate=0.05, tol=0, random_state=0, device="cpu"),
    "LISTA": dict(dictionary=DictionaryLearning(n_components=4, alpha=0.1, max_iter=2, batch_size=16,
                                                random_state=0, device="cpu"),
                  alpha=0.1, n_layers=2, max_iter=3, tol=0, batch_size=16, random_state=0, device="cpu"),
    "LCoD": dict(dictionary=DictionaryLearning(n_components=4, alpha=0.1, max_iter=2, batch_size=16,
                                               random_state=0, device="cpu"),
                 alpha=0.1, n_layers=3, max_iter=3, tol=0, batch_size=16, random_state=0, device="cpu"),
}

EXPECTED_FAILED: dict[str, dict[str, str]] = {}

# A SparseCoder's dictionary fixes n_features, so some checks need one that fits their data
# (the same table scikit-learn keeps for its own SparseCoder).
_rng = np.random.RandomState(0)
PER_CHECK_PARAMS = {
    "SparseCoder": {
        check: dict(dictionary=_rng.normal(size=(5, n_features)))
        for check, n_features in [
            ("check_estimators_dtypes", 5),
            ("check_dtype_object", 10),
            ("check_transformers_unfitted_stateless", 5),
            ("check_fit_idempotent", 2),
            ("check_set_output_transform", 5),
            ("check_global_output_transform_pandas", 5),
            ("check_set_output_transform_pandas", 5),
            ("check_set_output_transform_polars", 5),
            ("check_global_set_output_transform_polars", 5),
            ("check_dataframe_column_names_consistency", 8),
            ("check_estimators_overwrite_params", 2),
            ("check_estimators_fit_returns_self", 2),
            ("check_readonly_memmap_input", 2),
            ("check_n_features_in_after_fitting", 4),
            ("check_array_api_input", 10),
            ("check_fit_check_is_fitted", 2),
            ("check_n_features_in", 2),
            ("check_positive_only_tag_during_fit", 4),
            ("check_fit2d_1sample", 10),
            ("check_fit2d_1feature", 1),
        ]
    }
}
PER_CHECK_PARAMS["SparseCoder"]["check_transformer_preserve_dtypes"] = dict(
    dictionary=_rng.normal(size=(5, 3)).astype(np.float32)
)
