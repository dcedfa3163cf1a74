"""Data-parallel training that computes what one process computes (StyleGAN, the swap network).

``torchrun --nproc_per_node=N`` starts N processes; each holds the whole model. A
batch is split by stride (process ``r`` takes samples ``r, r + N, ...``); every
process draws every random number of the whole batch from generators seeded alike
and keeps its share (:meth:`ProcessGroup.share`), gradients are averaged over the
processes before each optimiser step (:meth:`ProcessGroup.sync_grads`, one flat
all-reduce), and statistics that span the batch are averaged too
(:meth:`ProcessGroup.mean`). With losses that are means over samples, N processes
then take the same steps as one process with the whole batch, up to rounding.
"""

from __future__ import annotations

import os

import torch

from portraitfx.errors import ConfigError

__all__ = ["ProcessGroup", "init_distributed"]


def init_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment; ``(rank, world)``.

    Outside ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing happens and ``(0, 1)`` is
    returned. NCCL when this process has a GPU, Gloo otherwise.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


class ProcessGroup:
    """This process's place in a data-parallel run (``(0, 1)`` when there is none)."""

    def __init__(self, distributed: bool | None = None, device: torch.device | None = None) -> None:
        import torch.distributed as dist

        if distributed is None:
            distributed = dist.is_available() and dist.is_initialized()
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        self.device = device or torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch: int, multiple: int = 1) -> None:
        if batch % (self.world * multiple):
            raise ConfigError(
                f"batch {batch} does not split over {self.world} processes (it must be a multiple of "
                f"{self.world * multiple})"
            )

    def share(self, x: torch.Tensor) -> torch.Tensor:
        """This process's samples of a whole-batch draw (by stride), on the device."""
        return x[self.rank :: self.world].to(self.device)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def mean(self, *values: float | torch.Tensor) -> list[float]:
        """Scalars averaged over the processes (one collective for all of them)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device)
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
            t /= self.world
        return t.tolist()

    def mean_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor averaged over the processes."""
        if self.world == 1:
            return t
        import torch.distributed as dist

        out = t.detach().to(self._comm_device).clone()
        dist.all_reduce(out)
        return (out / self.world).to(t.device)

    def sync_grads(self, module: torch.nn.Module) -> None:
        """Average the trainable parameters' gradients over the processes (one flat all-reduce)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
