"""Check the built wheels against the dependency graph in docs/ARCHITECTURE.

mlxbert-heads, mlxbert-lora and mlxbert-quant must be installable without mlxbert-core: their
wheels may require only mlx and numpy. Every other package may require only the siblings the
graph allows. Usage: python tools/check_wheels.py DIST_DIR
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

ALLOWED = {
    "mlxbert-core": {"mlxbert-quant"},  # the one quantized layer (mlx-only)
    "mlxbert-heads": set(),
    "mlxbert-lora": set(),
    "mlxbert-quant": set(),
    "mlxbert-m2": {"mlxbert-core"},
    "mlxbert-glue": {
        "mlxbert-core",
        "mlxbert-heads",
        "mlxbert-lora",
        "mlxbert-quant",
        "mlxbert-m2",
    },
    "mlxbert-kaggle": {
        "mlxbert-glue",
        "mlxbert-lora",
        "mlxbert-quant",
        "mlxbert-m2",
    },
}
STANDALONE = {"mlxbert-heads", "mlxbert-lora", "mlxbert-quant"}
STANDALONE_OK = {"mlx", "numpy"}


def wheel_requirements(wheel: Path) -> tuple[str, list[str]]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    name = re.search(r"^Name: (.+)$", text, re.M).group(1).strip()
    reqs = re.findall(r"^Requires-Dist: (.+)$", text, re.M)
    return name, reqs


def main(dist: str) -> int:
    wheels = sorted(Path(dist).glob("*.whl"))
    seen = set()
    errors = []
    for wheel in wheels:
        name, reqs = wheel_requirements(wheel)
        seen.add(name)
        for req in reqs:
            dep = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower().replace("_", "-")
            is_extra = "extra ==" in req
            if dep.startswith("mlxbert-") and dep != name and dep not in ALLOWED[name]:
                errors.append(f"{name} requires {dep} ({req}), not allowed by the graph")
            if name in STANDALONE and not is_extra and dep not in STANDALONE_OK:
                errors.append(f"{name} must need only mlx and numpy, but requires {req!r}")
        print(f"{name}: {len(reqs)} requirements checked")
    missing = set(ALLOWED) - seen
    if missing:
        errors.append(f"no wheel built for: {', '.join(sorted(missing))}")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "dist"))
