"""``python -m convert RUN_DIR --int8``: see ``convert.cli``."""
from .cli import main

if __name__ == "__main__":
    main()
