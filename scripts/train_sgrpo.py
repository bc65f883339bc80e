"""Train with S-GRPO (or the plain-GRPO baseline) from a YAML recipe plus key=value overrides.

    python scripts/train_sgrpo.py --config recipes/tiny-sgrpo.yaml [--algo grpo] [max_steps=50 ...]
"""

from __future__ import annotations

import argparse

from ponder.rl.train import load_config, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="a YAML recipe of TrainConfig fields")
    ap.add_argument("--algo", choices=("sgrpo", "grpo"), default=None)
    ap.add_argument("overrides", nargs="*", help="key=value TrainConfig overrides")
    args = ap.parse_args()
    train(load_config(args.config, args.overrides, algo=args.algo))


if __name__ == "__main__":
    main()
