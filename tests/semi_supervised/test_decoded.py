"""The saved form of scikit-learn's semi-supervised classifiers: answers in the user's labels."""

from __future__ import annotations

import numpy as np

from gravityml.models._unsupervised import DecodedClassifier


class _Graph:
    """Stands in for label spreading with a part of the graph that no label reaches (0/0 = NaN)."""

    classes_ = np.array([0, 2])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.array([[0.9, 0.1], [np.nan, np.nan]])


def test_columns_cover_every_class_and_unreachable_rows_are_uniform() -> None:
    model = DecodedClassifier(_Graph(), ["cat", "dog", "owl"])
    proba = model.predict_proba(np.zeros((2, 1)))
    # class code 1 ('dog') was never seen: its column is there, with probability 0
    np.testing.assert_allclose(proba[0], [0.9, 0.0, 0.1])
    np.testing.assert_allclose(proba[1], [1 / 3, 1 / 3, 1 / 3])
    assert list(model.predict(np.zeros((2, 1)))) == ["cat", "cat"]
