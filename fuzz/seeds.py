"""Writes a harness's seed corpus: the gen_corpus_*.py scripts build the inputs, this
replaces the old seed-* files in the corpus directory with them."""
import os


def write_seeds(out, seeds):
    """seeds: {name starting with "seed-": bytes}."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.startswith("seed-"):
            os.remove(os.path.join(out, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")
