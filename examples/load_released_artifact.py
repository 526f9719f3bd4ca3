"""Load a Mycelium artifact with plain `datasets`, the way any user of a released repo would.

    python examples/load_released_artifact.py [PATH_OR_HUB_ID]

PATH_OR_HUB_ID is an artifact folder of a run (default: runs/default/op_pairs, written by `mycelium run --out
runs/default`) or, once released with `mycelium release`, its Hub id such as `ORG/NAME-op_pairs` (needs network).
No Mycelium code is needed to read it: the folder is Parquet files plus a README.md card whose YAML `configs` say
where the splits are.
"""

import sys
from pathlib import Path

from datasets import load_dataset
from huggingface_hub import DatasetCard


def main(path: str = "runs/default/op_pairs") -> None:
    data = load_dataset(path)
    print(data)
    card = DatasetCard.load(Path(path) / "README.md" if Path(path).is_dir() else path)  # a folder or a Hub id
    meta = card.data.to_dict()
    print("version:", meta.get("version"), "license:", meta.get("license"))
    print("lineage:", {k: v for k, v in (meta.get("mycelium") or {}).items() if k in ("artifact", "fingerprint")})
    split = next(iter(data.values()))
    if "ops" in split.column_names:
        row = next(r for r in split if r["validated"])
        print("\nPROBLEM:", row["problem"])
        for k, op in enumerate(row["ops"]):
            sources = ", ".join(f"{o['value']} ({o['source']})" for o in op["operands"])
            print(f"  op{k}: {op['op']}({sources}) = {op['result']}   region: {op['region']['text']!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
