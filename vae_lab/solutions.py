"""Reference solutions to the notebooks' exercises (try the exercise first!)."""
from __future__ import annotations

import torch

# ---- 01_data_and_encoder ----

# ---- 02_reparameterization ----

# ---- 03_loss ----

# ---- 04_training ----

# ---- 05_generation ----

# ---- 06_latent_space ----
