"""What the batched vector envs share: their autoreset modes and the settings they refuse."""

from __future__ import annotations

from gymnasium.vector import AutoresetMode

from ..errors import ScenarioError, check_choice, field_error

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP,
                   AutoresetMode.NEXT_STEP.value: AutoresetMode.NEXT_STEP,
                   AutoresetMode.SAME_STEP.value: AutoresetMode.SAME_STEP}


def check_vector_settings(render_mode, autoreset_mode) -> AutoresetMode:
    """The autoreset mode asked for (`"disabled"`, partial resets, is not offered: the envs
    reset each sub-env themselves); a batched env does not render."""
    if render_mode is not None:
        raise field_error(ScenarioError, "render_mode", render_mode,
                          "the batched env does not render; render one env made with gymnasium.make")
    if isinstance(autoreset_mode, AutoresetMode):
        autoreset_mode = autoreset_mode.value
    check_choice(ScenarioError, "autoreset_mode", autoreset_mode, tuple(AUTORESET_MODES))
    return AUTORESET_MODES[autoreset_mode]
