"""Secrets the secrets tests plant (a store password, an API token, a W&B key), and the
check that a text holds none of them."""

from __future__ import annotations

PASSWORD, TOKEN, WANDB_KEY = "pw-Hx81-secret", "tok-Qm27-secret", "wk-Lr55-secret"
SECRETS = (PASSWORD, TOKEN, WANDB_KEY)


def no_secret_in(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{where} holds a secret"
