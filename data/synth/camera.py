"""The camera: a surface warped in perspective into a scene, lighting, exposure and shadows, defocus and motion
blur, low resolution."""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ['CameraSimulator']


class CameraSimulator:
    """Turns a drawn image into a photograph of it, each step as the preset ``params`` asks (an ingredient that is
    off draws nothing from the random stream): ``onto_scene`` (the surface and its words warped into the scene),
    ``photo_effects``, ``camera_blur``, ``low_resolution``; HxWx3 uint8 BGR in and out."""

    def __init__(self, params: dict, image_size: tuple):
        self.params = params
        self.image_size = image_size

    # ----- photo-like ingredients (each draws from the random stream only when switched on)
    def onto_scene(self, rng, scene, surface, ink, lines):
        """Warps the surface (with its words, ink and polygons) into a random quadrilateral inside the scene."""
        height, width = self.image_size
        jitter = self.params['surface_perspective']
        inset = rng.uniform(0.0, 0.25) * np.array([width, height])  # the surface fills 50-100% of each side
        corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
        shrunk = corners + np.sign(corners.mean(0) - corners) * inset
        target = shrunk + rng.uniform(-jitter, jitter, (4, 2)) * np.array([width, height])
        target = np.clip(target + rng.uniform(-1, 1, 2) * inset, 0, [width - 1, height - 1])
        homography = cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32))
        size = (width, height)
        warped = cv2.warpPerspective(surface, homography, size, flags=cv2.INTER_LINEAR)
        cover = cv2.warpPerspective(np.ones((height, width), np.float32), homography, size, flags=cv2.INTER_LINEAR)
        image = (scene * (1 - cover[:, :, None]) + warped * cover[:, :, None]).round().astype(np.uint8)
        ink = cv2.warpPerspective(ink, homography, size, flags=cv2.INTER_LINEAR)
        moved = []
        for line in lines:
            poly = cv2.perspectiveTransform(np.array(line['poly'], np.float64)[None], homography.astype(np.float64))
            moved.append({'poly': np.clip(poly[0], 0, [width - 1, height - 1]).tolist(), 'text': line['text']})
        return image, ink, moved

    def photo_effects(self, rng, image):
        """Lighting (a smooth gain field and a colour cast) and a soft shadow."""
        p = self.params
        height, width = self.image_size
        if p['lighting'] <= 0 and p['shadow_prob'] <= 0:
            return image
        gain = np.ones((height, width), np.float32)
        if p['lighting'] > 0:
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            angle = rng.uniform(0, 2 * math.pi)
            ramp = (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
            cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.3, 1.0) * max(height, width)
            spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
            gain += p['lighting'] * (rng.uniform(-1.5, 1.5) * ramp + rng.uniform(-0.8, 0.8) * spot)
        if p['shadow_prob'] > 0 and rng.random() < p['shadow_prob']:
            shade = np.zeros((height, width), np.float32)
            centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
            points = centre + rng.uniform(-0.7, 0.7, (int(rng.integers(3, 7)), 2)) * np.array([width, height])
            cv2.fillPoly(shade, [cv2.convexHull(points.astype(np.int32))], 1.0)
            shade = cv2.GaussianBlur(shade, (0, 0), float(rng.uniform(2, 12)))
            gain *= 1 - rng.uniform(0.25, 0.6) * shade
        cast = np.ones(3, np.float32)
        if p['lighting'] > 0:  # colour cast and exposure: real photos are often dim (indoor, dusk)
            cast = (rng.uniform(0.85, 1.15, 3) * rng.uniform(0.45, 1.1)).astype(np.float32)
        lit = image.astype(np.float32) * np.clip(gain, 0.15, 2.0)[:, :, None] * cast
        return np.clip(lit, 0, 255).astype(np.uint8)

    def camera_blur(self, rng, image):
        """Defocus (a disk of radius 1-2.5 px) and motion blur (a line of 3-9 px)."""
        p = self.params
        if p['defocus_prob'] > 0 and rng.random() < p['defocus_prob']:
            radius = rng.uniform(1.0, 2.5)
            size = 2 * int(math.ceil(radius)) + 1
            kernel = np.zeros((size, size), np.float32)
            cv2.circle(kernel, (size // 2, size // 2), int(round(radius * 8)), 1.0, -1, cv2.LINE_AA, shift=3)
            image = cv2.filter2D(image, -1, kernel / kernel.sum())
        if p['motion_blur_prob'] > 0 and rng.random() < p['motion_blur_prob']:
            length = int(rng.integers(3, 10))
            angle = rng.uniform(0, math.pi)
            kernel = np.zeros((length, length), np.float32)
            half = (length - 1) / 2
            start = (half - half * math.cos(angle), half - half * math.sin(angle))
            end = (half + half * math.cos(angle), half + half * math.sin(angle))
            cv2.line(
                kernel,
                (int(round(start[0] * 8)), int(round(start[1] * 8))),
                (int(round(end[0] * 8)), int(round(end[1] * 8))),
                1.0,
                1,
                cv2.LINE_AA,
                shift=3,
            )
            image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
        return image

    def low_resolution(self, rng, image):
        """The image shrunk by a factor of 1.5-3 (area average) and enlarged back (bilinear)."""
        if self.params['lowres_prob'] <= 0 or rng.random() >= self.params['lowres_prob']:
            return image
        height, width = image.shape[:2]
        factor = rng.uniform(1.5, 3.0)
        small = (max(1, round(width / factor)), max(1, round(height / factor)))
        shrunk = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        return cv2.resize(shrunk, (width, height), interpolation=cv2.INTER_LINEAR)
