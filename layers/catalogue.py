"""Reads a council's catalogue folder: ``council.yml`` plus one YAML file per layer."""

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from layers.model import CouncilProfile, Layer
from mapserver.errors import ServiceError

PROFILE_FILE = "council.yml"
# Other configuration in the folder that is not a layer (reports.yml: report categories).
NOT_LAYERS = {PROFILE_FILE, "reports.yml"}


@dataclass(frozen=True)
class Catalogue:
    council: CouncilProfile
    layers: dict[str, Layer]
    directory: Path

    def layer(self, layer_id: str) -> Layer:
        try:
            return self.layers[layer_id]
        except KeyError:
            known = ", ".join(sorted(self.layers))
            raise ServiceError(f"No layer {layer_id!r} in the catalogue. Known: {known}") from None

    @property
    def public_layers(self) -> list[Layer]:
        return [layer for layer in self.layers.values() if layer.access == "public"]

    @property
    def sample_layers(self) -> list[Layer]:
        return [layer for layer in self.layers.values() if layer.sample]


def read_model[Model: BaseModel](path: Path, model: type[Model]) -> Model:
    """A YAML file validated by ``model``; a ServiceError naming every problem otherwise."""
    try:
        # libyaml's safe loader: 8x faster, and every command reads the whole catalogue.
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        return model.model_validate(document)
    except yaml.YAMLError as exc:
        raise ServiceError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ServiceError(f"{path}: {problems}") from None


def load_catalogue(directory: Path) -> Catalogue:
    directory = Path(directory)
    profile_path = directory / PROFILE_FILE
    if not profile_path.is_file():
        raise ServiceError(
            f"No council profile at {profile_path}.",
            hint="Set MAPSERVER_COUNCIL to a folder in layers/ or MAPSERVER_CATALOGUE_DIR.",
        )
    council = read_model(profile_path, CouncilProfile)
    layers: dict[str, Layer] = {}
    tables: dict[str, str] = {}
    for path in sorted(directory.glob("*.yml")):
        if path.name in NOT_LAYERS:
            continue
        layer = read_model(path, Layer)
        if layer.id != path.stem:
            raise ServiceError(f"{path}: id {layer.id!r} must match the file name {path.stem!r}")
        if layer.table_name in tables:
            raise ServiceError(
                f"{path}: table {layer.table_name!r} is already used by {tables[layer.table_name]}"
            )
        tables[layer.table_name] = layer.id
        layers[layer.id] = layer
    if council.boundary_layer not in layers:
        raise ServiceError(
            f"{profile_path}: boundary_layer {council.boundary_layer!r} is not in the catalogue"
        )
    if council.neighbours_layer and council.neighbours_layer not in layers:
        raise ServiceError(
            f"{profile_path}: neighbours_layer {council.neighbours_layer!r} is not in the catalogue"
        )
    if unknown := [i for i in council.basemap_layers if i not in layers]:
        raise ServiceError(
            f"{profile_path}: basemap_layers {', '.join(unknown)} not in the catalogue"
        )
    inputs = council.synthetic.input_layers if council.synthetic else []
    unknown = [layer_id for layer_id in inputs if layer_id not in layers]
    if unknown:
        raise ServiceError(
            f"{profile_path}: synthetic inputs {', '.join(unknown)} are not in the catalogue"
        )
    return Catalogue(council=council, layers=layers, directory=directory)
