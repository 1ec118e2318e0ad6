"""EDM diffusion as Cosmos-1.0 does it, for any network with Cosmos's GeneralDIT forward.

``edm`` holds the preconditioning (``EDMDenoiser``) and the uncertainty net, ``loss`` the training loss,
``samplers`` Euler (Cosmos's), Heun and multistep sampling on Karras's schedule, ``guidance`` classifier-free
guidance and ``conditioning`` Video2World's condition frames, for sampling and for training.
"""

from cosmos_kernels.diffusion.conditioning import (
    AUGMENT_SIGMA,
    VideoCondition,
    num_condition_latent_frames,
    sample_video2world,
    video2world_condition,
    video2world_training_condition,
)
from cosmos_kernels.diffusion.edm import (
    SIGMA_DATA,
    EDMDenoiser,
    FourierFeatures,
    UncertaintyNet,
    edm_scalings,
    loss_weight,
)
from cosmos_kernels.diffusion.guidance import GUIDANCE, guided_denoiser
from cosmos_kernels.diffusion.loss import (
    EDMLossParts,
    edm_training_loss,
    normalize_domain_latents,
    sample_training_sigma,
)
from cosmos_kernels.diffusion.samplers import (
    NUM_STEPS,
    RHO,
    SAMPLERS,
    SIGMA_MAX,
    SIGMA_MIN,
    initial_noise,
    karras_sigmas,
    run_sampler,
    sample,
)

__all__ = [
    "AUGMENT_SIGMA",
    "GUIDANCE",
    "NUM_STEPS",
    "RHO",
    "SAMPLERS",
    "SIGMA_DATA",
    "SIGMA_MAX",
    "SIGMA_MIN",
    "EDMDenoiser",
    "EDMLossParts",
    "FourierFeatures",
    "UncertaintyNet",
    "VideoCondition",
    "edm_scalings",
    "edm_training_loss",
    "guided_denoiser",
    "initial_noise",
    "karras_sigmas",
    "loss_weight",
    "normalize_domain_latents",
    "num_condition_latent_frames",
    "run_sampler",
    "sample",
    "sample_training_sigma",
    "sample_video2world",
    "video2world_condition",
    "video2world_training_condition",
]
