"""Write the `models:` list of bentofile.yaml and bentofile.gpu.yaml: what a bento packs, by exact
version. A build then packs the same weights on every machine, whatever else the builder's model
store holds (user-made styles, older versions, a bucket's contents), and fails when one is missing.

By default the list is the shipped catalogue (`models/manifest.json`: its backbones and styles,
whose versions are content hashes) and the VGG19 loss network `clipmorph vgg fetch` stores, so a
user's painting can be trained in the container. `make build` imports and fetches them first.

    python deploy/bento_models.py                      # the shipped catalogue, both bentofiles
    python deploy/bento_models.py --check              # exit 1 if a bentofile's list is stale
    python deploy/bento_models.py --catalogue DIR      # another catalogue folder instead
    python deploy/bento_models.py --from-store         # what the local store holds now (newest
                                                       # style versions, backbones, loss network,
                                                       # training photos), e.g. a private build
    python deploy/bento_models.py --bentofile FILE     # write only that file
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

BENTOFILES = [REPO / "bentofile.yaml", REPO / "bentofile.gpu.yaml"]
BEGIN = "# models: written by deploy/bento_models.py (the shipped catalogue and the loss network)"
END = "# end of models"
BLOCK = re.compile(rf"^{re.escape(BEGIN)}\n.*?^{re.escape(END)}\n", re.M | re.S)


def catalogue_models(catalogue: Path = REPO / "models") -> list[str]:
    from clipmorph.styles import assets, index

    return [*index.catalogue_tags(catalogue / "manifest.json"), assets.RELEASED_LOSS_NETWORK]


def store_models() -> list[str]:
    from clipmorph.styles import assets, index

    return index.served_tags() + assets.stored_tags()


def with_models(bentofile_text: str, tags: list[str]) -> str:
    """The bentofile with its generated block holding ``tags`` (appended when it has none)."""
    block = "\n".join([BEGIN, "models:", *(f'  - "{tag}"' for tag in tags), END]) + "\n"
    if BLOCK.search(bentofile_text):
        return BLOCK.sub(lambda _: block, bentofile_text)
    return bentofile_text.rstrip("\n") + "\n" + block


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a bentofile's list is not current")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--catalogue", type=Path, default=REPO / "models", help="catalogue folder (manifest.json)")
    source.add_argument("--from-store", action="store_true", help="what the local model store holds now")
    parser.add_argument("--bentofile", type=Path, action="append", help="the file(s) to write (default: both)")
    args = parser.parse_args(argv)
    tags = store_models() if args.from_store else catalogue_models(args.catalogue)
    stale = []
    for bentofile in args.bentofile or BENTOFILES:
        text = bentofile.read_text()
        wanted = with_models(text, tags)
        if args.check:
            if wanted != text:
                stale.append(bentofile.name)
            continue
        bentofile.write_text(wanted)
        print(f"wrote {len(tags)} models into {bentofile}")
    if stale:
        print(f"stale models list in {', '.join(stale)}: run python deploy/bento_models.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
