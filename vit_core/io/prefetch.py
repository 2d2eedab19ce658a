"""Fetch ImageNet weights into the local Hugging Face cache before a lecture (while online).

    python -m vit_core.io.prefetch timm:vit_base_patch16_224.augreg2_in21k_ft_in1k [more specs...]
    python -m vit_core.io.prefetch --all      # every timm model in the app's catalog
    python -m vit_core.io.prefetch --list     # the catalog and where each model stands

Afterwards the app loads these models with no network at all.
"""
from __future__ import annotations

import argparse
import sys

from vit_core.io.loading import CATALOG, ModelUnavailable, load_model, model_status


def _bar(fraction: float, message: str) -> None:
    sys.stderr.write(f"\r{message} [{fraction:4.0%}]   ")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_core.io.prefetch", description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="*", help="timm:<name> specs (see --list)")
    ap.add_argument("--all", action="store_true", help="every timm model in the catalog")
    ap.add_argument("--list", action="store_true", help="show the catalog and each model's status")
    args = ap.parse_args(argv)
    specs = list(args.specs) + ([s for s, _ in CATALOG if s.startswith("timm:")] if args.all else [])
    if args.list or not specs:
        for spec, label in CATALOG:
            st = model_status(spec)
            size = f"{st.size_mb:.0f} MB" if st.size_mb else ""
            print(f"{st.state:12} {size:>8}  {spec}  ({label})")
        return 0 if args.list else 2
    failed = 0
    for spec in specs:
        try:
            loaded = load_model(spec, progress=_bar)
            sys.stderr.write("\n")
            print(f"ok  {spec}: {loaded.description}")
        except (ModelUnavailable, ValueError) as err:
            sys.stderr.write("\n")
            print(f"ERR {spec}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
