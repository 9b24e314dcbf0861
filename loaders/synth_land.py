"""Synthetic area layers: land ownership parcels, flood zones, conservation areas and the
protected trees in and around them."""

import geopandas as gpd
import numpy as np
import shapely

from loaders.synth_world import (
    World,
    days_before,
    frame,
    iso_dates,
    place_names,
    sample_points,
)
from mapserver.errors import ServiceError

LAND_PARCELS = 130_000
CONSERVATION_AREAS = 25
PROTECTED_TREES = 600

# Owners other than private individuals: (category, share of parcels, cluster radius in m).
# Their land comes in clusters (parks, schools, estates, business parks), not scattered.
OWNERS = (
    ("council", 0.065, (60.0, 250.0)),
    ("housing association", 0.07, (60.0, 200.0)),
    ("company", 0.08, (40.0, 200.0)),
    ("crown", 0.005, (40.0, 120.0)),
)
CLUSTER_BATCH = 64
LEASEHOLD = 0.2
TITLE_NUMBERS_PER_PREFIX = 900_000  # six digits after the prefix
HOUSING_SUFFIXES = ("Homes", "Housing Association", "Housing Trust", "Housing Group")
COMPANY_SUFFIXES = (
    "Properties Limited",
    "Estates Ltd",
    "Developments Limited",
    "Investments Ltd",
    "Holdings Limited",
    "Logistics Ltd",
)
CROWN_BODIES = (
    "Secretary of State for Transport",
    "Secretary of State for Defence",
    "Secretary of State for Health and Social Care",
    "The Crown Estate Commissioners",
)

# (zone, buffer distance range in m, description): zone 2 is wider everywhere and so
# includes zone 3, as the Environment Agency publishes them.
FLOOD_ZONES = (
    ("3", (40.0, 120.0), "High probability: a 1% or greater annual chance of river flooding."),
    ("2", (150.0, 300.0), "Medium probability: a 0.1% to 1% annual chance of river flooding."),
)
RIVER_PIECE_M = 50.0

CONSERVATION_SPACING_M = 900.0  # between centres: areas never overlap
CONSERVATION_SUFFIXES = ("", " Village", " Green", " Park", " Town Centre", " Hall")
FIRST_DESIGNATION = np.datetime64("1969-01-01")
LAST_DESIGNATION = np.datetime64("2012-12-31")
TREES_IN_CONSERVATION_AREAS = 0.35
SPECIES = (
    "English oak",
    "Common beech",
    "Copper beech",
    "Sycamore",
    "Common lime",
    "Horse chestnut",
    "Ash",
    "Scots pine",
    "Silver birch",
    "Yew",
    "Cedar of Lebanon",
    "London plane",
    "Wild cherry",
    "Norway maple",
    "Hornbeam",
    "Sweet chestnut",
    "Holly",
)


def land_ownership(world: World) -> gpd.GeoDataFrame:
    """Parcels tessellating the borough, small where people live close together."""
    rng = world.rng("land_ownership")
    n = world.count(LAND_PARCELS)
    seeds, _ = world.points(n, rng)
    parcels = _tessellate(seeds, world)
    category = np.full(n, "private", dtype=object)
    proprietor = np.full(n, "Private individual", dtype=object)
    tree = shapely.STRtree(shapely.points(seeds))
    for name, share, radii in OWNERS:
        cluster = _clusters(seeds, tree, category == "private", round(share * n), radii, rng)
        mine = cluster >= 0
        category[mine] = name
        proprietor[mine] = _proprietors(name, cluster.max() + 1, world, rng)[cluster[mine]]
    tenure = np.where(rng.random(n) < LEASEHOLD, "Leasehold", "Freehold").astype(object)
    return frame(
        {
            "inspire_id": rng.choice(90_000_000, n, replace=False) + 10_000_000,
            "title_number": _title_numbers(world.inputs.title_prefixes, n, rng),
            "tenure": tenure,
            "proprietor_category": category,
            "proprietor_name": proprietor,
        },
        parcels,
        world.crs,
    )


def _tessellate(seeds: np.ndarray, world: World) -> np.ndarray:
    """Voronoi cells of the seeds, in their order; only the cells crossing the boundary
    line need clipping (the rest lie inside: their seed does)."""
    x0, y0, x1, y1 = shapely.bounds(world.boundary)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(seeds),
            extend_to=shapely.box(x0, y0, x1, y1).buffer(1000),
            ordered=True,
        )
    )
    if len(cells) != len(seeds):
        raise ServiceError(f"Tessellation gave {len(cells)} parcels for {len(seeds)} seeds.")
    crossing = shapely.intersects(world.ring, cells)
    cells[crossing] = _polygonal(shapely.intersection(cells[crossing], world.boundary))
    return cells


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Clipping can leave slivers of lines or points beside the polygons: drop them."""
    mixed = shapely.get_type_id(geoms) == 7
    geoms[mixed] = [
        shapely.union_all([p for p in shapely.get_parts(g) if shapely.get_dimensions(p) == 2])
        for g in geoms[mixed]
    ]
    return geoms


def _clusters(
    seeds: np.ndarray,
    tree: shapely.STRtree,
    free: np.ndarray,
    quota: int,
    radii: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Claim `quota` free seeds in discs around random free centres: each seed's cluster
    number, or -1."""
    label = np.full(len(seeds), -1)
    claimed = clusters = 0
    while claimed < quota:
        candidates = np.flatnonzero(free & (label < 0))
        if not len(candidates):
            break
        centres = rng.choice(candidates, CLUSTER_BATCH)
        radius = rng.uniform(*radii, CLUSTER_BATCH)
        centre, member = tree.query(
            shapely.points(seeds[centres]), predicate="dwithin", distance=radius
        )
        order = np.argsort(centre, kind="stable")
        groups = np.split(member[order], np.searchsorted(centre[order], np.arange(1, len(centres))))
        for group in groups:
            group = group[free[group] & (label[group] < 0)][: quota - claimed]
            if len(group):
                label[group] = clusters
                clusters += 1
                claimed += len(group)
            if claimed >= quota:
                break
    return label


def _proprietors(category: str, n: int, world: World, rng: np.random.Generator) -> np.ndarray:
    """A proprietor for each of `n` clusters, from a handful of organisations."""
    if category == "council":
        pool = [world.catalogue.council.name]
    elif category == "crown":
        pool = list(CROWN_BODIES)
    else:
        suffixes = HOUSING_SUFFIXES if category == "housing association" else COMPANY_SUFFIXES
        places = place_names(rng, 8 if category == "housing association" else 60)
        pool = [f"{place} {rng.choice(suffixes)}" for place in places]
    return np.array(pool, dtype=object)[rng.integers(0, len(pool), max(n, 0))]


def _title_numbers(prefixes: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """HM Land Registry style: a local prefix and six digits; distinct while they last
    (one title can cover several parcels anyway)."""
    pool = len(prefixes) * TITLE_NUMBERS_PER_PREFIX
    pick = rng.choice(pool, n, replace=n > pool)
    prefix = np.array(prefixes)[pick // TITLE_NUMBERS_PER_PREFIX]
    digits = (pick % TITLE_NUMBERS_PER_PREFIX + 100_000).astype(str)
    return np.char.add(prefix, digits).astype(object)


def flood_zones(world: World) -> gpd.GeoDataFrame:
    """The rivers buffered by a distance that swells and narrows along each of them; one
    feature per separate part of each zone."""
    rng = world.rng("flood_zones")
    pieces, line, along = _river_pieces(world.watercourses)
    zones, descriptions, parts = [], [], []
    for zone, (low, high), description in FLOOD_ZONES:
        distance = low + (high - low) * _swell(line, along, rng)
        extent = shapely.union_all(shapely.buffer(pieces, distance, quad_segs=4))
        polygons = shapely.get_parts(shapely.intersection(extent, world.inner))
        polygons = polygons[shapely.get_dimensions(polygons) == 2]
        parts.append(polygons)
        zones += [zone] * len(polygons)
        descriptions += [description] * len(polygons)
    return frame({"zone": zones, "description": descriptions}, np.concatenate(parts), world.crs)


def _river_pieces(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short straight pieces of the rivers, the river of each and its distance along it."""
    coords, line = shapely.get_coordinates(
        shapely.segmentize(lines, RIVER_PIECE_M), return_index=True
    )
    same = np.flatnonzero(line[1:] == line[:-1])
    pieces = shapely.linestrings(np.stack([coords[same], coords[same + 1]], axis=1))
    length = np.hypot(*(coords[same + 1] - coords[same]).T)
    line = line[same]
    before = np.cumsum(length) - length
    _, first = np.unique(line, return_index=True)
    along = before - before[first][np.searchsorted(line[first], line)]
    return pieces, line, along


def _swell(line: np.ndarray, along: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Between 0 and 1, varying smoothly along each river (two waves of random length)."""
    rivers = int(line.max()) + 1 if len(line) else 0
    value = np.full(len(line), 0.5)
    for _ in range(2):
        wavelength = rng.uniform(600, 2500, rivers)[line]
        phase = rng.uniform(0, 2 * np.pi, rivers)[line]
        value += 0.25 * np.sin(2 * np.pi * along / wavelength + phase)
    return value


def make_conservation_areas(world: World) -> gpd.GeoDataFrame:
    """Irregular areas around old centres: host sites (libraries, churches, halls) first,
    then other places where people live, kept apart from each other."""
    rng = world.rng("conservation_areas")
    n = world.count(CONSERVATION_AREAS)
    hosts = shapely.get_coordinates(world.hosts.geometry.to_numpy())
    others, _ = world.points(4 * n, rng)
    centres = _spaced(np.concatenate([hosts[rng.permutation(len(hosts))], others]), n)
    corners = rng.integers(6, 12, len(centres))
    owner = np.repeat(np.arange(len(centres)), corners)
    radius = rng.uniform(120, 380, len(centres))[owner] * np.sqrt(rng.random(len(owner)))
    angle = rng.uniform(0, 2 * np.pi, len(owner))
    points = centres[owner] + radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    hulls = shapely.convex_hull(shapely.multipoints(points, indices=owner))
    areas = shapely.intersection(shapely.buffer(hulls, 25, quad_segs=4), world.inner)
    keep = shapely.area(areas) > 0
    names = [
        place + str(rng.choice(CONSERVATION_SUFFIXES)) for place in place_names(rng, len(centres))
    ]
    span = int((LAST_DESIGNATION - FIRST_DESIGNATION).astype(int))
    designated = FIRST_DESIGNATION + rng.integers(0, span + 1, len(centres)).astype(
        "timedelta64[D]"
    )
    return frame(
        {
            "name": np.array(names, dtype=object)[keep],
            "designated_date": iso_dates(designated[keep]),
        },
        _polygonal(areas[keep]),
        world.crs,
    )


def _spaced(candidates: np.ndarray, n: int) -> np.ndarray:
    """The first `n` candidates (in order) at least the conservation spacing from all the
    ones taken before; fewer when the borough runs out of room."""
    taken: list[np.ndarray] = []
    for point in candidates:
        if len(taken) == n:
            break
        if not taken or np.hypot(*(np.array(taken) - point).T).min() >= CONSERVATION_SPACING_M:
            taken.append(point)
    return np.array(taken).reshape(-1, 2)


def conservation_areas(world: World) -> gpd.GeoDataFrame:
    return world.shared("conservation_areas", make_conservation_areas)


def tree_preservation_orders(world: World) -> gpd.GeoDataFrame:
    """Protected trees in groups of one order each, many in conservation areas; order
    numbers run in the order the orders were made."""
    rng = world.rng("tree_preservation_orders")
    n = world.count(PROTECTED_TREES)
    sizes = rng.geometric(0.45, n)  # trees per order
    orders = int(np.searchsorted(np.cumsum(sizes), n)) + 1
    sizes = sizes[:orders]
    sizes[-1] -= sizes.sum() - n
    in_areas = int((rng.random(orders) < TREES_IN_CONSERVATION_AREAS).sum())
    areas = conservation_areas(world).geometry.to_numpy()
    shapely.prepare(areas)
    share = shapely.area(areas) / shapely.area(areas).sum()
    centres_in, _ = sample_points(areas, rng.multinomial(in_areas, share), rng)
    centres_out, _ = world.points(orders - len(centres_in), rng)
    centres = np.concatenate([centres_in, centres_out])[rng.permutation(orders)]
    order = np.repeat(np.arange(orders), sizes)
    trees = centres[order] + rng.normal(0, 12, (n, 2))
    trees = np.where(world.inside(trees)[:, None], trees, centres[order])

    made = days_before(rng, orders, 60 * 365, 30)
    number = np.empty(orders, dtype=int)
    number[np.argsort(made, kind="stable")] = np.cumsum(rng.integers(1, 3, orders))
    return frame(
        {
            "reference": np.array([f"TPO/{v}" for v in number], dtype=object)[order],
            "species": rng.choice(SPECIES, n).astype(object),
            "made_date": iso_dates(made[order]),
        },
        shapely.points(trees.round(2)),
        world.crs,
    )
