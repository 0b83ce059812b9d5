"""A memoryless scripted expert for ``s2r/Knob-v0``: the ratchet gait as a pure function of the observation.

``gait_action(obs)`` returns the normalized action of a joint-space PD ratchet gait (fold a fingertip in behind a
fin, push the fin, fold out, swing behind the next fin) with no hidden state: the gait's phase is read from the
fingers' configuration in the observation, so an imitation learner that sees the same observation can copy it
(the scripted ``GaitTurner`` of ``tests/sim/test_knob.py`` keeps a phase, timers and an integrated tip target,
which made its labels inconsistent at states a learner visits). It reads ``obs[0:16]`` only, not the previous
action: a learner that sees the previous action tends to copy it instead ("copycat"), so zero those inputs.

Rules, evaluated every control step (angles in rad, finger frames below):

* a finger whose distal angle is below ``ENGAGED_BELOW_RAD`` is **engaged** (tip between the fins). Its fin is
  the one just ahead of the tip in the turning direction. While that fin has room in the finger's working window
  ``WINDOW_RAD`` (or the goal is within ``NEAR_GOAL_RAD``) the finger **pushes**: the base PD target puts the tip
  on the fin's pushing side with the fin ``lead_rad`` ahead of the knob (capped ``aim_short_rad`` short of the goal).
  Otherwise it **folds out**, its base only damped.
* with no engaged finger, the (finger, fin) pair that allows the longest push is chosen (a function of the knob
  angle, which does not move while no finger touches it); that finger **swings** folded out to ``behind_m``
  behind the fin and **folds in** as its base gets there.
* every other finger folds out; its base swings to 0 only as its tip clears the fins.

Switches that a learner would have to reproduce exactly are blends instead where the gait allows it (fold-in
depth vs base error, base PD weight vs distal angle, push target vs fold-in depth).

Frames: finger 1 is finger 0 turned by 180° about the knob axis, so each finger sees fin k at knob angle +
k · 120° − finger · 180° from its own x axis (the finger itself sits at +90°); + base angle moves its tip
towards −x, turning a fin counter-clockwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import UserError
from sim.knob import DIST_LENGTH_M, FIN_HALF_THICKNESS_M, MOUNT_RADIUS_M, PROX_LENGTH_M, TIP_RADIUS_M, _wrap
from sim.robots import KNOB_SPEC

Q2_ENGAGED_RAD = -0.5  # distal target with the tip between the fins
Q2_RETRACTED_RAD = 0.35  # distal target with the tip folded out, clear of the fins
ENGAGED_BELOW_RAD = -0.2  # a distal angle below this counts as engaged
CLEAR_RAD = (0.15, 0.3)  # base PD weight 0 → 1 as the distal angle goes through this (tip clears the fins)
NEAR_RAD = (0.05, 0.15)  # a swinging finger folds in fully → not at all as its base error goes through this
WINDOW_RAD = (math.radians(53.0), math.radians(127.0))  # fin angles (finger frame) a stroke may use
STROKE_END_RAD = 0.03  # a stroke ends when its fin has less room than this left in the window
KNOB_LOOKAHEAD_S = 1.0 / KNOB_SPEC.control_hz  # predictive_gait_action: knob read one control period ahead
NEAR_GOAL_RAD = 0.08  # |error| below this: the pushing finger holds the fin at the goal
DONE_RAD = 0.05  # |error| below this and no finger engaged: all fold out and wait
KP_NM_RAD, KD_NMS_RAD = 4.0, 0.15  # joint PD gains

Y_ENGAGED_M = MOUNT_RADIUS_M + DIST_LENGTH_M * math.sin(Q2_ENGAGED_RAD)  # radial tip position when engaged
L_EFF_M = PROX_LENGTH_M + DIST_LENGTH_M * math.cos(Q2_ENGAGED_RAD)  # base joint → engaged tip, projected
CONTACT_OFFSET_M = TIP_RADIUS_M + FIN_HALF_THICKNESS_M  # tip centre to fin mid-plane at contact
_LIMITS_NM = [float(t) for t in KNOB_SPEC.action.limits_nm]  # action 1.0 = this torque, per joint


@dataclass(frozen=True)
class GaitShape:
    """The constants that tell the gaits apart."""

    lead_rad: float  # a push aims the fin this far ahead of the knob: sets the turning speed
    behind_m: float  # a swing puts the tip this far behind the fin's pushing side
    aim_short_rad: float  # pushes aim the fin this far short of the goal, on the pushing side
    # > 0: the PD torque saturates smoothly, soft_limit · tanh(τ / soft_limit) in units of the limit, instead
    # of being clipped at the limit; None: clipped
    soft_limit: float | None = None


SLOW = GaitShape(lead_rad=0.12, behind_m=0.02, aim_short_rad=0.0)  # gait_action
# fast_gait_action: a faster turn, with larger base torques. Its fold-in starts nearer the fin and its
# pushes stop short of the goal (inside SUCCESS_TOL_RAD) so that a delayed command's overshoot stays inside
# the tolerance instead of starting a stroke back: each gives it more goals in a row under actuation latency
# and sensor delay. Its torque saturates smoothly below the limit, which a student imitates: fewer steps at the
# limit and less power at high frequency, and no fewer goals (BENCHMARKS.md, session 19).
FAST = GaitShape(lead_rad=0.2, behind_m=0.01, aim_short_rad=0.03, soft_limit=0.9)


def _ramp(x: float, x0: float, x1: float) -> float:
    """0 at ``x0``, 1 at ``x1``, linear in between, clamped (``x0 > x1`` ramps down)."""
    return min(1.0, max(0.0, (x - x0) / (x1 - x0)))


def _fin_angle(knob_rad: float, finger: int, fin: int) -> float:
    """Angle of ``fin`` in ``finger``'s frame, in [0, 2π)."""
    return (knob_rad + fin * 2 * math.pi / 3 - finger * math.pi) % (2 * math.pi)


def _base_for_fin(phi_rad: float, sign: float, extra_m: float = 0.0) -> float:
    """Base angle (rad) that puts the engaged tip on the pushing side of a fin at ``phi_rad`` (finger frame)."""
    x = (Y_ENGAGED_M * math.cos(phi_rad) + sign * CONTACT_OFFSET_M) / math.sin(phi_rad) + sign * extra_m
    return math.asin(max(-0.9, min(0.9, -x / L_EFF_M)))


def _tip_angle(q_base: float, q_dist: float) -> float:
    """Angle of the fingertip about the knob axis in the finger's frame (rad)."""
    x = -(PROX_LENGTH_M + DIST_LENGTH_M * math.cos(q_dist)) * math.sin(q_base)
    y = MOUNT_RADIUS_M + DIST_LENGTH_M * math.sin(q_dist)
    return math.atan2(y, x)


def _room(phi_rad: float, sign: float) -> float:
    """How far (rad) a fin at ``phi_rad`` may still be pushed in direction ``sign`` inside the window."""
    return WINDOW_RAD[1] - phi_rad if sign > 0 else phi_rad - WINDOW_RAD[0]


def _pushed_fin(knob_rad: float, finger: int, q_base: float, q_dist: float, sign: float) -> float | None:
    """Finger-frame angle of the fin just ahead of the tip in direction ``sign`` (None if none within 60°)."""
    psi = _tip_angle(q_base, q_dist)
    best = None
    for fin in range(3):
        phi = _fin_angle(knob_rad, finger, fin)
        ahead = sign * _wrap(phi - psi)
        if -0.05 < ahead < math.pi / 3 and (best is None or ahead < best[0]):
            best = (ahead, phi)
    return None if best is None else best[1]


def gait_action(obs: np.ndarray) -> np.ndarray:
    """Normalized action (4 floats in [-1, 1]) of the memoryless ratchet gait for one Knob-v0 observation."""
    return gait_step(obs, SLOW)[0]


def fast_gait_action(obs: np.ndarray) -> np.ndarray:
    """:func:`gait_action` in the ``FAST`` shape: the same gait, turning faster, robust to delays."""
    return gait_step(obs, FAST)[0]


def predictive_gait_action(obs: np.ndarray) -> np.ndarray:
    """:func:`fast_gait_action` on the knob angle extrapolated ``KNOB_LOOKAHEAD_S`` ahead at the observed knob
    speed (angle error likewise), so that a reading up to a control period old, or a command that lands that much
    late, acts on about where the knob is by then rather than where it was. Joint angles are not extrapolated:
    that only adds damping (``KP · lookahead`` on top of ``KD``), and the joint speeds' noise with it."""
    obs = np.array(obs, dtype=np.float32)  # a copy: the caller's observation is not changed
    if obs.shape == (KNOB_SPEC.obs_dim,) and np.isfinite(obs[8:14]).all():
        knob = math.atan2(float(obs[8]), float(obs[9])) + KNOB_LOOKAHEAD_S * float(obs[10])
        obs[8], obs[9] = math.sin(knob), math.cos(knob)
        obs[13] = _wrap(float(obs[13]) - KNOB_LOOKAHEAD_S * float(obs[10]))
    return gait_step(obs, FAST)[0]


def gait_step(obs: np.ndarray, shape: GaitShape = SLOW) -> tuple[np.ndarray, str]:
    """:func:`gait_action` and the gait phase it read from the observation: ``push`` (a finger pushes a fin),
    ``fold_out`` (stroke over), ``fold_in`` (tip behind the next fin), ``swing`` (to behind the next fin),
    or ``done`` (|error| small, all folded out). ``shape``: the gait's constants."""
    obs = np.asarray(obs)
    if obs.shape != (KNOB_SPEC.obs_dim,) or not np.isfinite(obs[:16]).all():
        raise UserError(
            f"gait_action needs one finite Knob-v0 observation of shape (20,), got shape {obs.shape}"
        )
    q = [float(v) for v in obs[0:4]]
    dq = [float(v) for v in obs[4:8]]
    knob, err = math.atan2(float(obs[8]), float(obs[9])), float(obs[13])
    sign = 1.0 if err > 0 else -1.0
    target = [0.0, Q2_RETRACTED_RAD, 0.0, Q2_RETRACTED_RAD]
    active, mode = -1, "done"  # the finger that pushes or swings this step, and the phase
    # a base's PD weight: other fingers' bases swing (to 0) only as their tips clear the fins
    base_weight = [_ramp(q[1], *CLEAR_RAD), _ramp(q[3], *CLEAR_RAD)]

    engaged = [f for f in (0, 1) if q[2 * f + 1] < ENGAGED_BELOW_RAD]
    pushers = []
    for f in engaged:
        # near the goal a tip may push either way: it holds the fin at the goal from whichever side it is on
        for side in (sign, -sign) if abs(err) < NEAR_GOAL_RAD else (sign,):
            phi = _pushed_fin(knob, f, q[2 * f], q[2 * f + 1], side)
            if phi is not None and (_room(phi, side) > STROKE_END_RAD or abs(err) < NEAR_GOAL_RAD):
                pushers.append((_room(phi, side) if side == sign else -1.0, f, phi, side))
                break
    if pushers:
        _, active, phi, side = max(pushers)
        # the fin's target: lead_rad ahead of the knob (not capped by the window end: a small lead would stall
        # against the knob friction short of it), but no further than aim_short_rad short of the goal on the
        # pushing side; near the goal that is where the tip holds the fin, from whichever side it is on
        if abs(err) >= NEAR_GOAL_RAD:
            gain = sign * min(abs(err) - shape.aim_short_rad, shape.lead_rad)
        else:
            gain = err - side * shape.aim_short_rad
        # blend from the fold-in target (tip behind the fin) to the push as the tip goes in: no jump at the switch
        depth = _ramp(q[2 * active + 1], ENGAGED_BELOW_RAD, Q2_ENGAGED_RAD)
        target[2 * active] = _base_for_fin(phi + depth * gain, side, (1.0 - depth) * shape.behind_m)
        target[2 * active + 1] = Q2_ENGAGED_RAD
        base_weight[active] = 1.0
        mode = "push"
    elif engaged:
        mode = "fold_out"  # stroke over, or the tip is on the wrong side: fold out, bases damped only
        for f in engaged:
            base_weight[f] = 0.0
    elif abs(err) > DONE_RAD:
        # the pair that allows the longest push; some fin is always in the 74° window (candidates are 60° apart)
        fits = []
        for f in (0, 1):
            for fin in range(3):
                phi = _fin_angle(knob, f, fin)
                if WINDOW_RAD[0] <= phi <= WINDOW_RAD[1]:
                    fits.append((min(abs(err), _room(phi, sign)), f, phi))
        _, active, phi = max(fits)
        base = _base_for_fin(phi, sign, shape.behind_m)
        # fold in as the base gets there: a continuous blend, not a switch, so that a learner can follow it
        near = _ramp(abs(q[2 * active] - base), NEAR_RAD[1], NEAR_RAD[0])
        target[2 * active] = base
        target[2 * active + 1] = Q2_RETRACTED_RAD + near * (Q2_ENGAGED_RAD - Q2_RETRACTED_RAD)
        base_weight[active] = max(near, _ramp(q[2 * active + 1], *CLEAR_RAD))
        mode = "fold_in" if near > 0 else "swing"
    tau = []
    for j in range(4):
        w = 1.0 if j % 2 else base_weight[j // 2]
        tau.append(w * KP_NM_RAD * (target[j] - q[j]) - KD_NMS_RAD * dq[j])
    action = np.array([t / lim for t, lim in zip(tau, _LIMITS_NM, strict=True)], dtype=np.float32)
    if shape.soft_limit is not None:
        action = shape.soft_limit * np.tanh(action / shape.soft_limit)
    return np.clip(action, -1.0, 1.0), mode
