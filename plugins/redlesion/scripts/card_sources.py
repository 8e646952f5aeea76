"""Record in model cards the data sets their weights learned from, with their terms.

    python plugins/redlesion/scripts/card_sources.py WEIGHTS ... --init-card BACKBONE.json

Writes ``training.data_sources`` (as drgrade's cards have it): IDRiD part A (the
training images, CC BY 4.0) and every source of the file the encoder started from
(the fundus backbone's card: APTOS 2019, non-commercial research only, and IDRiD
part B), marked ``"via": "encoder initialisation"``: weights that started from a
model inherit the terms of its data. A source whose terms say "non-commercial" makes
the card ``research_only`` with ``use_terms`` (``eyescan predict`` prints them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eyescan.api import weights

IDRID_A = "IDRiD part A (segmentation), Porwal et al., Data 3(3):25, 2018: CC BY 4.0"


def sources(card: dict, init_card: dict) -> list[dict]:
    """This model's own training images, then those of the initialisation file."""
    count = card["training"]["data"]["count"]
    own = [{"source": "idrid-part-a", "images": count, "terms": IDRID_A}]
    inherited = [
        {**entry, "via": f"encoder initialisation ({init_card.get('file', 'backbone')})"}
        for entry in init_card["training"].get("data_sources") or []
    ]
    return own + inherited


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--init-card", type=Path, required=True)
    args = parser.parse_args(argv)
    init_card = json.loads(args.init_card.read_text())
    for path in args.weights:
        card = weights.read_card(path)
        found = sources(card, init_card)
        training = {**card["training"], "data_sources": found}
        restricted = [e for e in found if "non-commercial" in e["terms"]]
        terms = {}
        if restricted:
            names = ", ".join(e["source"] for e in restricted)
            terms = {
                "research_only": True,
                "use_terms": f"not for commercial use (the terms of {names}, "
                "whose images trained the encoder's initialisation)",
            }
        weights.update_card(path, training=training, **terms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
