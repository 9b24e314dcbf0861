"""The layer catalogue: the single source of truth for tables, fields, styles, access and
the pygeoapi configuration. One folder per council (``layers/<council>/``) holding its
profile (``council.yml``) and one YAML file per layer."""

from layers.catalogue import Catalogue, load_catalogue
from layers.model import CouncilProfile, Layer, LayerField

__all__ = ["Catalogue", "CouncilProfile", "Layer", "LayerField", "load_catalogue"]
