"""Residents' fault reports (streetlights, blocked drains, flooding): the domain, storage,
staff triage and the Open311 GeoReport v2 API. Arrives with the reports issue."""
