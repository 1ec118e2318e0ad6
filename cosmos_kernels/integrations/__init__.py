"""Drop-in patches that put our fused ops into other libraries' Cosmos models.

``cosmos_kernels.integrations.diffusers`` patches diffusers' Cosmos transformers, ControlNet and VAE
in place (``apply_cosmos_kernels`` / ``remove_cosmos_kernels``). The submodule imports diffusers, so it
is imported on demand, not here.
"""
