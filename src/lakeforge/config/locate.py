"""Which YAML file a composed key came from, for error messages that name the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Locator:
    """Maps composed key paths back to the conf/ files that set them."""

    conf_dir: Path
    # (package, config_path) of every YAML file in the defaults list, in merge order.
    sources: list[tuple[str, str]] = field(default_factory=list)
    primary: str = "config"
    # (package, config_path, parent config_path) of every defaults entry, schemas included.
    placements: list[tuple[str, str, str]] = field(default_factory=list)

    def display(self, config_path: str) -> str:
        """The file of a config path as shown to users: ``conf/model/flight_delay.yaml``."""
        return f"{self.conf_dir.name}/{config_path}.yaml"

    def package_of(self, config_path: str) -> str | None:
        """The package a config path was merged at, if it was composed."""
        for package, path in self.sources:
            if path == config_path:
                return package
        return None

    def file_for(self, key: str) -> str:
        """The file that owns ``key`` (longest package prefix wins; globals go to the primary)."""
        top = key.split(".", 1)[0].split("[", 1)[0]
        best: tuple[int, str] | None = None
        for package, path in self.sources:
            if not package:
                if top == path.split("/", 1)[0] and "/" in path:  # e.g. pipeline/flight_delay
                    return self.display(path)
                continue
            matches = key == package or key.startswith((package + ".", package + "["))
            if matches and (best is None or len(package) >= best[0]):
                best = (len(package), path)
        return self.display(best[1] if best else self.primary)

    def has_package(self, key: str) -> bool:
        """True when some composed file sets ``key`` or a parent of it."""
        return any(package and (key == package or key.startswith(package + ".")) for package, _ in self.sources)

    def options(self, group: str) -> list[str]:
        """The YAML options of a config group (``schema`` excluded)."""
        folder = self.conf_dir / group
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.yaml"))

    def placement(self, config_path: str, key: str) -> tuple[str, str, str] | None:
        """Who put ``config_path`` at a package that ``key`` is (a prefix of), if it was placed there.

        Returns (the config whose defaults entry chose the package, the config it placed there, the
        package): ``dataset/schema`` at ``datasets.flights`` was placed by ``dataset/flights``, which
        ``pipeline/flight_delay`` placed there with ``/dataset@datasets.flights: flights``.
        """
        for package, path, parent in self.placements:
            if not key or path != config_path or not (package == key or package.startswith(key + ".")):
                continue
            placed, chooser = path, parent
            for _ in self.placements:  # climb while the parent sits at the same package
                above = self._parent_at(chooser, package)
                if above is None:
                    break
                placed, chooser = chooser, above
            return chooser, placed, package
        return None

    def _parent_at(self, config_path: str, package: str) -> str | None:
        """The parent of ``config_path`` where it was placed at ``package``, or None."""
        for placed_package, path, parent in self.placements:
            if path == config_path and placed_package == package:
                return parent
        return None
