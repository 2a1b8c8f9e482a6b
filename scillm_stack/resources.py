"""Files shipped with the package: `stack/` and `dashboards/`, wheel or checkout alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_root() -> Path:
    packaged = Path(str(resources.files("scillm_stack"))) / "_data"
    if packaged.is_dir():  # installed wheel
        return packaged
    return Path(__file__).resolve().parent.parent  # source checkout or editable install


def stack_dir() -> Path:
    """The `stack/` folder of component configs."""
    return _data_root() / "stack"


def dashboards_dir() -> Path:
    """The `dashboards/` folder."""
    return _data_root() / "dashboards"
