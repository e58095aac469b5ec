"""A user's own Keras model, for the contract test (imported from this folder, outside the package)."""

import keras


def build(inputs, outputs, width: int = 8):  # type: ignore[no-untyped-def]
    return keras.Sequential([keras.layers.Dense(width, activation="relu"), keras.layers.Dense(outputs.n_outputs)])
