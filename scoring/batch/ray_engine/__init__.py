"""`--engine ray`: the same scoring on a Ray cluster (Ray Data) — `engine` on the driver,
`stages` on the workers, `ledger` for what the run's remote sources share. Importing this
package does not import ray: `require_ray` says what to install when it is missing."""

from .engine import INSTALL, RayEngine, require_ray
from .stages import Recipe

__all__ = ["INSTALL", "RayEngine", "Recipe", "require_ray"]
