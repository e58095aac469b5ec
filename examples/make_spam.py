"""Write examples/data/spam.csv: short messages labelled spam or ham, made from word lists.

    python examples/make_spam.py

Nothing is downloaded. Both classes draw most words from the same everyday vocabulary; spam leans
on offer words, ham on plans and people, some messages of each borrow the other's words, and 4% of
labels are flipped, so no single word decides and a perfect score is not possible.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

COMMON = (
    "the a to you your for on in is it this that and with at now today tomorrow please can will "
    "just get have be are of we our me my from up out about here there so all new time day week"
).split()
SPAM = (
    "free win winner prize cash claim offer urgent credit loan bonus click link guaranteed cheap "
    "deal discount limited exclusive reward selected congratulations unsubscribe subscription "
    "txt reply stop call mobile ringtone voucher gift lottery million investment crypto"
).split()
HAM = (
    "lunch dinner meeting mum dad home later sorry love thanks class work office bus train "
    "weekend movie coffee friend birthday party call text soon back late tonight game study "
    "project report kids doctor shopping cook football"
).split()


def message(rng: random.Random, spam: bool) -> str:
    own, other = (SPAM, HAM) if spam else (HAM, SPAM)
    words = rng.choices(COMMON, k=rng.randint(3, 9))
    words += rng.choices(own, k=rng.randint(1, 4))
    if rng.random() < 0.3:
        words += rng.choices(other, k=rng.randint(1, 2))
    rng.shuffle(words)
    text = " ".join(words)
    if spam and rng.random() < 0.4:
        text = text.upper() if rng.random() < 0.3 else text + " " + rng.choice(["!!!", "now!", "txt 80085", "www.win.biz"])
    return text.capitalize()


def main(rows: int = 2400, seed: int = 7) -> Path:
    rng = random.Random(seed)
    path = Path(__file__).resolve().parent / "data" / "spam.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["text", "label"])
        for _ in range(rows):
            spam = rng.random() < 0.3
            label = spam if rng.random() >= 0.04 else not spam
            out.writerow([message(rng, spam), "spam" if label else "ham"])
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
