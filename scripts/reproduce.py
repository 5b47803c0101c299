#!/usr/bin/env python3
"""Reproduce the paper's Table 2: train, convert and bench each model, then regenerate docs/RESULTS.md.

    python scripts/reproduce.py [FER2013_CSV [CLIP]] [--models M ...] [--epochs N] ...

The steps and every option are in convert/reproduce.py (``--help``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the packages are in the repository
from convert.reproduce import main, parse_opt  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(parse_opt()))
