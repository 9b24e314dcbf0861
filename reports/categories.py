"""A council's report categories, read from ``layers/<council>/reports.yml``.

Configuration, not code: each category has an Open311 service code and group, an
optional asset layer (clicking one of its features fills in the asset id), extra
questions (Open311 attributes) and the team that handles it. The file also names the
layer that gives each report its ward::

    ward_layer: wards
    ward_code_field: ward_code
    ward_name_field: ward_name
    teams:
      street_lighting: {name: Street lighting, email: lighting@example.gov.uk}
    categories:
      - id: streetlight
        service_code: SL01
        name: Street light fault
        group: Street lighting
        asset_layer: streetlights        # a Point layer of the catalogue
        asset_id_field: central_asset_id
        team: street_lighting
        questions:
          - code: fault
            description: What is wrong with the light?
            datatype: singlevaluelist
            values: [{key: day, name: On during the day}, {key: off, name: Off at night}]
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from layers.catalogue import Catalogue, read_model
from layers.model import Identifier
from mapserver.errors import ServiceError
from reports.domain import State

REPORTS_FILE = "reports.yml"
ServiceCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(Strict):
    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]
    name: str


class Question(Strict):
    """An Open311 attribute: ``code`` is its ``code`` and ``variable`` is always true."""

    code: Identifier
    description: str
    datatype: Datatype = "string"
    required: bool = False
    values: list[Choice] = []

    @model_validator(mode="after")
    def _choices(self) -> "Question":
        listed = self.datatype in ("singlevaluelist", "multivaluelist")
        if listed != bool(self.values):
            raise ValueError("a list question needs values; other questions have none")
        return self

    def check(self, answer: Any) -> str | list[str] | None:  # noqa: ANN401 (form or JSON)
        """The answer, cleaned; ValueError with a message for the resident when wrong."""
        if answer in (None, "", []):
            if self.required:
                raise ValueError(f"Answer the question: {self.description}")
            return None
        keys = {choice.key for choice in self.values}
        if self.datatype == "multivaluelist":
            chosen = [answer] if isinstance(answer, str) else list(answer)
            if not chosen or not set(chosen) <= keys:
                raise ValueError(f"Choose from the answers given: {self.description}")
            return chosen
        if not isinstance(answer, str):
            raise ValueError(f"Give one answer: {self.description}")
        if self.datatype == "singlevaluelist" and answer not in keys:
            raise ValueError(f"Choose one of the answers given: {self.description}")
        if self.datatype == "number":
            try:
                float(answer)
            except ValueError:
                raise ValueError(f"Give a number: {self.description}") from None
        return answer.strip()[:1000]


class Team(Strict):
    name: str
    email: str | None = None


class Category(Strict):
    id: Identifier
    service_code: ServiceCode
    name: str
    group: str
    description: str = ""
    keywords: list[str] = []
    asset_layer: Identifier | None = None
    asset_id_field: Identifier | None = None
    asset_name: str = Field("asset", description="What one asset is called: street light…")
    team: Identifier
    questions: list[Question] = []

    @model_validator(mode="after")
    def _asset(self) -> "Category":
        if bool(self.asset_layer) != bool(self.asset_id_field):
            raise ValueError("asset_layer and asset_id_field go together")
        codes = [q.code for q in self.questions]
        if len(set(codes)) != len(codes):
            raise ValueError("question codes must be unique")
        return self

    def check_answers(self, answers: dict[str, Any]) -> dict[str, Any]:
        """Only this category's questions, each answer checked (ValueError otherwise)."""
        checked = {q.code: q.check(answers.get(q.code)) for q in self.questions}
        return {code: value for code, value in checked.items() if value is not None}


class ResponseTemplate(Strict):
    """A staff reply kept in configuration (FixMyStreet's response templates); with a
    ``state``, it is offered when moving a report to that state."""

    id: Identifier
    title: str
    text: str
    state: State | None = None


class ReportsConfig(Strict):
    ward_layer: Identifier | None = None
    ward_code_field: Identifier | None = None
    ward_name_field: Identifier | None = None
    teams: dict[Identifier, Team]
    categories: list[Category] = Field(min_length=1)
    response_templates: list[ResponseTemplate] = []

    @model_validator(mode="after")
    def _consistent(self) -> "ReportsConfig":
        for key in ("id", "service_code"):
            values = [getattr(c, key) for c in self.categories]
            if len(set(values)) != len(values):
                raise ValueError(f"category {key}s must be unique")
        for category in self.categories:
            if category.team not in self.teams:
                raise ValueError(f"category {category.id}: team {category.team!r} is not in teams")
        return self

    def response_template(self, template_id: str) -> ResponseTemplate | None:
        return next((t for t in self.response_templates if t.id == template_id), None)

    def category(self, category_id: str) -> Category | None:
        return next((c for c in self.categories if c.id == category_id), None)

    def by_service_code(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.service_code == code), None)

    @property
    def asset_layers(self) -> dict[str, str]:
        """Asset layer id -> the field holding each asset's id."""
        return {c.asset_layer: c.asset_id_field for c in self.categories if c.asset_layer}


def load_reports_config(catalogue: Catalogue) -> ReportsConfig | None:
    """The council's report categories, or None when it takes no reports (no file).

    Every layer it names must be in the catalogue, asset layers must be points and carry
    the id field: a mistake is found at start, not at a resident's first report.
    """
    path = Path(catalogue.directory) / REPORTS_FILE
    if not path.is_file():
        return None
    config = read_model(path, ReportsConfig)
    for layer_id, field in config.asset_layers.items():
        layer = catalogue.layers.get(layer_id)
        if layer is None or layer.geometry != "Point":
            raise ServiceError(f"{path}: asset layer {layer_id!r} is not a point layer")
        if field not in {f.name for f in layer.fields}:
            raise ServiceError(f"{path}: asset layer {layer_id!r} has no field {field!r}")
    if config.ward_layer:
        layer = catalogue.layers.get(config.ward_layer)
        names = {f.name for f in layer.fields} if layer else set()
        wanted = {config.ward_code_field, config.ward_name_field} - {None}
        if layer is None or not wanted <= names:
            raise ServiceError(f"{path}: ward layer {config.ward_layer!r} or its fields unknown")
    return config
