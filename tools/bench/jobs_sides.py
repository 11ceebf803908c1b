"""One side of a ``jobs.py`` benchmark, run in a process of its own; prints one JSON line.

    embed-mlx | embed-torch       --texts FILE.json --model DIR --batch-size N --max-length N
                                  --out FILE.npy
    predict-torch                 --model DIR --input CSV --output CSV --text-col COL
    finetune-torch                --train CSV --valid CSV --model DIR --epochs N --lr X ...

Imports of the other framework never happen here: each side is what a user of that tool
would run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path


def embed_mlx(args) -> dict:
    import numpy as np

    import mlxbert_core as mb

    texts = json.loads(Path(args.texts).read_text())
    model = mb.from_pretrained(args.model, dtype=args.dtype)
    tok = mb.load_tokenizer(args.model)
    mb.embed(model, tok, texts[:64], batch_size=args.batch_size, max_length=args.max_length)
    start = time.perf_counter()
    vectors = mb.embed(model, tok, texts, batch_size=args.batch_size, max_length=args.max_length)
    seconds = time.perf_counter() - start
    np.save(args.out, vectors)
    return {"seconds": seconds, "runtime": mb.runtime_info()}


def _torch_device(name: str) -> str:
    return "cuda" if name == "gpu" else "cpu"


def _tf32(args) -> None:
    import torch

    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _torch_dtype(args):
    import torch

    return getattr(torch, args.dtype)


def _pipeline_dtype(args) -> dict:
    """The keyword ``pipeline`` takes the weights' dtype by (renamed in transformers 5)."""
    from transformers import pipeline

    name = "dtype" if "dtype" in inspect.signature(pipeline).parameters else "torch_dtype"
    return {name: _torch_dtype(args)}


def embed_torch(args) -> dict:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    _tf32(args)
    texts = json.loads(Path(args.texts).read_text())
    model = SentenceTransformer(args.model, device=_torch_device(args.device))
    model = model.to(_torch_dtype(args))
    model.max_seq_length = args.max_length
    kw = dict(batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
    model.encode(texts[:64], **kw)
    start = time.perf_counter()
    vectors = model.encode(texts, convert_to_tensor=True, **kw)
    seconds = time.perf_counter() - start
    np.save(args.out, vectors.float().cpu().numpy())
    return {"seconds": seconds, "torch": torch.__version__, "threads": torch.get_num_threads()}


def predict_torch(args) -> dict:
    import csv

    import torch
    from transformers import pipeline

    _tf32(args)
    with open(args.input, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    clf = pipeline(
        "text-classification",
        model=args.model,
        device=_torch_device(args.device),
        truncation=True,
        max_length=args.max_length,
        **_pipeline_dtype(args),
    )
    start = time.perf_counter()
    preds = clf([row[args.text_col] for row in rows], batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    with open(args.output, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        for row, pred in zip(rows, preds):
            writer.writerow([row.get("id", ""), pred["label"]])
    return {"seconds_in_process": seconds, "torch": torch.__version__}


def finetune_torch(args) -> dict:
    import csv

    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    _tf32(args)
    set_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.model)

    def rows(path):  # a list of tokenized examples is a dataset the Trainer takes as it is
        with open(path, newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
        enc = tok([r["sentence"] for r in table], truncation=True, max_length=args.max_length)
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": int(r["label"])}
            for ids, mask, r in zip(enc["input_ids"], enc["attention_mask"], table)
        ]

    data = {"train": rows(args.train), "dev": rows(args.valid)}
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    # transformers 5 names the warm-up ratio and the length-grouped sampler differently
    known = inspect.signature(TrainingArguments.__init__).parameters
    versioned = {"warmup_ratio": 0.06} if "warmup_ratio" in known else {"warmup_steps": 0.06}
    if "train_sampling_strategy" in known:
        versioned["train_sampling_strategy"] = "group_by_length"
    else:
        versioned["group_by_length"] = True
    training = TrainingArguments(
        output_dir=args.output,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=args.lr,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        **versioned,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=args.device == "cpu",
        bf16=args.bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=data["train"],
        data_collator=DataCollatorWithPadding(tok),
    )
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    pred = trainer.predict(data["dev"])
    accuracy = float(np.mean(np.argmax(pred.predictions, axis=-1) == pred.label_ids))
    trainer.save_model(args.output)
    tok.save_pretrained(args.output)
    return {"train_s": train_s, "accuracy": accuracy, "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side")
    parser.add_argument("--texts")
    parser.add_argument("--model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--train")
    parser.add_argument("--valid")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0, help="finetune-torch: the Trainer's seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tf32", action="store_true", help="GPU fp32: let PyTorch use TF32")
    parser.add_argument("--bf16", action="store_true", help="Trainer: bf16 mixed precision")
    parser.add_argument("--dtype", default="float32", help="embed, predict: the weights' dtype")
    args = parser.parse_args()
    sides = {
        "embed-mlx": embed_mlx,
        "embed-torch": embed_torch,
        "predict-torch": predict_torch,
        "finetune-torch": finetune_torch,
    }
    print(json.dumps(sides[args.side](args), default=str))


if __name__ == "__main__":
    main()
