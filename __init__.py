"""ComfyUI-Saiten (採点): score generated images with an ensemble and act on the score."""

from comfy_api.latest import ComfyExtension, io

from .nodes import all_nodes

WEB_DIRECTORY = "./web"


class SaitenExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> SaitenExtension:
    return SaitenExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
