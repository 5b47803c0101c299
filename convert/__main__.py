"""``python -m convert RUN_DIR --int8``: see ``convert.cli``."""
from device.errors import exit_with

from .cli import main

if __name__ == "__main__":
    exit_with(main())
