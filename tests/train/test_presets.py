"""Presets are named for what they are, the old names still work, and the main job trains the shipped
default model's recipe unless told otherwise (train/config.py PRESETS)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from train.config import PRESET_ALIASES, PRESETS, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_old_names_resolve_to_the_new_ones():
    for old, new in PRESET_ALIASES.items():
        cfg = resolve(old, data="d.csv", out="o")
        assert cfg.preset == new and cfg == resolve(new, data="d.csv", out="o")


def test_every_committed_record_names_a_preset_that_resolves():
    named = {json.loads(p.read_text()).get("preset") for p in (ROOT / "docs" / "runs").glob("*/config.json")}
    assert {PRESET_ALIASES.get(n, n) for n in named - {None}} <= set(PRESETS)


def test_the_main_job_trains_the_shipped_default_models_recipe():
    readme = (ROOT / "device" / "models" / "default" / "README.md").read_text(encoding="utf-8")
    run = re.search(r"From run folder: `runs/([^`]+)`", readme).group(1)
    shipped = json.loads((ROOT / "docs" / "runs" / run / "config.json").read_text())["preset"]
    main = re.search(r"preset=\$\{PRESET:-(\w+)\}", (ROOT / "scripts" / "main.sh").read_text()).group(1)
    assert main == PRESET_ALIASES.get(shipped, shipped) == "shipped"
