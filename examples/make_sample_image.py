"""Render examples/sample.png: a small procedural scene (textured floor, back wall, three spheres)
ray-cast with numpy, so that the README's first command has an image with an obvious depth order.

    python examples/make_sample_image.py   # rewrites examples/sample.png
"""

from pathlib import Path

import cv2
import numpy as np

HEIGHT, WIDTH, FOCAL = 480, 640, 520.0


def render() -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rays = np.stack([(u - WIDTH / 2) / FOCAL, -(v - HEIGHT / 2) / FOCAL, np.ones_like(u)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    depth = np.full((HEIGHT, WIDTH), np.inf)
    colour = np.zeros((HEIGHT, WIDTH, 3))
    light = np.array([-0.4, 0.8, -0.45])
    light /= np.linalg.norm(light)

    def hit(t, rgb, normal):
        z = t * rays[..., 2]
        closer = np.isfinite(t) & (t > 0) & (z < depth)
        depth[closer] = z[closer]
        shade = 0.35 + 0.65 * np.clip((normal * light).sum(-1), 0, 1)
        colour[closer] = (rgb * shade[..., None])[closer]

    # floor y = -1.2, checkerboard
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -1.2 / rays[..., 1]
    t[rays[..., 1] >= 0] = np.inf
    point = rays * t[..., None]
    checker = (np.floor(point[..., 0] / 0.6) + np.floor(point[..., 2] / 0.6)) % 2
    floor_rgb = np.where(checker[..., None] > 0, [0.85, 0.8, 0.7], [0.35, 0.3, 0.25])
    hit(t, floor_rgb, np.broadcast_to([0.0, 1.0, 0.0], rays.shape))
    # back wall z = 9, vertical stripes
    t = 9.0 / rays[..., 2]
    point = rays * t[..., None]
    stripes = 0.5 + 0.5 * np.sin(point[..., 0] * 4.0)
    wall_rgb = np.stack([0.45 + 0.3 * stripes, 0.55 + 0.2 * stripes, 0.75 * np.ones_like(stripes)], axis=-1)
    hit(t, wall_rgb, np.broadcast_to([0.0, 0.0, -1.0], rays.shape))
    # spheres: centre, radius, colour
    for centre, radius, rgb in [((-1.3, -0.5, 3.2), 0.7, (0.9, 0.25, 0.2)), ((0.9, -0.3, 5.0), 0.9, (0.2, 0.6, 0.9)),
                                ((2.6, 0.4, 7.5), 1.2, (0.3, 0.8, 0.35))]:
        centre = np.asarray(centre)
        b = (rays * centre).sum(-1)
        disc = b**2 - (centre @ centre - radius**2)
        with np.errstate(invalid="ignore"):
            t = np.where(disc > 0, b - np.sqrt(disc), np.inf)
        normal = rays * t[..., None] - centre
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
        hit(t, np.asarray(rgb), normal)
    image = (np.clip(colour, 0, 1) * 255).round().astype(np.uint8)[..., ::-1]  # BGR
    return image, depth.astype(np.float32)


if __name__ == "__main__":
    with np.errstate(invalid="ignore", divide="ignore"):
        image, depth = render()
    path = Path(__file__).resolve().parent / "sample.png"
    cv2.imwrite(str(path), image)
    print(f"wrote {path} ({WIDTH}x{HEIGHT}; depth {depth.min():.2f}..{depth.max():.2f} m)")
