"""What the node families share: IMAGE tensors ⇄ images and running a source (`common`), the
memory policy over `comfy.model_management` (`comfy_memory`), the custom io types (`types`),
keys' widgets (`keys`), re-running a node whose last result held faults (`rerun`) and the
pack's HTTP routes (`routes`: report pages and saving ratings)."""
