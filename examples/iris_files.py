"""Write what the README's "Serving your own model" walk-through registers: two versions
of an iris classifier saved with skops, a sample of its training rows, and one record.

Usage::

    python -m examples.iris_files /tmp/iris     # then follow the README
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    features, target = load_iris(return_X_y=True, as_frame=True)
    species = target.map(dict(enumerate(load_iris().target_names)))
    for version, trees in (("1", 10), ("2", 100)):
        model = RandomForestClassifier(trees, random_state=0).fit(features, species)
        sio.dump(model, folder / f"iris-v{version}.skops")
    features.sample(120, random_state=0).to_csv(folder / "sample.csv", index=False)
    (folder / "record.json").write_text(json.dumps(features.iloc[0].to_dict()))
    print(f"wrote iris-v1.skops, iris-v2.skops, sample.csv and record.json to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "iris-model"))
