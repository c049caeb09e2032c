"""Generators of the temporal models' synthetic sequences (issue 19), pure numpy, deterministic from a seed.

Each generator takes a ``numpy.random.Generator`` and a length and returns ``(frames, events)``: ``frames``
``[T, C, H, W]`` (uint8 0..255, or float32 for vector sequences ``[T, D]``) and ``events``, a dict of bool
``[T]`` arrays that say what happened at each step (the true boundaries VTA and the HM-RNN are scored against).
:mod:`vaekit.data.video` draws sequence ``i`` of a split from ``default_rng([seed, split, i])``, so every
sequence is fixed by ``(seed, split, i)`` and can be made on demand in any order.

- :func:`moving_mnist`: two MNIST digits bouncing inside a 64x64 frame, the physics of Srivastava et al.
  (2015)'s generator that the Clockwork VAE's data (Saxena et al. 2021, ``moving_mnist_2digit``) was made with:
  each digit starts at a uniform position with a uniform direction, moves ``speed`` of the free range
  (64 - 28 = 36 px) per frame, reflects at the borders, and the digits are combined by a pixel-wise maximum.
  ``events["bounce"]`` marks the frames at which some digit hit a border.
- :func:`shifted_digit`: TD-VAE's sequences as its best-known reproduction makes them (xqding/TD-VAE,
  ``script/prep_data.py``): one MNIST digit binarised by Bernoulli sampling of its grey values, shifted
  cyclically by one pixel per step, left or right for the whole sequence (20 steps, 28x28).
- :func:`oscillator`: a noisy harmonic oscillator (TD-VAE's 1-D experiment, Gregor et al. 2019 sec. 5.1):
  position and velocity follow symplectic-Euler steps of ``p'' = -omega^2 p`` with Gaussian kicks to the
  velocity; the observation is the position plus Gaussian noise. Each sequence has its own frequency.
- :func:`bouncing_balls`: Sutskever, Hinton & Taylor (2008)'s bouncing balls (elastic walls and equal-mass
  elastic collisions in a 10 x 10 box, balls of radius 1.2 rendered as soft discs), in colour: each ball
  changes colour when it hits a wall (the structure VTA, Kim et al. 2019 sec. 5.1, segments). The generator
  records ``events["bounce"]`` (a wall hit, i.e. a colour change), ``events["collision"]`` (two balls).
"""

from __future__ import annotations

import numpy as np

#: Colours of the bouncing balls (RGB in [0, 1]); a ball takes a different one at each wall hit.
PALETTE = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.3, 0.4, 1.0], [1.0, 1.0, 0.2], [1.0, 0.3, 1.0],
                    [0.2, 1.0, 1.0]], dtype=np.float32)


def moving_mnist(digits: np.ndarray, rng: np.random.Generator, length: int, *, num_digits: int = 2,
                 size: int = 64, speed: float = 0.1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``num_digits`` digits drawn from ``digits`` (``[N, h, w]`` uint8) bouncing in a ``size`` x ``size`` frame
    for ``length`` frames: ``(frames uint8 [T, 1, size, size], {"bounce": bool [T]})`` (module docstring)."""
    n, h, w = digits.shape
    if size < max(h, w):
        raise ValueError(f"a {size}x{size} frame cannot hold {h}x{w} digits")
    frames = np.zeros((length, 1, size, size), dtype=np.uint8)
    bounce = np.zeros(length, dtype=bool)
    lim_y, lim_x = size - h, size - w
    for _ in range(num_digits):
        digit = digits[rng.integers(n)]
        y, x = rng.random(), rng.random()  # position as a fraction of the free range
        theta = rng.random() * 2 * np.pi
        vy, vx = np.sin(theta), np.cos(theta)
        for t in range(length):  # Srivastava et al.: move, then reflect at the borders, then draw
            y, x = y + vy * speed, x + vx * speed
            if y <= 0.0 or y >= 1.0:
                y, vy, bounce[t] = min(max(y, 0.0), 1.0), -vy, True
            if x <= 0.0 or x >= 1.0:
                x, vx, bounce[t] = min(max(x, 0.0), 1.0), -vx, True
            top, left = int(lim_y * y), int(lim_x * x)
            window = frames[t, 0, top:top + h, left:left + w]
            np.maximum(window, digit, out=window)
    return frames, {"bounce": bounce}


def shifted_digit(digit: np.ndarray, rng: np.random.Generator, length: int = 20) -> tuple[np.ndarray, dict]:
    """One digit (``[h, w]`` uint8 grey) binarised by Bernoulli sampling, shifted cyclically by one pixel per
    step in one direction: ``(frames uint8 {0, 1} [T, 1, h, w], {})`` (xqding/TD-VAE's data)."""
    binary = (rng.random(digit.shape) < digit / 255.0).astype(np.uint8)
    direction = 1 if rng.random() < 0.5 else -1
    frames = np.stack([np.roll(binary, direction * t, axis=1) for t in range(length)])[:, None]
    return frames, {}


def oscillator(rng: np.random.Generator, length: int, *, dt: float = 0.1, omega: tuple[float, float] = (1.0, 3.0),
               process_noise: float = 0.05, observation_noise: float = 0.1) -> tuple[np.ndarray, dict]:
    """A noisy harmonic oscillator observed for ``length`` steps: ``(x float32 [T, 1], {})`` (module docstring).

    ``omega`` (rad per unit time) is drawn uniformly per sequence, so the period is ``2 pi / (omega dt)``
    steps (21 to 63 with the defaults); position and velocity start uniform in ``[-1, 1]`` (velocity scaled
    by omega); each step ``v += -omega^2 p dt + process_noise * N(0, 1)``, then ``p += v dt``.
    """
    w = rng.uniform(*omega)
    p, v = rng.uniform(-1, 1), rng.uniform(-1, 1) * w
    out = np.empty(length, dtype=np.float64)
    kicks = rng.standard_normal(length) * process_noise
    for t in range(length):
        out[t] = p
        v = v - w * w * p * dt + kicks[t]
        p = p + v * dt
    x = out + rng.standard_normal(length) * observation_noise
    return x.astype(np.float32)[:, None], {}


def bouncing_balls(rng: np.random.Generator, length: int, *, balls: int = 2, size: int = 32, box: float = 10.0,
                   radius: float = 1.2, speed: float = 0.5, substeps: int = 2,
                   colour_change: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``balls`` balls in a ``box`` x ``box`` square for ``length`` frames rendered at ``size`` x ``size``:
    ``(frames uint8 [T, 3, size, size], {"bounce": bool [T], "collision": bool [T]})`` (module docstring).

    A frame shows the positions before the step's motion (Sutskever et al.'s order), so an event at step t
    is a wall hit or collision between frames t and t + 1 and the colour change shows from frame t + 1;
    ``events["bounce"][t]`` is recorded at t + 1, the first frame that differs (the segment's first frame).
    """
    r = radius
    for _ in range(1000):  # a start with every ball inside the box and no two overlapping
        pos = r + rng.random((balls, 2)) * (box - 2 * r)
        gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(balls) * 2 * box
        if (gaps > 2 * r).all():
            break
    else:  # pragma: no cover - only with far too many balls for the box
        raise ValueError(f"{balls} balls of radius {r} do not fit a {box} x {box} box")
    vel = rng.standard_normal((balls, 2))
    vel = vel / np.linalg.norm(vel, axis=1, keepdims=True) * speed
    colour = rng.integers(len(PALETTE), size=balls)
    centres = (np.arange(size) + 0.5) / size * box
    gy, gx = np.meshgrid(centres, centres, indexing="ij")
    frames = np.zeros((length, 3, size, size), dtype=np.uint8)
    bounce = np.zeros(length, dtype=bool)
    collision = np.zeros(length, dtype=bool)
    eps = 1.0 / substeps
    for t in range(length):
        img = np.zeros((3, size, size), dtype=np.float32)
        for i in range(balls):
            disc = np.exp(-(((gy - pos[i, 0]) ** 2 + (gx - pos[i, 1]) ** 2) / r**2) ** 4).astype(np.float32)
            img += PALETTE[colour[i]][:, None, None] * disc
        frames[t] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
        hit_wall = False
        for _ in range(substeps):
            pos += eps * vel
            for i in range(balls):
                hit = False
                for d in range(2):
                    if pos[i, d] - r < 0 and vel[i, d] < 0:
                        vel[i, d], hit = -vel[i, d], True
                    if pos[i, d] + r > box and vel[i, d] > 0:
                        vel[i, d], hit = -vel[i, d], True
                if hit:
                    hit_wall = True
                    if colour_change:  # another colour than its own
                        colour[i] = (colour[i] + 1 + rng.integers(len(PALETTE) - 1)) % len(PALETTE)
            for i in range(balls):
                for j in range(i):
                    w = pos[i] - pos[j]
                    dist = np.linalg.norm(w)
                    if dist < 2 * r and dist > 0:
                        w = w / dist
                        vi, vj = w @ vel[i], w @ vel[j]
                        if vi - vj < 0:  # approaching: equal masses exchange their normal components
                            vel[i] += w * (vj - vi)
                            vel[j] += w * (vi - vj)
                            if t + 1 < length:
                                collision[t + 1] = True
        if hit_wall and t + 1 < length:
            bounce[t + 1] = True
    return frames, {"bounce": bounce, "collision": collision}
