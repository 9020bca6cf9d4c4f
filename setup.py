"""Package list for setuptools (everything else is in pyproject.toml).

The engine and app packages are discovered; `mbrs_assets` is the repository's
top-level `assets/` folder (shipped models, icons) installed under that name,
so `importlib.resources.files("mbrs_assets")` finds the shipped models from a
wheel and from an editable install alike.  pyproject.toml cannot combine
package discovery with such a mapping, hence this file.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mbrs_engine", "mbrs_engine.*", "mbrs_gui", "mbrs_gui.*"])
    + ["mbrs_assets", "mbrs_assets.models"],
    package_dir={"mbrs_assets": "assets"},
)
