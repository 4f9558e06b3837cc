"""Registers lakeforge's config schemas in any Hydra process (DVC's `dvc exp run` included).

Hydra imports every ``hydra_plugins.*`` package it can find before composing, so
tools that compose conf/ without lakeforge (DVC) still see ``lakeforge_schema``.
"""

from lakeforge.config import register_schemas

register_schemas()
