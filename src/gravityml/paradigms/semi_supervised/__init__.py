"""Semi-supervised learning: rows whose target is empty are unlabelled.

Label spreading / propagation, self-training around any supervised classifier of the catalog, and
pseudo-labelling (torch ``mlp`` or scikit-learn); every run also reports the same model trained on
the labelled rows alone (``semi_supervised/gain``).
"""

from gravityml.paradigms.semi_supervised._pseudo import PseudoLabelResult, pseudo_label
from gravityml.paradigms.semi_supervised._train import train

__all__ = ["PseudoLabelResult", "pseudo_label", "train"]
