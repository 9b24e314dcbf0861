"""What a layer and a council are: the schema of the catalogue's YAML files."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Lower-case SQL identifiers, so they never need quoting and cannot smuggle SQL; short
# enough to take the loader's staging and version suffixes within 63 characters.
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
GeometryType = Literal[
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"
]
Access = Literal["public", "staff", "emergency"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerField(Strict):
    name: Identifier
    type: FieldType = "string"
    label: str
    access: Literal["public", "restricted"] = "public"
    source: str | None = Field(None, description="Column in the source file, when named otherwise.")

    @property
    def source_name(self) -> str:
        return self.source or self.name


class Style(Strict):
    colour: Colour = "#1d70b8"
    fill_colour: Colour | None = None
    fill_opacity: float = Field(0.2, ge=0, le=1)
    weight: float = Field(2, ge=0, le=20)
    radius: float = Field(5, ge=1, le=30)
    dash: str | None = Field(None, pattern=r"^[0-9 ,]*$")
    icon: str | None = Field(None, pattern=r"^[a-z0-9-]{1,40}$", description="Marker icon name.")


class Source(Strict):
    path: str | None = None
    url: str | None = None
    layer: str | None = Field(None, description="Layer inside a GeoPackage or other container.")
    x_field: str | None = Field(None, description="CSV column holding x (lon or easting).")
    y_field: str | None = Field(None, description="CSV column holding y (lat or northing).")
    crs: str | None = Field(None, description="CRS of the source when the file does not say.")
    encoding: str | None = Field(None, description="Text encoding when not UTF-8.")

    @model_validator(mode="after")
    def _one_location(self) -> "Source":
        if bool(self.path) == bool(self.url):
            raise ValueError("a source needs exactly one of path or url")
        return self


class Gazetteer(Strict):
    """How a layer feeds the search box: which field names a place, and what kind it is."""

    field: Identifier
    kind: str = Field(description="Shown beside each result, e.g. Library, Street, Ward.")
    group: bool = Field(
        False, description="One entry per distinct name (streets from their assets)."
    )


class Derived(Strict):
    """A layer computed from another one's features, rebuilt whenever that one loads."""

    layer: Identifier
    field: Identifier
    values: list[str | int | bool] = Field(min_length=1)


class Constraint(Strict):
    """How a layer counts in the site constraints report (analysis/constraints.py)."""

    buffer_m: float = Field(
        0, ge=0, le=1000, description="Features this near the site count too (0: touching)."
    )
    group_by: Identifier | None = Field(None, description="Report each value apart (flood zone).")


class Population(Strict):
    """Residents of a layer's areas, for estimates by area share (analysis/reach.py): a
    field with each area's count, or, where no per-area counts are loaded, a total shared
    equally between the areas (fair for areas drawn to hold similar numbers, like LSOAs)."""

    field: Identifier | None = None
    total: int | None = Field(None, ge=0)
    source: str = Field(description="Where the figures come from, shown with every estimate.")

    @model_validator(mode="after")
    def _one(self) -> "Population":
        if (self.field is None) == (self.total is None):
            raise ValueError("population needs exactly one of field or total")
        return self


class Layer(Strict):
    id: Identifier
    title: str
    description: str = ""
    theme: str
    geometry: GeometryType
    table: Identifier | None = None
    crs: str = "EPSG:27700"
    id_field: Identifier = "fid"
    fields: list[LayerField] = []
    style: Style = Style()
    attribution: str
    licence: str = "OGL-UK-3.0"
    access: Access = "public"
    source: Source | None = None
    sample: bool = Field(False, description="Loaded into an empty database on first start.")
    synthetic: bool = Field(False, description="Generated data standing in for real records.")
    visible: bool = Field(False, description="Switched on when the map opens.")
    large: bool = Field(False, description="Too big for a COUNT(*) on every request.")
    keywords: list[str] = []
    key: Identifier | None = Field(None, description="Field identifying a feature: no duplicates.")
    time_field: Identifier | None = Field(None, description="Date field for datetime queries.")
    outside_boundary: Literal["reject", "keep"] = Field(
        "keep", description="What to do with features outside the council boundary."
    )
    boundary_tolerance_m: float = Field(100, ge=0, le=50_000)
    max_reject_ratio: float = Field(0.01, ge=0, le=1)
    refresh: Literal["hourly", "daily", "weekly"] | None = Field(
        None, description="How often `mapserver refresh` checks the source for changes."
    )
    derived_from: Derived | None = None
    gazetteer: Gazetteer | None = None
    managed: bool = Field(
        False,
        description="Maintained by the service itself (a view of residents' reports), "
        "never loaded from a file.",
    )
    # Analyses (analysis/): a constraint of the site report, residents for estimates, and a
    # line layer noded at junctions to route over (pgRouting) for siting and reach.
    constraint: Constraint | None = None
    population: Population | None = None
    network: list[Literal["walking", "driving"]] = Field(
        [], description="Travel modes this line layer is a routing network for."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Layer":
        names = [f.name for f in self.fields]
        reserved = {self.id_field, "geom"}
        if len(set(names)) != len(names) or reserved & set(names):
            raise ValueError(f"field names must be unique and not {sorted(reserved)}")
        for role in ("key", "time_field"):
            if getattr(self, role) not in (None, *names):
                raise ValueError(f"{role} {getattr(self, role)!r} is not one of the fields")
        if self.gazetteer and self.gazetteer.field not in names:
            raise ValueError(f"gazetteer field {self.gazetteer.field!r} is not one of the fields")
        if self.network and "LineString" not in self.geometry:
            raise ValueError("a network layer must be of lines")
        if self.derived_from and self.source:
            raise ValueError("a derived layer has no source of its own")
        if self.managed and (self.source or self.sample or self.refresh or self.derived_from):
            raise ValueError("a managed layer has no source, sample, refresh or derived_from")
        named = [
            self.constraint and self.constraint.group_by,
            self.population and self.population.field,
        ]
        if any(name and name not in names for name in named):
            raise ValueError("constraint group_by and population field must be fields")
        return self

    @property
    def table_name(self) -> str:
        return self.table or self.id

    @property
    def srid(self) -> int:
        authority, _, code = self.crs.partition(":")
        if authority.upper() != "EPSG" or not code.isdigit():
            raise ValueError(f"layer {self.id}: crs must be EPSG:<code>, not {self.crs}")
        return int(code)

    @property
    def public_fields(self) -> list[LayerField]:
        return [f for f in self.fields if f.access == "public"]


class View(Strict):
    lat: float = Field(ge=49, le=61)
    lon: float = Field(ge=-9, le=2)
    zoom: int = Field(ge=5, le=19)


class Contact(Strict):
    name: str
    email: str | None = None
    phone: str | None = None
    url: str | None = None


class SyntheticInputs(Strict):
    """Real layers that shape a council's synthetic ones (see loaders/synth.py)."""

    density_layer: Identifier = Field(
        description="Polygon layer of areas of similar population (e.g. LSOAs): smaller is denser."
    )
    watercourse_layer: Identifier = Field(description="Rivers (lines) that flood zones follow.")
    host_site_layers: list[Identifier] = Field(
        min_length=1, description="Point layers where defibrillators are plausibly hosted."
    )
    title_prefixes: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,3}$")]] = Field(
        ["SYN"], min_length=1, description="HM Land Registry title number prefixes of the area."
    )

    @property
    def input_layers(self) -> list[str]:
        return [self.density_layer, self.watercourse_layer, *self.host_site_layers]


class CouncilProfile(Strict):
    id: Identifier
    name: str
    short_name: str
    code: str = Field(description="ONS code of the local authority, e.g. E08000007.")
    crs: str = "EPSG:27700"
    boundary_layer: Identifier
    neighbours_layer: Identifier | None = Field(
        None, description="Polygons of the councils around, to name who is responsible there."
    )
    neighbour_name_field: Identifier | None = None
    parcel_layer: Identifier | None = Field(
        None, description="Land parcels: what an address or a picked point means to analyses."
    )
    basemap_layers: list[Identifier] = Field(
        [], description="Layers the built-in base map is drawn from when no tiles are set."
    )
    bbox: tuple[float, float, float, float] = Field(description="Extent in CRS84 (lon/lat).")
    initial_view: View
    attribution: str
    contact: Contact
    website: str | None = None
    reference_prefix: str = Field(
        "REP", pattern=r"^[A-Z]{2,6}$", description="Starts each fault report's reference."
    )
    synthetic: SyntheticInputs | None = Field(
        None, description="Inputs of the synthetic data generator, when the council uses it."
    )
