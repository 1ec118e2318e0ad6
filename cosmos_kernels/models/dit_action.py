"""Action-conditioned Video2World: ``GeneralDIT`` whose modulation also sees a robot action (docs/COSMOS.md
Part 2, 4.3).

cosmos-predict1's ``ActionConditionalVideoExtendGeneralDIT``
(cosmos_predict1/diffusion/training/networks/general_dit_action.py) is Video2World (x + condition mask
+ padding mask in) with two MLPs on the 7-wide action, ``action_embedder_B_D`` (7 -> 4D -> D) and
``action_embedder_B_3D`` (7 -> 4D -> 3D), GELU(tanh), applied to the first transition ``action[:, 0]``.
Its ``forward_before_blocks`` adds the first to ``timesteps_B_D`` *after* copying it to
``affline_emb_B_D``, the tensor the blocks use, and never reads ``timesteps_B_D`` again; the second goes
to ``adaln_lora_B_3D``. So, as written, only the AdaLN-LoRA (B, 3D) term carries the action and the
B_D MLP is dead weight (its parameters are in the checkpoint and get no gradient). ``"predict1"`` (the
default) mirrors that exactly.

NVIDIA NeMo's ``DiTCrossAttentionActionExtendModel7B`` (nemo/collections/diffusion/models/dit/
dit_model_7b.py, action_control/action_control_layers.py) adds its MLP (7 -> D -> D, exact GELU) to
the embedding before ``affline_norm``, where it takes effect, and its 7 -> 4D -> 3D MLP to the
AdaLN-LoRA term; ``action_conditioning="nemo"`` builds that, under the same module names here.

Actions are what Cosmos's Bridge dataset yields, (B, T-1, 7) per clip = [end-effector xyz delta in the
previous end-effector frame (3), relative roll-pitch-yaw (3), gripper (1)], multiplied by
:data:`ACTION_SCALE` (cosmos_predict1/diffusion/training/datasets/dataset_3D.py); :func:`scale_actions`
does that multiplication.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from cosmos_kernels.checks import check_int
from cosmos_kernels.models.dit import DIT_CONFIGS, DiTConfig, GeneralDIT

Tensor = torch.Tensor

# dataset_3D.py's c_act_scaler: xyz and rpy deltas x20, gripper as is.
ACTION_SCALE = (20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 1.0)
ACTION_CONDITIONING = ("predict1", "nemo")


def scale_actions(actions: Tensor | Sequence[float], scale: Sequence[float] = ACTION_SCALE) -> Tensor:
    """Raw actions (..., 7) = [ee xyz delta, relative rpy, gripper] as the network takes them: times
    ``scale`` on the last axis (Cosmos's [20, 20, 20, 20, 20, 20, 1]); float32 for non-float input."""
    actions = torch.as_tensor(actions)
    if not actions.is_floating_point():
        actions = actions.float()
    if actions.dim() < 1 or actions.shape[-1] != len(scale):
        raise ValueError(
            f"scale_actions: actions must be (..., {len(scale)}) = [ee xyz delta (3), relative rpy (3), "
            f"gripper (1)], got shape {tuple(actions.shape)}"
        )
    return actions * torch.tensor(scale, dtype=actions.dtype, device=actions.device)


@dataclass(frozen=True)
class ActionDiTConfig(DiTConfig):
    """A Video2World ``DiTConfig`` plus the action input: ``action_dim`` (7 for Bridge) and
    ``action_conditioning``, "predict1" (cosmos-predict1 as written: the action reaches the blocks
    through the AdaLN-LoRA term only) or "nemo" (NeMo: also through the main embedding). Both need
    AdaLN-LoRA, as Cosmos-1.0 has it."""

    action_dim: int = 7
    action_conditioning: str = "predict1"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("DiT config", "action_dim", self.action_dim, 1)
        if self.action_conditioning not in ACTION_CONDITIONING:
            raise ValueError(
                f"DiT config: action_conditioning must be one of {ACTION_CONDITIONING}, "
                f"got {self.action_conditioning!r}"
            )
        if not self.video_extend:
            raise ValueError("DiT config: the action-conditioned network is Video2World (video_extend=True)")
        if not self.use_adaln_lora:
            raise ValueError(
                "DiT config: action conditioning adds to the AdaLN-LoRA term, so it needs use_adaln_lora=True"
            )

    def build(self) -> "ActionConditionalDIT":
        return ActionConditionalDIT(self)


class ActionEmbedder(nn.Module):
    """Cosmos's timm-style ``Mlp``: fc1 -> GELU -> fc2, with biases (keys ``fc1.*``, ``fc2.*``)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, gelu: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.activation = nn.GELU(approximate=gelu)
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, action: Tensor) -> Tensor:
        return self.fc2(self.activation(self.fc1(action)))


class ActionConditionalDIT(GeneralDIT):
    """``GeneralDIT`` (Video2World) that takes ``action`` (B, n, action_dim), or (B, action_dim) for one
    transition, as a further forward input; only the first transition ``action[:, 0]`` is used, as in
    Cosmos. See the module docstring for the two variants."""

    def __init__(self, config: ActionDiTConfig) -> None:
        if not isinstance(config, ActionDiTConfig):
            raise TypeError(f"ActionConditionalDIT needs an ActionDiTConfig, got {type(config).__name__}")
        super().__init__(config)
        d, a = config.model_channels, config.action_dim
        # Built after GeneralDIT's initialize_weights, as in Cosmos: PyTorch's default Linear init.
        if config.action_conditioning == "predict1":
            self.action_embedder_B_D = ActionEmbedder(a, 4 * d, d, "tanh")
            self.action_embedder_B_3D = ActionEmbedder(a, 4 * d, 3 * d, "tanh")
        else:  # NeMo's action_mlp and action_mlp_3d
            self.action_embedder_B_D = ActionEmbedder(a, d, d, "none")
            self.action_embedder_B_3D = ActionEmbedder(a, 4 * d, 3 * d, "none")

    def first_action(self, action: Tensor | None, batch: int) -> Tensor:
        """``action`` checked and reduced to its first transition (B, action_dim)."""
        a = self.config.action_dim
        expected = f"(B={batch}, n, {a}) or (B={batch}, {a})"
        if action is None:
            raise ValueError(f"{type(self).__name__}: action {expected} is required")
        if not isinstance(action, Tensor) or not action.is_floating_point():
            raise TypeError(f"{type(self).__name__}: action must be a floating-point tensor {expected}")
        if action.dim() == 2:
            action = action[:, None]
        if action.dim() != 3 or action.shape[0] != batch or action.shape[1] < 1 or action.shape[2] != a:
            raise ValueError(f"{type(self).__name__}: action must be {expected}, got {tuple(action.shape)}")
        return action[:, 0]

    def time_embedding(
        self, timesteps: Tensor, action: Tensor | None = None, **conditions: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        if conditions:
            raise TypeError(f"{type(self).__name__}: unexpected input(s) {sorted(conditions)}")
        first = self.first_action(action, timesteps.shape[0]).to(timesteps.dtype)
        emb, adaln_lora = self.t_embedder(timesteps)
        if self.config.action_conditioning == "nemo":
            emb = emb + self.action_embedder_B_D(first)
        # predict1 computes action_embedder_B_D(first) too, into a variable that nothing reads.
        return self.affline_norm(emb), adaln_lora + self.action_embedder_B_3D(first)


def action_config(video2world: DiTConfig, **action: object) -> ActionDiTConfig:
    """The action-conditioned config of a Video2World config (``action_dim``, ``action_conditioning``)."""
    return ActionDiTConfig(**{f.name: getattr(video2world, f.name) for f in fields(video2world)}, **action)


# Registered beside GeneralDIT's configs, so that build_dit and the trainer know them by name.
DIT_CONFIGS.update(
    {
        "tiny-video2world-action": action_config(DIT_CONFIGS["tiny-video2world"]),
        "cosmos-7b-video2world-action": action_config(DIT_CONFIGS["cosmos-7b-video2world"]),
    }
)
