"""Staff analyses published as OGC API Processes: defibrillator siting, site constraints,
incident reach and ownership. Arrives with the analysis issue."""
