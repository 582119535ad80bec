"""The package list, which pyproject.toml cannot express alone: every ``avkit*`` package plus the top-level
``assets/`` folder (the models shipped with avkit) installed as ``avkit.assets``; everything else is in
pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["avkit*"]), "avkit.assets"], package_dir={"avkit.assets": "assets"})
