"""
==========================================================
LISTA codes as features for a classifier (digits)
==========================================================

A ``Pipeline`` that learns a dictionary of 8x8 digit images, trains a LISTA encoder to approximate
its sparse codes, and feeds the codes to a logistic regression; ``GridSearchCV`` picks the number of
LISTA steps. The codes come from a fixed number of matrix products, so ``transform`` stays fast.
Set ``SPARSECODE_QUICK=1`` (or pass ``--quick``) for a faster smoke run.
"""


import matplotlib.pyplot as plt
from _setup import example_setup, save_figure
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from estimators import LISTA, DictionaryLearning

QUICK, _, OUT = example_setup(__doc__)

X, y = load_digits(return_X_y=True)
X = X / 16.0
if QUICK:
    X, y = X[:600], y[:600]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

# %%
# The pipeline: dictionary learning inside the LISTA estimator, then a linear classifier.
dictionary = DictionaryLearning(
    n_components=64, alpha=0.1, max_iter=5 if QUICK else 20, random_state=0, device="cpu"
)
pipe = Pipeline(
    [
        (
            "lista",
            LISTA(
                dictionary=dictionary,
                alpha=0.1,
                max_iter=5 if QUICK else 30,
                tol=0,  # a fixed number of passes
                batch_size=64,
                random_state=0,
                device="cpu",
            ),
        ),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(max_iter=1000)),
    ]
)
search = GridSearchCV(pipe, {"lista__n_layers": [0, 2] if QUICK else [0, 1, 3]}, cv=3, n_jobs=2)
search.fit(X_train, y_train)
print(f"best {search.best_params_}, test accuracy {search.score(X_test, y_test):.3f}")

# %%
# The atoms the codes are measured against.
atoms = search.best_estimator_.named_steps["lista"].components_
fig, axes = plt.subplots(4, 8, figsize=(8, 4))
for atom, ax in zip(atoms, axes.ravel()):
    ax.imshow(atom.reshape(8, 8), cmap="gray")
    ax.axis("off")
fig.suptitle(
    f"dictionary behind the LISTA codes (test accuracy {search.score(X_test, y_test):.3f})"
)
save_figure(fig, OUT / "plot_lista_pipeline.png", dpi=100)
