"""Automatic checks for the notebooks' exercises: each prints ✅ or a ❌ with a hint, and returns True/False.

Each check accepts the student's answer and compares it with the lab's own implementation.
The reference solutions live in `vae_lab.solutions`.
"""
from __future__ import annotations

import torch

from .lesson import attempt, feedback

# ---- 01_data_and_encoder ----

# ---- 02_reparameterization ----

# ---- 03_loss ----

# ---- 04_training ----

# ---- 05_generation ----

# ---- 06_latent_space ----
