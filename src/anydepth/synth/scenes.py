"""Procedural 3-D scenes with exact depth, rendered by a ray caster (one fused numba loop).

A `Scene` holds planes, axis-aligned boxes and spheres, each with a procedural texture; a
`PinholeCamera` with a pose (camera-to-world rotation R and position c) casts one ray per pixel in
one fused numba loop (about 2 ms for 260x346 with a dozen primitives on 2 cores).
`render` returns the RGB image and the z-depth in metres (distance along the optical axis; inf
where no surface is hit). `Trajectory` gives smooth 6-DoF camera poses over time, so a sequence
can be rendered at a high internal frame rate for the event simulator.

Conventions: world y up; camera looks along its +z, x right, y down (OpenCV); R maps camera
coordinates to world coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from anydepth.errors import InputError

TEXTURES = ("checker", "stripes", "noise", "rings", "plain")
_PHASE = np.array([0.2513, 0.2537, 0.2571])  # off-grid texture phase: faces at round coordinates do not flicker


@dataclass(frozen=True)
class Material:
    """A procedural texture: two colours mixed by a pattern of the hit point's world coordinates."""

    texture: str = "checker"
    colour_a: tuple[float, float, float] = (0.8, 0.8, 0.8)
    colour_b: tuple[float, float, float] = (0.2, 0.2, 0.2)
    scale: float = 0.5  # pattern period in metres
    seed: int = 0

    def __post_init__(self):
        if self.texture not in TEXTURES:
            raise InputError(f"unknown texture {self.texture!r}; choose one of {', '.join(TEXTURES)}")


@dataclass(frozen=True)
class Plane:
    """Points x with n . x = offset (n unit)."""

    normal: tuple[float, float, float]
    offset: float
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box between corners `low` and `high` (metres)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class Scene:
    """Primitives, a directional light (towards the light) and an ambient term."""

    primitives: tuple = ()
    light_direction: tuple[float, float, float] = (-0.3, 0.8, -0.5)
    ambient: float = 0.35


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics in pixels for an image of (height, width)."""

    height: int
    width: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def with_fov(cls, height: int, width: int, horizontal_fov_deg: float = 70.0) -> "PinholeCamera":
        focal = 0.5 * width / math.tan(math.radians(horizontal_fov_deg) / 2)
        return cls(height, width, focal, focal, (width - 1) / 2, (height - 1) / 2)

    def backproject(self, depth_m: np.ndarray) -> np.ndarray:
        """(H, W) z-depth -> (H, W, 3) camera-frame points (x right, y down, z forward)."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return np.stack([(u - self.cx) / self.fx * depth_m, (v - self.cy) / self.fy * depth_m, depth_m], axis=-1)


def look_at(position, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world rotation (3, 3) of a camera at `position` looking at `target` (y down in the image)."""
    position, target, up = (np.asarray(v, dtype=np.float64) for v in (position, target, up))
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


_TEXTURE_IDS = {name: index for index, name in enumerate(TEXTURES)}


def _noise_parameters(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions (4, 3, 3) and phases (4, 3) of the 4 octaves of a material's value noise."""
    generator = np.random.default_rng(seed)
    directions, phases = np.zeros((4, 3, 3)), np.zeros((4, 3))
    for octave in range(4):
        directions[octave] = generator.normal(size=(3, 3))
        phases[octave] = generator.uniform(0, 2 * math.pi, 3)
    return directions, phases


@dataclass(frozen=True)
class CompiledScene:
    """A scene packed into arrays for the ray-casting kernel."""

    kinds: np.ndarray  # (P,) 0 plane, 1 box, 2 sphere
    geometry: np.ndarray  # (P, 6): plane (n, offset, 0, 0), box (low, high), sphere (centre, radius, 0, 0)
    textures: np.ndarray  # (P,) texture id
    colours: np.ndarray  # (P, 6) colour a, colour b
    scales: np.ndarray  # (P,)
    noise_directions: np.ndarray  # (P, 4, 3, 3)
    noise_phases: np.ndarray  # (P, 4, 3)
    light: np.ndarray  # (3,) unit, towards the light
    ambient: float


def compile_scene(scene: Scene) -> CompiledScene:
    count = len(scene.primitives)
    kinds = np.zeros(count, np.int64)
    geometry = np.zeros((count, 6))
    textures = np.zeros(count, np.int64)
    colours = np.zeros((count, 6))
    scales = np.ones(count)
    directions = np.zeros((count, 4, 3, 3))
    phases = np.zeros((count, 4, 3))
    for index, primitive in enumerate(scene.primitives):
        if isinstance(primitive, Plane):
            normal = np.asarray(primitive.normal, dtype=np.float64)
            length = np.linalg.norm(normal)
            kinds[index], geometry[index, :4] = 0, (*(normal / length), primitive.offset / length)
        elif isinstance(primitive, Box):
            kinds[index], geometry[index] = 1, (*primitive.low, *primitive.high)
        elif isinstance(primitive, Sphere):
            kinds[index], geometry[index, :4] = 2, (*primitive.centre, primitive.radius)
        else:
            raise InputError(f"unknown primitive {type(primitive).__name__}")
        material = primitive.material
        textures[index] = _TEXTURE_IDS[material.texture]
        colours[index] = (*material.colour_a, *material.colour_b)
        scales[index] = material.scale
        directions[index], phases[index] = _noise_parameters(material.seed)
    light = np.asarray(scene.light_direction, dtype=np.float64)
    return CompiledScene(kinds, geometry, textures, colours, scales, directions, phases, light / np.linalg.norm(light),
                         float(scene.ambient))


@numba.njit(cache=True, parallel=True, fastmath=True)
def _ray_cast(rotation, origin, fx, fy, cx, cy, kinds, geometry, textures, colours, scales, noise_directions,
              noise_phases, light, ambient, phase, rgb, depth):
    height, width = depth.shape
    count = kinds.shape[0]
    for row in numba.prange(height):
        for col in range(width):
            cam0, cam1 = (col - cx) / fx, (row - cy) / fy
            d0 = rotation[0, 0] * cam0 + rotation[0, 1] * cam1 + rotation[0, 2]
            d1 = rotation[1, 0] * cam0 + rotation[1, 1] * cam1 + rotation[1, 2]
            d2 = rotation[2, 0] * cam0 + rotation[2, 1] * cam1 + rotation[2, 2]
            best = np.inf
            hit = -1
            best_axis = 0
            for k in range(count):
                g = geometry[k]
                t = np.inf
                axis = 0
                if kinds[k] == 0:
                    denominator = g[0] * d0 + g[1] * d1 + g[2] * d2
                    if abs(denominator) > 1e-12:
                        t = (g[3] - (g[0] * origin[0] + g[1] * origin[1] + g[2] * origin[2])) / denominator
                        if t <= 1e-6:
                            t = np.inf
                elif kinds[k] == 1:
                    t_near, t_far = -np.inf, np.inf
                    for a in range(3):
                        da = d0 if a == 0 else (d1 if a == 1 else d2)
                        if abs(da) < 1e-12:
                            if origin[a] < g[a] or origin[a] > g[a + 3]:
                                t_near, t_far = np.inf, -np.inf
                            continue
                        t1, t2 = (g[a] - origin[a]) / da, (g[a + 3] - origin[a]) / da
                        low, high = min(t1, t2), max(t1, t2)
                        if low > t_near:
                            t_near, axis = low, a
                        t_far = min(t_far, high)
                    if t_far >= t_near and t_near > 1e-6:
                        t = t_near
                else:
                    o0, o1, o2 = origin[0] - g[0], origin[1] - g[1], origin[2] - g[2]
                    a_ = d0 * d0 + d1 * d1 + d2 * d2
                    b_ = 2 * (d0 * o0 + d1 * o1 + d2 * o2)
                    c_ = o0 * o0 + o1 * o1 + o2 * o2 - g[3] * g[3]
                    disc = b_ * b_ - 4 * a_ * c_
                    if disc >= 0:
                        root = np.sqrt(disc)
                        t = (-b_ - root) / (2 * a_)
                        if t <= 1e-6:
                            t = (-b_ + root) / (2 * a_)
                        if t <= 1e-6:
                            t = np.inf
                if t < best:
                    best, hit, best_axis = t, k, axis
            depth[row, col] = best  # the ray has camera-z 1: the distance parameter is the z-depth
            if hit < 0:
                rgb[row, col, 0] = rgb[row, col, 1] = rgb[row, col, 2] = 0.0
                continue
            p0, p1, p2 = origin[0] + best * d0, origin[1] + best * d1, origin[2] + best * d2
            g = geometry[hit]
            if kinds[hit] == 0:
                n0, n1, n2 = g[0], g[1], g[2]
            elif kinds[hit] == 1:
                n0 = n1 = n2 = 0.0
                if best_axis == 0:
                    n0 = -1.0 if d0 > 0 else 1.0
                elif best_axis == 1:
                    n1 = -1.0 if d1 > 0 else 1.0
                else:
                    n2 = -1.0 if d2 > 0 else 1.0
            else:
                n0, n1, n2 = (p0 - g[0]) / g[3], (p1 - g[1]) / g[3], (p2 - g[2]) / g[3]
            if n0 * d0 + n1 * d1 + n2 * d2 > 0:
                n0, n1, n2 = -n0, -n1, -n2
            shade = ambient + (1 - ambient) * max(n0 * light[0] + n1 * light[1] + n2 * light[2], 0.0)
            u0, u1, u2 = p0 / scales[hit] + phase[0], p1 / scales[hit] + phase[1], p2 / scales[hit] + phase[2]
            texture = textures[hit]
            mix = 0.0
            if texture == 0:
                mix = (np.floor(u0) + np.floor(u1) + np.floor(u2)) % 2.0
            elif texture == 1:
                mix = 0.5 + 0.5 * np.sin(2 * np.pi * (u0 + 0.7 * u2))
            elif texture == 3:
                mix = 0.5 + 0.5 * np.sin(2 * np.pi * np.sqrt(u0 * u0 + u2 * u2))
            elif texture == 2:
                total = 0.0
                for octave in range(4):
                    frequency = 2.0 ** octave
                    product = 1.0
                    for j in range(3):
                        m = noise_directions[hit, octave]
                        product *= np.sin(frequency * (u0 * m[0, j] + u1 * m[1, j] + u2 * m[2, j]) + noise_phases[hit, octave, j])
                    total += product / frequency
                mix = min(max(0.5 + 0.5 * total / 1.2, 0.0), 1.0)
            for c in range(3):
                value = (colours[hit, c] * (1 - mix) + colours[hit, c + 3] * mix) * shade
                rgb[row, col, c] = min(max(value, 0.0), 1.0)


def render(scene: Scene | CompiledScene, camera: PinholeCamera, rotation, position) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one view (one fused numba loop over pixels, in parallel over rows).
    rotation (3, 3) camera-to-world, position (3,) metres. Returns rgb (H, W, 3) float32 in [0, 1]
    and depth_m (H, W) float32 (z-depth; inf where nothing is hit)."""
    compiled = scene if isinstance(scene, CompiledScene) else compile_scene(scene)
    rgb = np.empty((camera.height, camera.width, 3), np.float32)
    depth_m = np.empty((camera.height, camera.width), np.float32)
    _ray_cast(np.asarray(rotation, np.float64), np.asarray(position, np.float64), camera.fx, camera.fy, camera.cx,
              camera.cy, compiled.kinds, compiled.geometry, compiled.textures, compiled.colours, compiled.scales,
              compiled.noise_directions, compiled.noise_phases, compiled.light, compiled.ambient, _PHASE, rgb, depth_m)
    return rgb, depth_m


@dataclass(frozen=True)
class Trajectory:
    """Smooth 6-DoF motion: position = start + velocity t + sum of sinusoids (amplitude, period);
    orientation = look direction `heading` (yaw, pitch in degrees) plus sinusoidal yaw, pitch and
    roll wobble. `pose(t_s)` -> (rotation (3, 3) camera-to-world, position (3,))."""

    start: tuple[float, float, float] = (0.0, 1.5, 0.0)
    velocity: tuple[float, float, float] = (0.0, 0.0, 1.0)
    sway: tuple[float, float, float] = (0.3, 0.1, 0.0)
    sway_period_s: float = 2.0
    heading_deg: tuple[float, float] = (0.0, -5.0)
    wobble_deg: tuple[float, float, float] = (4.0, 2.0, 1.5)
    wobble_period_s: float = 1.5

    def pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        phase = 2 * math.pi * t_s / self.sway_period_s
        position = np.asarray(self.start) + np.asarray(self.velocity) * t_s + np.asarray(self.sway) * np.array(
            [math.sin(phase), math.sin(2 * phase), math.cos(phase)])
        wobble = 2 * math.pi * t_s / self.wobble_period_s
        yaw = math.radians(self.heading_deg[0] + self.wobble_deg[0] * math.sin(wobble))
        pitch = math.radians(self.heading_deg[1] + self.wobble_deg[1] * math.sin(1.3 * wobble))
        roll = math.radians(self.wobble_deg[2] * math.sin(0.7 * wobble))
        return _rotation(yaw, pitch, roll), position


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation for a camera looking along world +z turned by yaw (about y),
    pitch (about x, positive up) and roll (about the view axis)."""
    base = np.diag([1.0, -1.0, 1.0])  # camera y down, world y up
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    pitch_m = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    roll_m = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return yaw_m @ pitch_m @ base @ roll_m


def random_scene(seed: int = 0, depth_range_m: tuple[float, float] = (2.0, 30.0), objects: int = 10) -> Scene:
    """A seeded street/room-like scene in front of a camera near the origin looking along +z:
    textured ground, side walls, a back wall at the far end of `depth_range_m`, and `objects` boxes
    and spheres scattered over the depth range with random textures and colours."""
    rng = np.random.default_rng(seed)
    near, far = depth_range_m
    if not 0 < near < far:
        raise InputError(f"depth range must satisfy 0 < near < far, got {depth_range_m}")

    def material(unit: float) -> Material:
        return Material(str(rng.choice(TEXTURES[:4])), tuple(rng.uniform(0.3, 1.0, 3)), tuple(rng.uniform(0.0, 0.5, 3)),
                        float(rng.uniform(0.15, 1.2)) * unit, int(rng.integers(1 << 30)))

    span = far - near
    unit = span / 28.0  # object sizes and texture periods follow the depth range (street or desk)
    half_width = max(4.0 * unit, 0.45 * far)
    primitives = [
        Plane((0.0, 1.0, 0.0), 0.0, Material("checker", (0.75, 0.72, 0.65), (0.25, 0.24, 0.22), float(rng.uniform(0.5, 1.5)) * unit)),
        Plane((1.0, 0.0, 0.0), -half_width, material(unit)),
        Plane((1.0, 0.0, 0.0), half_width, material(unit)),
        Plane((0.0, 0.0, 1.0), far + 4.0 * unit, material(unit)),
    ]
    for _ in range(objects):
        z = rng.uniform(near + 0.05 * span, far)
        x = rng.uniform(-0.8, 0.8) * min(half_width, 0.6 * z)
        size = rng.uniform(0.3, 1.2) * unit * (1 + z / far)
        if rng.random() < 0.5:
            primitives.append(Box((x - size, 0.0, z - size), (x + size, rng.uniform(0.5, 2.5) * size * 2, z + size), material(unit)))
        else:
            primitives.append(Sphere((x, size + rng.uniform(0, 1.5) * unit, z), size, material(unit)))
    return Scene(tuple(primitives), tuple(rng.uniform([-0.6, 0.5, -0.8], [0.6, 1.0, -0.2])), float(rng.uniform(0.25, 0.45)))


def render_sequence(scene: Scene, camera: PinholeCamera, trajectory: Trajectory, duration_s: float, fps: float):
    """Yield (t_us, rgb (H, W, 3) float32, depth_m (H, W) float32) every 1/fps seconds over
    [0, duration_s)."""
    compiled = compile_scene(scene)
    count = int(round(duration_s * fps))
    for index in range(count):
        t_s = index / fps
        rotation, position = trajectory.pose(t_s)
        rgb, depth_m = render(compiled, camera, rotation, position)
        yield int(round(t_s * 1e6)), rgb, depth_m
