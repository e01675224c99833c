"""The pose prior of the synthetic scenes: per-joint anatomical limits, pose families, a self-intersection check.

Owns `JOINT_LIMITS` (Euler ranges for the 24 SMPL joints), `FAMILIES` (standing, walking, running,
sitting, crouching, bending, arms_raised, throwing, kicking, lying), `sample_pose(rng, family)` and
`self_intersects(joints)`.

Convention (body frame: x = the body's left, y up, z forward; SMPL T-pose rest): a joint's local rotation
is built from Euler angles (a, b, c) as R = Rx(a) @ Ry(b) @ Rz(c) (scipy's intrinsic "XYZ"), then clipped to
`JOINT_LIMITS` and stored as axis-angle. Useful signs: hip flexion (thigh forward) a < 0; knee flexion a > 0;
spine / neck bending forward a > 0; shoulders: lowering the left arm c < 0 (right c > 0), then a swings the
hanging arm (a < 0 forward); elbow flexion: left b < 0, right b > 0.
The root rotation `pose[0]` returned here is in the body frame (yaw about y, and for 'lying' the body laid
down); `scene.py` composes it with the camera rotation.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["JOINTS", "JOINT_LIMITS", "FAMILIES", "COMMON_FAMILIES", "ATHLETIC_FAMILIES", "euler_to_axis_angle",
           "sample_pose", "self_intersects", "limb_segments"]

JOINTS = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
          "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
          "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
          "right_hand")
J = {n: i for i, n in enumerate(JOINTS)}
_D = np.deg2rad

# (a_min, a_max), (b_min, b_max), (c_min, c_max) in degrees for R = Rx(a) Ry(b) Rz(c); left side, the right
# side mirrors b and c. Ranges are the usual clinical joint ranges of motion, a little tightened.
_LEFT_LIMITS = {
    "hip": ((-125, 30), (-45, 40), (-45, 30)),          # flexion/extension, rotation, abduction (c > 0 out)
    "knee": ((0, 150), (-10, 10), (-5, 5)),
    "ankle": ((-35, 45), (-20, 20), (-25, 25)),
    "foot": ((-20, 20), (-5, 5), (-5, 5)),
    "collar": ((-15, 15), (-20, 20), (-10, 25)),
    "shoulder": ((-175, 60), (-90, 60), (-95, 90)),    # c: -95 arm down .. +90 arm up (left)
    "elbow": ((-10, 10), (-150, 0), (-10, 10)),
    "wrist": ((-40, 40), (-30, 30), (-70, 70)),
    "hand": ((-10, 10), (-10, 10), (-10, 10)),
}
_CENTRE_LIMITS = {
    "spine1": ((-25, 45), (-30, 30), (-25, 25)),
    "spine2": ((-20, 35), (-25, 25), (-20, 20)),
    "spine3": ((-15, 30), (-25, 25), (-15, 15)),
    "neck": ((-35, 45), (-50, 50), (-25, 25)),
    "head": ((-25, 30), (-35, 35), (-20, 20)),
}


def _limits_table() -> np.ndarray:
    table = np.zeros((24, 3, 2))
    table[0] = [(-180, 180)] * 3
    for name, lim in _CENTRE_LIMITS.items():
        table[J[name]] = lim
    for part, lim in _LEFT_LIMITS.items():
        lim = np.asarray(lim, np.float64)
        table[J["left_" + part]] = lim
        right = lim.copy()
        right[1:] = -lim[1:, ::-1]          # mirror: b and c change sign
        table[J["right_" + part]] = right
    return _D(table)


JOINT_LIMITS = _limits_table()  # [24, 3 (a, b, c), 2 (min, max)] radians

FAMILIES = ("standing", "walking", "running", "sitting", "crouching", "bending", "arms_raised", "throwing",
            "kicking", "lying")
COMMON_FAMILIES = ("standing", "walking", "sitting", "crouching", "bending", "arms_raised", "lying")
ATHLETIC_FAMILIES = ("running", "throwing", "kicking")


def euler_to_axis_angle(euler: np.ndarray) -> np.ndarray:
    """[..., 3] (a, b, c) rad with R = Rx(a) Ry(b) Rz(c) -> [..., 3] axis-angle."""
    e = np.asarray(euler, np.float64)
    return Rotation.from_euler("XYZ", e.reshape(-1, 3)).as_rotvec().reshape(e.shape)


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _arms_down(e, rng, spread=(60, 85)):
    """Arms hanging at the sides (shoulder c about -/+75 deg) with a little swing and elbow bend."""
    for side, s in (("left", 1), ("right", -1)):
        e[J[f"{side}_shoulder"]] = _D([_u(rng, -20, 15), s * _u(rng, -10, 10), -s * _u(rng, *spread)])
        e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, 0, 35), 0])


def _stride(e, rng, amp, knee_amp, arm_amp, elbow):
    """Gait: one thigh forward, the other back, opposite arm swing."""
    ph = rng.choice([-1.0, 1.0]) * _u(rng, 0.4, 1.0)
    hip = ph * amp
    e[J["left_hip"]] = _D([-hip, 0, _u(rng, -3, 5)])
    e[J["right_hip"]] = _D([hip, 0, -_u(rng, -3, 5)])
    front_knee, back_knee = _u(rng, 0, knee_amp * 0.4), _u(rng, knee_amp * 0.4, knee_amp)
    e[J["left_knee"]] = _D([front_knee if hip > 0 else back_knee, 0, 0])
    e[J["right_knee"]] = _D([back_knee if hip > 0 else front_knee, 0, 0])
    e[J["left_ankle"]] = _D([_u(rng, -10, 15), 0, 0])
    e[J["right_ankle"]] = _D([_u(rng, -10, 15), 0, 0])
    for side, s, sign in (("left", 1, 1.0), ("right", -1, -1.0)):
        swing = sign * ph * arm_amp                      # left arm swings back when the left leg is forward
        e[J[f"{side}_shoulder"]] = _D([swing, 0, -s * _u(rng, 65, 82)])
        e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, *elbow), 0])


def _family_euler(family: str, rng) -> np.ndarray:
    """[24, 3] Euler angles (rad) of a family member; pose[0] is set by `sample_pose`."""
    e = np.zeros((24, 3))
    if family == "standing":
        _arms_down(e, rng, (55, 88))
        for side, s in (("left", 1), ("right", -1)):
            e[J[f"{side}_hip"]] = _D([_u(rng, -12, 8), s * _u(rng, -10, 10), s * _u(rng, -2, 10)])
            e[J[f"{side}_knee"]] = _D([_u(rng, 0, 12), 0, 0])
        if rng.random() < 0.4:  # one hand raised or on the hip
            side, s = (("left", 1), ("right", -1))[rng.integers(2)]
            e[J[f"{side}_shoulder"]] = _D([_u(rng, -90, 0), s * _u(rng, -30, 20), -s * _u(rng, 20, 60)])
            e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, 30, 120), 0])
    elif family == "walking":
        _stride(e, rng, 25, 45, 30, (5, 35))
    elif family == "running":
        _stride(e, rng, 45, 110, 55, (70, 110))
        e[J["spine1"]] = _D([_u(rng, 5, 15), 0, 0])
    elif family == "sitting":
        _arms_down(e, rng, (55, 80))
        for side, s in (("left", 1), ("right", -1)):
            e[J[f"{side}_hip"]] = _D([_u(rng, -100, -75), s * _u(rng, -10, 10), s * _u(rng, 0, 15)])
            e[J[f"{side}_knee"]] = _D([_u(rng, 70, 110), 0, 0])
            e[J[f"{side}_shoulder"]] = _D([_u(rng, -50, -10), 0, -s * _u(rng, 60, 80)])
            e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, 20, 60), 0])
    elif family == "crouching":
        for side, s in (("left", 1), ("right", -1)):
            e[J[f"{side}_hip"]] = _D([_u(rng, -125, -95), 0, s * _u(rng, 10, 25)])
            e[J[f"{side}_knee"]] = _D([_u(rng, 110, 145), 0, 0])
            e[J[f"{side}_ankle"]] = _D([_u(rng, 10, 30), 0, 0])
            # arms reach forward over the knees (hanging arms would pass through the raised thighs)
            e[J[f"{side}_shoulder"]] = _D([_u(rng, -100, -65), 0, -s * _u(rng, 25, 60)])
            e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, 10, 60), 0])
        e[J["spine1"]] = _D([_u(rng, 15, 35), 0, 0])
        e[J["spine2"]] = _D([_u(rng, 5, 20), 0, 0])
    elif family == "bending":
        _arms_down(e, rng, (60, 85))
        e[J["spine1"]] = _D([_u(rng, 20, 45), _u(rng, -10, 10), 0])
        e[J["spine2"]] = _D([_u(rng, 10, 30), 0, 0])
        e[J["spine3"]] = _D([_u(rng, 5, 20), 0, 0])
        e[J["neck"]] = _D([_u(rng, -30, 0), 0, 0])
        hip = _u(rng, -70, -20)
        for side in ("left", "right"):
            e[J[f"{side}_hip"]] = _D([hip + _u(rng, -5, 5), 0, 0])
            e[J[f"{side}_knee"]] = _D([_u(rng, 0, 30), 0, 0])
            e[J[f"{side}_shoulder"]][0] = _D(_u(rng, -60, -10))
    elif family == "arms_raised":
        for side, s in (("left", 1), ("right", -1)):
            e[J[f"{side}_shoulder"]] = _D([_u(rng, -40, 20), s * _u(rng, -20, 20), s * _u(rng, 30, 88)])
            e[J[f"{side}_elbow"]] = _D([0, -s * _u(rng, 0, 60), 0])
            e[J[f"{side}_hip"]] = _D([_u(rng, -10, 5), 0, s * _u(rng, 0, 12)])
        e[J["neck"]] = _D([_u(rng, -25, 5), 0, 0])
    elif family == "throwing":
        s = rng.choice([-1.0, 1.0])                         # +1: left-handed throw
        arm, other = ("left", "right") if s > 0 else ("right", "left")
        e[J[f"{arm}_shoulder"]] = _D([_u(rng, 10, 50), s * _u(rng, 20, 60), s * _u(rng, 20, 70)])
        e[J[f"{arm}_elbow"]] = _D([0, -s * _u(rng, 60, 120), 0])
        e[J[f"{other}_shoulder"]] = _D([_u(rng, -100, -50), 0, s * _u(rng, -20, 10)])
        e[J[f"{other}_elbow"]] = _D([0, s * _u(rng, 10, 60), 0])
        e[J["spine2"]] = _D([_u(rng, -5, 15), s * _u(rng, 10, 25), 0])
        e[J["spine3"]] = _D([0, s * _u(rng, 5, 20), 0])
        e[J["left_hip"]] = _D([_u(rng, -50, -10), 0, _u(rng, 5, 20)])
        e[J["right_hip"]] = _D([_u(rng, 0, 25), 0, -_u(rng, 5, 20)])
        e[J["left_knee"]] = _D([_u(rng, 10, 40), 0, 0])
        e[J["right_knee"]] = _D([_u(rng, 0, 30), 0, 0])
    elif family == "kicking":
        s = rng.choice([-1.0, 1.0])
        kick, stand = ("left", "right") if s > 0 else ("right", "left")
        e[J[f"{kick}_hip"]] = _D([_u(rng, -100, -50), 0, s * _u(rng, 0, 20)])
        e[J[f"{kick}_knee"]] = _D([_u(rng, 0, 60), 0, 0])
        e[J[f"{kick}_ankle"]] = _D([_u(rng, -30, 10), 0, 0])
        e[J[f"{stand}_hip"]] = _D([_u(rng, -10, 10), 0, 0])
        e[J[f"{stand}_knee"]] = _D([_u(rng, 0, 25), 0, 0])
        e[J["spine1"]] = _D([_u(rng, -20, 0), 0, 0])
        for side, t in (("left", 1), ("right", -1)):
            e[J[f"{side}_shoulder"]] = _D([_u(rng, -40, 20), 0, -t * _u(rng, 10, 50)])
            e[J[f"{side}_elbow"]] = _D([0, -t * _u(rng, 10, 70), 0])
    elif family == "lying":
        _arms_down(e, rng, (10, 85))
        for side, s in (("left", 1), ("right", -1)):
            e[J[f"{side}_hip"]] = _D([_u(rng, -60, 10), 0, s * _u(rng, 0, 25)])
            e[J[f"{side}_knee"]] = _D([_u(rng, 0, 80), 0, 0])
    else:
        raise ValueError(f"unknown pose family {family!r}; choose from {FAMILIES}")
    return e


def limb_segments(joints: np.ndarray):
    """Capsules (name, p0 [3], p1 [3], radius m) of the limbs and torso from posed joints [24, 3] (metres)."""
    j = np.asarray(joints, np.float64)
    caps = [("torso", j[J["pelvis"]], j[J["neck"]], 0.11), ("head", j[J["head"]], j[J["head"]] + 0.0, 0.09)]
    for side in ("left", "right"):
        caps += [(f"{side}_upper_arm", j[J[f"{side}_shoulder"]], j[J[f"{side}_elbow"]], 0.04),
                 (f"{side}_forearm", j[J[f"{side}_elbow"]], j[J[f"{side}_wrist"]], 0.035),
                 (f"{side}_hand", j[J[f"{side}_wrist"]], j[J[f"{side}_hand"]], 0.035),
                 (f"{side}_thigh", j[J[f"{side}_hip"]], j[J[f"{side}_knee"]], 0.065),
                 (f"{side}_shin", j[J[f"{side}_knee"]], j[J[f"{side}_ankle"]], 0.045),
                 (f"{side}_foot", j[J[f"{side}_ankle"]], j[J[f"{side}_foot"]], 0.04)]
    return caps


# Pairs of capsules that must not interpenetrate (non-adjacent along the kinematic chain).
_CHECK_PAIRS = tuple(
    [(f"{s}_{a}", "torso") for s in ("left", "right") for a in ("forearm", "hand")]
    + [(f"{s}_{a}", "head") for s in ("left", "right") for a in ("forearm", "hand", "thigh", "shin", "foot")]
    + [("torso", f"{s}_{a}") for s in ("left", "right") for a in ("shin", "foot")]
    + [(f"left_{a}", f"right_{b}") for a in ("thigh", "shin", "foot", "forearm", "hand")
       for b in ("thigh", "shin", "foot", "forearm", "hand")]
    + [(f"{s}_{a}", f"{t}_{b}") for s in ("left", "right") for t in ("left", "right")
       for a in ("forearm", "hand") for b in ("thigh", "shin", "foot")])


def _segment_distance(p0, p1, q0, q1) -> float:
    """Shortest distance between segments p0-p1 and q0-q1 (sampled: 16 x 16 points, exact enough at cm scale)."""
    t = np.linspace(0.0, 1.0, 16)[:, None]
    a = p0 + t * (p1 - p0)
    b = q0 + t * (q1 - q0)
    return float(np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min())


def self_intersects(joints: np.ndarray, slack: float = 0.01) -> bool:
    """True if two non-adjacent limb capsules (see `limb_segments`) overlap by more than `slack` metres.

    A cheap gross-penetration test on joint positions [24, 3] (e.g. a hand inside the torso, crossed
    thighs through each other); touching surfaces (hands on thighs while sitting) pass.
    """
    caps = {name: (p0, p1, r) for name, p0, p1, r in limb_segments(joints)}
    for a, b in _CHECK_PAIRS:
        pa0, pa1, ra = caps[a]
        pb0, pb1, rb = caps[b]
        if _segment_distance(pa0, pa1, pb0, pb1) < ra + rb - slack:
            return True
    return False


def _root_rotation(family: str, rng) -> np.ndarray:
    """Body-frame root rotation matrix: full yaw, a small lean; 'lying' lays the body on its back, front
    or side on the ground (y up stays the world vertical)."""
    yaw = Rotation.from_euler("y", rng.uniform(0, 2 * np.pi))
    if family == "lying":
        lay = rng.choice(["back", "front", "left", "right"])
        tilt = {"back": Rotation.from_euler("x", -90, degrees=True), "front": Rotation.from_euler("x", 90, degrees=True),
                "left": Rotation.from_euler("xz", [-90, 90], degrees=True),
                "right": Rotation.from_euler("xz", [-90, -90], degrees=True)}[lay]
        return (yaw * tilt).as_matrix()
    lean = Rotation.from_euler("xz", rng.uniform(-6, 6, 2), degrees=True)
    return (yaw * lean).as_matrix()


def sample_pose(rng: np.random.Generator, family: str, forward_joints=None, max_tries: int = 20,
                noise_deg: float = 4.0):
    """A body-frame pose of `family`: [24, 3] axis-angle (rad), root = body-frame yaw/laying rotation.

    Every joint gets Gaussian jitter (`noise_deg`), then Euler angles are clipped to `JOINT_LIMITS`.
    forward_joints: callable pose [24, 3] -> joints [24, 3] (the body model); when given, poses whose limb
    capsules interpenetrate (`self_intersects`) are resampled (up to `max_tries`, then a standing pose).
    Returns (pose [24, 3] float64, tries used).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown pose family {family!r}; choose from {FAMILIES}")
    for attempt in range(1, max_tries + 1):
        fam = family if attempt < max_tries else "standing"
        e = _family_euler(fam, rng)
        e[1:] += _D(rng.normal(0.0, noise_deg, (23, 3)))
        e[1:] = np.clip(e[1:], JOINT_LIMITS[1:, :, 0], JOINT_LIMITS[1:, :, 1])
        pose = euler_to_axis_angle(e)
        pose[0] = Rotation.from_matrix(_root_rotation(fam, rng)).as_rotvec()
        if forward_joints is None or not self_intersects(forward_joints(pose)):
            return pose, attempt
    return pose, max_tries
