"""The text network's max_tokens: sized from the training documents by default, and a warning with
the share of documents cut when the spec sets it shorter than some of them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gravityml.data import load_dataset
from gravityml.errors import GravityMLWarning
from gravityml.paradigms import TrainContext, train
from gravityml.spec import load_spec


def _texts(path: Path) -> Path:
    # 40 documents of 3 tokens and 10 of 30 tokens: a limit of 10 cuts about 20% of the training ones.
    short = [{"text": "good cheap offer", "label": "spam"}, {"text": "see you soon", "label": "ham"}] * 20
    long = [{"text": " ".join(["word"] * 29 + ["spam" if i % 2 else "ham"]), "label": "spam" if i % 2 else "ham"} for i in range(10)]
    pd.DataFrame(short + long).to_csv(path, index=False)
    return path


def _fit(tmp_path: Path, params: dict) -> object:
    spec = load_spec({"name": "t", "task": "supervised", "data": {"source": str(_texts(tmp_path / "t.csv")), "target": "label", "text": "text"},
                      "model": {"type": "text", "params": {"dim": 8, "hidden": 8, **params}}, "train": {"epochs": 1},
                      "compute": {"accelerator": "cpu", "threads": 1}})
    return train(TrainContext(spec=spec, workdir=tmp_path, dataset=load_dataset(spec)))


def test_a_max_tokens_shorter_than_some_documents_warns_with_the_share_cut(tmp_path: Path) -> None:
    with pytest.warns(GravityMLWarning, match=r"max_tokens: \d+\.\d% of the training documents are longer than 10 tokens and are cut \(longest: 30\)"):
        result = _fit(tmp_path, {"max_tokens": 10})
    assert result.tags["text.cut_documents"].endswith("longer than max_tokens=10 and are cut")


def test_by_default_max_tokens_is_sized_from_the_longest_training_document(tmp_path: Path, recwarn) -> None:
    result = _fit(tmp_path, {})
    assert result.params["network"]["params"]["max_tokens"] == 30
    assert result.tags["text.max_tokens"] == "30 (sized from the longest training document)"
    assert "text.cut_documents" not in result.tags
    assert not [w for w in recwarn if "max_tokens" in str(w.message)]
