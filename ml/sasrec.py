"""SASRec (Kang & McAuley, 2018): a small causal transformer over a user's last ``max_len``
positive items that predicts the next one.

Item embeddings (row 0 is padding) plus learned positions, ``blocks`` pre-norm transformer
blocks whose attention only looks back, and the output scored against the same item
embeddings (tied weights). Training is next-item prediction at every position with a full
softmax over the catalogue (cheap at thousands of items; sampled losses are for millions),
Adam, and early stopping on validation HR@10 (the best epoch's weights are kept).
Deterministic for a seed: the torch RNG is forked and seeded for the run, batches are
shuffled by their own generator, and the thread count is fixed while training.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.evaluate import evaluate

log = logging.getLogger("ml.sasrec")


@dataclass(frozen=True, slots=True)
class SASRecConfig:
    dim: int = 64
    heads: int = 2
    blocks: int = 2
    max_len: int = 50
    dropout: float = 0.1
    lr: float = 5e-3
    batch_size: int = 32  # small: more steps per epoch on small data, same compute
    epochs: int = 30  # at most; early stopping may end sooner
    patience: int = 3  # evaluations without a better validation HR@10
    eval_every: int = 2  # epochs
    threads: int = 1  # fixed while training: deterministic, and steady on a busy machine

    def hyperparameters(self) -> dict[str, float | int]:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout,
                                          batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.dim, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attended, _ = self.attn(h, h, h, attn_mask=blocked, need_weights=False)
        x = x + self.drop(attended)
        return x + self.drop(self.ffn(self.norm2(x)))


class SASRec(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SASRecConfig()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.dim)
        self.epochs_run = self.best_epoch = 0  # how training went, for reports
        # Scaled by sqrt(dim) on the way in and tied on the way out: unit-sized inputs and
        # logits of about unit spread at the start (nn.Embedding's N(0, 1) gives spread 8).
        nn.init.normal_(self.items.weight, std=cfg.dim ** -0.5)
        nn.init.normal_(self.positions.weight, std=0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[batch, length <= max_len] item rows + 1, left-padded with 0 -> logits over the
        catalogue at every position, [batch, length, n_items]. Positions count back from
        the newest item, so a batch cut to its longest row scores as the full width does."""
        length = seq.shape[1]
        x = self.items(seq) * math.sqrt(self.config.dim)
        x = self.drop(x + self.positions.weight[self.config.max_len - length:])
        x = x * (seq != 0).unsqueeze(-1)
        future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        # A position sees itself and the real items before it; an all-padding prefix sees
        # only itself (a row with nothing to attend to would be NaN).
        pad = (seq == 0).unsqueeze(1) & ~torch.eye(length, dtype=torch.bool)
        blocked = (future | pad).repeat_interleave(self.config.heads, dim=0)
        for block in self.blocks:
            x = block(x, blocked)
        return self.norm(x) @ self.items.weight[1:].T

    def encode(self, histories: list[list[int]]) -> torch.Tensor:
        """The last ``max_len`` items of each history, shifted past padding, left-padded to
        the longest (no wider: positions count back from the newest item)."""
        width = max([1, *(min(len(h), self.config.max_len) for h in histories)])
        seq = torch.zeros(len(histories), width, dtype=torch.long)
        for row, history in enumerate(histories):
            tail = history[-width:]
            if tail:
                seq[row, -len(tail):] = torch.as_tensor(tail, dtype=torch.long) + 1
        return seq

    def scores(self, histories: list[list[int]]) -> np.ndarray:
        """[batch, n_items]: the next-item logits after each history (eval mode)."""
        self.eval()
        with torch.inference_mode():
            return self(self.encode(histories))[:, -1].numpy()


def windows(train_sequences: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows: each sequence cut from its end into pieces of ``max_len + 1`` items
    (overlapping by one, so every transition is learned once), as (input, target) pairs
    left-padded to ``max_len``; target -1 marks padding."""
    inputs, targets = [], []
    for seq in train_sequences:
        for end in range(len(seq), 1, -max_len):
            piece = seq[max(0, end - max_len - 1):end]
            pad = max_len - (len(piece) - 1)
            inputs.append([0] * pad + [i + 1 for i in piece[:-1]])
            targets.append([-1] * pad + piece[1:])
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def _batches(lengths: torch.Tensor, size: int, order: torch.Generator) -> list[torch.Tensor]:
    """Rows of similar length together (little padding to compute), in a random order of
    batches and a random order within equal lengths, new each epoch."""
    shuffled = torch.randperm(len(lengths), generator=order)
    by_length = shuffled[torch.argsort(lengths[shuffled], stable=True)]
    batches = list(by_length.split(size))
    return [batches[n] for n in torch.randperm(len(batches), generator=order).tolist()]


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(train_sequences: list[list[int]], n_items: int, config: SASRecConfig | None = None,
          seed: int = 0, valid: tuple[list[list[int]], np.ndarray] | None = None) -> SASRec:
    """A model fitted to ``train_sequences`` (item rows, oldest first). With ``valid``
    (histories, targets) it keeps the epoch with the best HR@10 and stops after
    ``patience`` evaluations without one."""
    cfg = config or SASRecConfig()
    inputs, targets = windows(train_sequences, cfg.max_len)
    if len(inputs) == 0:
        raise ValueError("no training sequence has 2 items or more")
    with torch.random.fork_rng(devices=[]), _threads(cfg.threads):
        torch.manual_seed(seed)
        model = SASRec(n_items, cfg)
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        order = torch.Generator().manual_seed(seed)
        best, best_state, waited = -1.0, None, 0
        lengths = (inputs != 0).sum(dim=1)
        for epoch in range(1, cfg.epochs + 1):
            model.epochs_run = epoch
            started = time.perf_counter()
            model.train()
            total = 0.0
            for batch in _batches(lengths, cfg.batch_size, order):
                width = int(lengths[batch].max())
                logits = model(inputs[batch, -width:])
                loss = F.cross_entropy(logits.reshape(-1, n_items),
                                       targets[batch, -width:].reshape(-1), ignore_index=-1)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
            log.debug("epoch %d: loss %.4f in %.1f s", epoch, total / len(inputs),
                      time.perf_counter() - started)
            if valid is None or (epoch % cfg.eval_every and epoch != cfg.epochs):
                continue
            hr = evaluate(model.scores, *valid)["hr@10"]
            log.info("epoch %d: loss %.4f, validation HR@10 %.4f", epoch,
                     total / len(inputs), hr)
            if hr > best:
                best, waited, model.best_epoch = hr, 0, epoch
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
    model.eval()
    return model
