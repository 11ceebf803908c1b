"""Build an imbalanced multilabel text set from real tweets, for checking that rare labels are
learnt and predicted.

The texts are the tweets of the Kaggle "NLP with Disaster Tweets" files (train and test,
10,876 rows). Each tweet gets every topic whose words it contains (24 topics, most of them on
fewer than 5% of the tweets; many tweets have none), written as one ``|``-separated column:

    python tools/make_multilabel.py --data-dir ../shared/data/kaggle/nlp-getting-started \\
        --output topics.csv

The labels are a deterministic function of the words, so a model can learn them exactly;
what is hard is that each one is rare.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

TOPICS = {
    "fire": ("fire", "fires", "wildfire", "wildfires", "blaze", "burning", "flames"),
    "flood": ("flood", "floods", "flooding", "flooded"),
    "storm": ("storm", "storms", "hurricane", "tornado", "cyclone", "typhoon"),
    "earthquake": ("earthquake", "quake", "seismic"),
    "death": ("dead", "death", "died", "dies", "killed", "kills", "fatal"),
    "crash": ("crash", "crashed", "collision", "derailment", "derailed", "wreck"),
    "explosion": ("bomb", "bombing", "bombed", "explosion", "exploded", "blast"),
    "police": ("police", "cop", "cops", "officer", "officers", "arrest", "arrested"),
    "weather": ("rain", "weather", "heat", "sunny", "snow", "wind"),
    "music": ("music", "song", "songs", "album", "concert"),
    "love": ("love", "lovely", "loved"),
    "news": ("news", "breaking", "report", "reports"),
    "family": ("mom", "dad", "family", "kids", "baby", "mother", "father"),
    "food": ("food", "eat", "eating", "pizza", "coffee", "dinner", "lunch"),
    "sports": ("game", "football", "team", "soccer", "baseball", "match"),
    "politics": ("obama", "president", "government", "war", "election", "senate"),
    "health": ("hospital", "injury", "injured", "injuries", "ambulance", "doctor"),
    "video": ("video", "youtube", "watch", "watching"),
    "phone": ("phone", "iphone", "app", "android"),
    "traffic": ("car", "cars", "truck", "bus", "traffic", "train", "road"),
    "water": ("water", "sea", "ocean", "river", "lake"),
    "emergency": ("emergency", "evacuation", "evacuate", "rescue", "rescued"),
    "military": ("army", "military", "soldier", "soldiers", "troops"),
    "school": ("school", "student", "students", "class", "college"),
}
WORD = re.compile(r"[a-z]+")


def topics_of(text: str) -> list[str]:
    words = set(WORD.findall(text.lower()))
    return [name for name, keys in TOPICS.items() if words.intersection(keys)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for name in ("train.csv", "test.csv"):
        with open(args.data_dir / name, newline="", encoding="utf-8") as fh:
            rows += [{"id": r["id"], "text": r["text"]} for r in csv.DictReader(fh)]
    counts = dict.fromkeys(TOPICS, 0)
    for row in rows:
        labels = topics_of(row["text"])
        row["topics"] = "|".join(labels)
        for label in labels:
            counts[label] += 1
    with open(args.output, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "topics"])
        writer.writeheader()
        writer.writerows(rows)
    shares = ", ".join(f"{k} {100 * v / len(rows):.1f}%" for k, v in counts.items())
    rare = sum(v / len(rows) < 0.05 for v in counts.values())
    print(f"{len(rows)} tweets, {len(TOPICS)} topics ({rare} under 5%): {shares}")


if __name__ == "__main__":
    main()
