"""What the nodes do about keys: the folders ComfyUI and its node packs serve or let clients
write (a key file, or the keys file, there is refused: `scoring.remote.keys.refuse_if_served`),
and the old key-variable widgets, kept so saved workflows keep their widget order, ignored.
"""

from __future__ import annotations

import os
import sys

import folder_paths

from ...scoring.remote import check_env_name

IGNORED = (
    "{widget} is ignored: a workflow never chooses a key. The key for a server is bound to "
    "its host in your configuration (api.x.ai: XAI_API_KEY; any other host: keys.toml, see "
    "README 'Keys'); clear this widget")


def ignored_widget_note(value: str, widget: str) -> str:
    """The node's note about an old key-variable widget ("" when empty); a pasted key is
    refused without being echoed."""
    if not value.strip():
        return ""
    check_env_name(value, widget)
    return IGNORED.format(widget=widget)


def served_dirs() -> list[str]:
    """ComfyUI's own folder, input/output/temp/user, every custom_nodes folder and each pack
    in it, every registered WEB_DIRECTORY (/extensions/…) and the frontend's web root."""
    dirs = [folder_paths.base_path, folder_paths.get_output_directory(),
            folder_paths.get_input_directory(), folder_paths.get_temp_directory(),
            folder_paths.get_user_directory()]
    for root in folder_paths.get_folder_paths("custom_nodes"):
        dirs.append(root)
        if os.path.isdir(root):  # a pack linked in from elsewhere is served from there
            dirs += [os.path.join(root, name) for name in os.listdir(root)]
    comfy_nodes = sys.modules.get("nodes")
    dirs += list(getattr(comfy_nodes, "EXTENSION_WEB_DIRS", {}).values())
    server = getattr(sys.modules.get("server"), "PromptServer", None)
    web_root = getattr(getattr(server, "instance", None), "web_root", None)
    if web_root:
        dirs.append(web_root)
    return [str(d) for d in dirs if d]
