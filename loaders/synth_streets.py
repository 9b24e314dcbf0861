"""Synthetic layers that follow invented streets: street lights, gullies, planning
applications and defibrillators."""

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from loaders.synth_world import (
    AS_OF,
    World,
    days_before,
    frame,
    iso_dates,
    place_names,
    street_names,
)

STREETLIGHTS = 30_000
GULLIES = 40_000
PLANNING_APPLICATIONS = 9_000
DEFIBRILLATORS = 250

LIGHT_SPACING_M = 30.0
# Gullies share the lit streets, so their spacing gives their count over the same length.
GULLY_SPACING_M = LIGHT_SPACING_M * STREETLIGHTS / GULLIES
# Invented street length beyond what the lights need: streets are cut by the boundary.
STREET_SURPLUS = 1.5
STREET_MEDIAN_M = 220.0
PLOT_WIDTH_M = 7.0  # frontage of a house: turns a distance along a street into a number

# (type, share, wattages, first and last install year)
LAMPS = (
    ("LED", 0.66, (18, 24, 30, 36, 45, 60), (2013, 2026)),
    ("SON", 0.16, (50, 70, 100, 150), (1985, 2012)),
    ("CFL", 0.08, (24, 36, 55), (1998, 2012)),
    ("SOX", 0.05, (35, 55, 90), (1975, 1998)),
    ("CDM", 0.05, (45, 60, 90), (2006, 2016)),
)
LOCATIONS = (("o/s", 0.75), ("opp", 0.15), ("adj", 0.10))

# (type, share, median site area in m², weeks to a decision, proposals)
APPLICATIONS = (
    (
        "Householder",
        0.46,
        250,
        8,
        (
            "Single storey rear extension",
            "Two storey side extension",
            "Loft conversion with rear dormer",
            "Erection of a detached garage",
            "Front porch and replacement garage door",
            "Single storey side and rear extension",
            "Raised decking and boundary fence to rear garden",
        ),
    ),
    (
        "Full",
        0.17,
        900,
        10,
        (
            "Erection of {n} dwellings with associated access and parking",
            "Demolition of existing garage and erection of a detached dwelling",
            "Erection of a two storey building with {n} apartments",
            "Extension to industrial unit and new parking area",
            "Replacement of existing bungalow with {n} semi-detached houses",
        ),
    ),
    (
        "Outline",
        0.03,
        2000,
        13,
        (
            "Outline application for up to {n} dwellings (all matters reserved)",
            "Outline application for residential development with access (other matters reserved)",
        ),
    ),
    (
        "Listed building consent",
        0.03,
        300,
        8,
        (
            "Replacement of timber sash windows like for like",
            "Internal alterations and repairs to the roof",
            "Installation of a replacement shopfront",
        ),
    ),
    (
        "Change of use",
        0.06,
        400,
        8,
        (
            "Change of use from shop (Class E) to a dwelling (Class C3)",
            "Change of use from offices to {n} self-contained flats",
            "Change of use of dwelling to a children's home (Class C2)",
            "Change of use to a hot food takeaway (Sui Generis)",
        ),
    ),
    (
        "Advertisement",
        0.05,
        150,
        8,
        (
            "Display of an internally illuminated fascia sign",
            "Display of a freestanding totem sign",
            "Display of a non-illuminated hanging sign",
        ),
    ),
    (
        "Prior approval",
        0.08,
        250,
        6,
        (
            "Prior approval for a larger home extension projecting 6m to the rear",
            "Prior approval for the installation of a telecommunications mast",
        ),
    ),
    (
        "Certificate of lawfulness",
        0.07,
        250,
        8,
        (
            "Certificate of lawfulness for a proposed outbuilding",
            "Certificate of lawfulness for a proposed single storey rear extension",
        ),
    ),
    (
        "Tree works",
        0.05,
        400,
        6,
        (
            "Fell {few} trees protected by a tree preservation order",
            "Crown reduction of an oak protected by a tree preservation order",
        ),
    ),
)
DECISIONS = (("Approved", 0.85), ("Refused", 0.09), ("Withdrawn", 0.06))
FIRST_REFERENCE = 74_000

DEFIB_AT_HOSTS = 0.7  # share of defibrillators at the host sites, as far as they go
DEFIB_PLACES = (
    "Community Centre",
    "Sports Club",
    "Church",
    "Supermarket",
    "Surgery",
    "Primary School",
    "Leisure Centre",
    "Village Hall",
    "Railway Station",
    "Dental Practice",
    "Cricket Club",
)
CABINETS = (("Unlocked cabinet", 0.5), ("Locked cabinet", 0.25), ("Indoor", 0.25))
OPENING_HOURS = (
    "Mon–Fri 09:00–17:00",
    "Mon–Sat 08:30–18:00",
    "Daily 07:00–22:00",
    "Mon–Fri 08:00–18:30, Sat 09:00–13:00",
    "During opening hours",
)
GUARDIANS = (
    "{} Community First Responders",
    "{} Rotary Club",
    "{} Lions Club",
    "{} Residents' Association",
    "Friends of {} Park",
    "{} Heartstart Group",
)


@dataclass(frozen=True)
class Streets:
    """Straight invented streets: start, unit heading, length, name and site code."""

    start: np.ndarray
    heading: np.ndarray
    length: np.ndarray
    name: np.ndarray
    site_code: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        return np.column_stack([-self.heading[:, 1], self.heading[:, 0]])

    def point(self, street: np.ndarray, t: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """`t` metres along each street, `offset` metres to its left (negative: right)."""
        return (
            self.start[street]
            + self.heading[street] * t[:, None]
            + self.normal[street] * offset[:, None]
        )

    def stops(
        self, spacing: float, offset: float, world: World, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The first `n` points inside the borough every `spacing` metres along the streets,
        staggered `offset` metres either side: coordinates, street, step along it, side."""
        steps = np.maximum(1, np.floor(self.length / spacing).astype(int))
        street = np.repeat(np.arange(len(steps)), steps)
        step = np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)
        side = np.where(step % 2 == 0, 1.0, -1.0)
        xy = self.point(street, (step + 0.5) * spacing, side * offset)
        inside = np.flatnonzero(world.inside(xy))[:n]
        return xy[inside], street[inside], step[inside], side[inside]


def make_streets(world: World) -> Streets:
    """Enough street length for the lights, spread like the population; each area's
    streets keep to a rough grid of its own orientation, like an estate."""
    rng = world.rng("streets")
    needed = world.count(STREETLIGHTS) * LIGHT_SPACING_M * STREET_SURPLUS
    start, area = world.points(int(needed / STREET_MEDIAN_M) + 20, rng)
    n = len(start)
    grid = rng.uniform(0, np.pi / 2, len(world.areas[0]))
    angle = grid[area] + rng.integers(0, 4, n) * np.pi / 2 + rng.normal(0, 0.08, n)
    return Streets(
        start=start,
        heading=np.column_stack([np.cos(angle), np.sin(angle)]),
        length=np.clip(rng.lognormal(np.log(STREET_MEDIAN_M), 0.5, n), 60, 800),
        name=street_names(rng, n),
        site_code=_unique_codes(rng, n, 10_000, 99_999),
    )


def _streets(world: World) -> Streets:
    return world.shared("streets", make_streets)


def _unique_codes(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """Distinct numbers in [low, high] as text, while the range allows."""
    size = high - low + 1
    return (rng.choice(size, n, replace=n > size) + low).astype(str).astype(object)


def _choice(rng: np.random.Generator, table: tuple, n: int) -> np.ndarray:
    """Row indices of `table` (rows of (value, share, ...)) drawn by share."""
    shares = np.array([row[1] for row in table])
    return rng.choice(len(table), n, p=shares / shares.sum())


def _house_numbers(t: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Odd numbers on the left of a street, even on the right."""
    return 2 * np.floor(t / PLOT_WIDTH_M).astype(int) + np.where(side > 0, 1, 2)


def streetlights(world: World) -> gpd.GeoDataFrame:
    rng = world.rng("streetlights")
    streets = _streets(world)
    xy, street, step, side = streets.stops(LIGHT_SPACING_M, 6.0, world, world.count(STREETLIGHTS))
    n = len(xy)
    lamp = _choice(rng, LAMPS, n)
    wattage = np.zeros(n, dtype=np.int64)
    year = np.zeros(n, dtype=np.int64)
    for i, (_, _, watts, (first, last)) in enumerate(LAMPS):
        mine = lamp == i
        wattage[mine] = rng.choice(watts, mine.sum())
        year[mine] = rng.integers(first, last + 1, mine.sum())
    where = np.array([row[0] for row in LOCATIONS], dtype=object)[_choice(rng, LOCATIONS, n)]
    numbers = _house_numbers((step + 0.5) * LIGHT_SPACING_M, side)
    description = [
        f"{w} {h} {s}" for w, h, s in zip(where, numbers, streets.name[street], strict=True)
    ]
    xy = xy.round(2)
    return frame(
        {
            "central_asset_id": _unique_codes(rng, n, 10_000_000, 19_999_999),
            "site_code": streets.site_code[street],
            "feature_id": (step + 1).astype(str).astype(object),
            "location_description": description,
            "lamp_type": np.array([row[0] for row in LAMPS], dtype=object)[lamp],
            "wattage": wattage,
            "install_year": year,
        },
        shapely.points(xy),
        world.crs,
    )


def gullies(world: World) -> gpd.GeoDataFrame:
    rng = world.rng("gullies")
    streets = _streets(world)
    xy, street, _, _ = streets.stops(GULLY_SPACING_M, 3.5, world, world.count(GULLIES))
    n = len(xy)
    cleansed = days_before(rng, n, 730)
    cleansed[rng.random(n) < 0.03] = np.datetime64("NaT", "D")  # never recorded
    xy = xy.round(2)
    return frame(
        {
            "central_asset_id": _unique_codes(rng, n, 20_000_000, 29_999_999),
            "site_code": streets.site_code[street],
            "easting": xy[:, 0],
            "northing": xy[:, 1],
            "street": streets.name[street],
            "last_cleansed": iso_dates(cleansed),
        },
        shapely.points(xy),
        world.crs,
    )


def planning_applications(world: World) -> gpd.GeoDataFrame:
    """Small sites set back from a street, received over three years; references run in
    the order applications arrive."""
    rng = world.rng("planning_applications")
    streets = _streets(world)
    n = world.count(PLANNING_APPLICATIONS)
    tries = int(n * 1.2) + 10
    kind = _choice(rng, APPLICATIONS, tries)
    street = rng.choice(len(streets.length), tries, p=streets.length / streets.length.sum())
    t = rng.uniform(0, 1, tries) * streets.length[street]
    side = rng.choice([-1.0, 1.0], tries)
    medians = np.array([row[2] for row in APPLICATIONS])
    area = np.clip(rng.lognormal(np.log(medians[kind]), 0.6), 100, 3000)
    aspect = rng.uniform(1.1, 2.4, tries)  # depth over frontage
    width = np.sqrt(area / aspect)
    depth = width * aspect
    sites = _quads(streets, street, t, side * (8 + depth / 2), width, depth, rng)
    keep = np.flatnonzero(shapely.contains(world.inner, sites))[:n]
    kind, street, t, side, sites = kind[keep], street[keep], t[keep], side[keep], sites[keep]
    n = len(sites)

    received = np.busday_offset(days_before(rng, n, 3 * 365), 0, roll="backward")
    weeks = np.array([row[3] for row in APPLICATIONS])[kind]
    decided = np.busday_offset(
        received + (weeks * 7 * rng.gamma(6, 1 / 6, n)).astype("timedelta64[D]"),
        0,
        roll="forward",
    ).astype("datetime64[D]")
    pending = decided > AS_OF
    status = np.array([row[0] for row in DECISIONS], dtype=object)[_choice(rng, DECISIONS, n)]
    status[pending] = "Pending"
    decided[pending] = np.datetime64("NaT", "D")

    order = np.argsort(received, kind="stable")
    number = FIRST_REFERENCE + np.cumsum(rng.integers(1, 4, n))  # gaps: invalid submissions
    houses = _house_numbers(t, side)
    land = np.isin(kind, [1, 2]) & (rng.random(n) < 0.3)
    addresses = [
        f"{'Land adjacent to ' if on_land else ''}{h} {s}"
        for on_land, h, s in zip(land, houses, streets.name[street], strict=True)
    ]
    proposals = [
        str(rng.choice(APPLICATIONS[k][4])).format(n=rng.integers(2, 40), few=rng.integers(2, 6))
        for k in kind
    ]
    columns = {
        "reference": np.array([f"DC/{v:06d}" for v in number], dtype=object),
        "address": np.array(addresses, dtype=object)[order],
        "proposal": np.array(proposals, dtype=object)[order],
        "application_type": np.array([r[0] for r in APPLICATIONS], dtype=object)[kind[order]],
        "status": status[order],
        "received_date": iso_dates(received[order]),
        "decided_date": iso_dates(decided[order]),
    }
    return frame(columns, sites[order], world.crs)


def _quads(
    streets: Streets,
    street: np.ndarray,
    t: np.ndarray,
    offset: np.ndarray,
    width: np.ndarray,
    depth: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Plots facing their street: rectangles with corners moved a little, so not all
    are square."""
    centre = streets.point(street, t, offset)
    along, across = streets.heading[street], streets.normal[street]
    signs = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=float)
    half = np.stack([width / 2, depth / 2], axis=1)[:, None, :] * signs[None, :, :]
    half *= rng.uniform(0.93, 1.07, half.shape)
    corners = (
        centre[:, None, :]
        + half[:, :, :1] * along[:, None, :]
        + half[:, :, 1:] * across[:, None, :]
    )
    return shapely.polygons(corners)


def defibrillators(world: World) -> gpd.GeoDataFrame:
    """Most at host sites (a few metres from the building's point), the rest at other
    places on the invented streets."""
    rng = world.rng("defibrillators")
    n = world.count(DEFIBRILLATORS)
    hosts = world.hosts
    at_hosts = min(round(n * DEFIB_AT_HOSTS), len(hosts))
    chosen = hosts.iloc[np.sort(rng.choice(len(hosts), at_hosts, replace=False))]
    host_xy = shapely.get_coordinates(chosen.geometry.to_numpy())
    angle = rng.uniform(0, 2 * np.pi, at_hosts)
    nudged = host_xy + rng.uniform(3, 20, at_hosts)[:, None] * np.column_stack(
        [np.cos(angle), np.sin(angle)]
    )
    host_xy = np.where(world.inside(nudged)[:, None], nudged, host_xy)

    others = n - at_hosts
    streets = _streets(world)
    street = rng.choice(len(streets.length), others * 2 + 10)
    t = rng.uniform(0, 1, len(street)) * streets.length[street]
    side = rng.choice([-1.0, 1.0], len(street))
    other_xy = streets.point(street, t, side * 10)
    keep = np.flatnonzero(world.inside(other_xy))[:others]
    other_xy, street, t, side = other_xy[keep], street[keep], t[keep], side[keep]
    kinds = rng.choice(DEFIB_PLACES, len(keep))
    places = place_names(rng, len(keep))
    numbers = _house_numbers(t, side)

    total = at_hosts + len(keep)
    cabinet = np.array([c[0] for c in CABINETS], dtype=object)[_choice(rng, CABINETS, total)]
    hours = rng.choice(OPENING_HOURS, total)
    access = np.where(
        cabinet == "Indoor",
        hours,
        np.where(cabinet == "Locked cabinet", "24/7 (code from 999)", "24/7"),
    ).astype(object)
    names = [*chosen["name"], *(f"{p} {k}" for p, k in zip(places, kinds, strict=True))]
    own = rng.random(total) < 0.4  # the site itself looks after it
    groups = [rng.choice(GUARDIANS).format(place) for place in place_names(rng, total)]
    return frame(
        {
            "name": names,
            "site_type": [*chosen["site_type"], *kinds],
            "address": [
                *chosen["address"],
                *(f"{h} {s}" for h, s in zip(numbers, streets.name[street], strict=True)),
            ],
            "access": access,
            "cabinet_type": cabinet,
            "guardian": [
                name if mine else group
                for name, mine, group in zip(names, own, groups, strict=True)
            ],
            "install_date": iso_dates(days_before(rng, total, 14 * 365)),
        },
        shapely.points(np.concatenate([host_xy, other_xy])),
        world.crs,
    )


PATH_LINK_MAX_M = 400.0  # a street end further than this from any other street stays a dead end


def paths(world: World) -> gpd.GeoDataFrame:
    """The invented streets as a walking network: each street end joined by a footpath to
    the nearest other street, everything split where lines cross (as OS Open Roads' links
    are noded at junctions), and only the pieces inside the borough kept."""
    streets = _streets(world)
    ends = streets.start + streets.heading * streets.length[:, None]
    lines = shapely.linestrings(np.stack([streets.start, ends], axis=1))
    tree = shapely.STRtree(lines)
    tips = shapely.points(np.concatenate([streets.start, ends]))
    own = np.tile(np.arange(len(lines)), 2)
    tip, other = tree.query(tips, predicate="dwithin", distance=PATH_LINK_MAX_M)
    keep = other != own[tip]
    tip, other = tip[keep], other[keep]
    gap = shapely.distance(tips[tip], lines[other])
    order = np.lexsort((gap, tip))
    first = order[np.r_[True, np.diff(tip[order]) != 0]]  # nearest other street of each end
    links = shapely.shortest_line(tips[tip[first]], lines[other[first]])
    links = links[shapely.length(links) > 0.5]
    # Noded in fixed precision (1 cm snap-rounding), so the pieces stay noded once rounded.
    pieces = shapely.get_parts(shapely.union_all([*lines, *links], grid_size=0.01))
    coords = shapely.get_coordinates(pieces)
    counts = shapely.get_num_coordinates(pieces)
    last = np.cumsum(counts) - 1
    inside = world.inside(coords[last - counts + 1]) & world.inside(coords[last])
    pieces = pieces[inside & (shapely.length(pieces) > 0.01)]
    mid = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    street = tree.query_nearest(mid, max_distance=0.05, all_matches=False)
    name = np.full(len(pieces), "Footpath", dtype=object)
    name[street[0]] = streets.name[street[1]]
    kind = np.where(name == "Footpath", "footpath", "street").astype(object)
    return frame({"name": name, "kind": kind}, pieces, world.crs)
