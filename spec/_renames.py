"""The names older NetsPresso Trainer configs used, and today's: ``npc migrate`` rewrites them, and the
validator's messages point at it when it meets one."""

__all__ = ["RENAMED_COMPONENTS", "RENAMED_LOSSES", "RENAMED_PARAMS"]

# Older family names → today's (kind-independent: no name was reused for another kind).
RENAMED_COMPONENTS = {
    "yolox_head": "anchor_free_decoupled_head",
    "retinanet_head": "anchor_decoupled_head",
    "pafpn": "yolopafpn",
}
# Older component param names → today's.
RENAMED_PARAMS = {"norm_layer": "norm_type"}
# Older losses → (today's criterion, {old param: new param}).
RENAMED_LOSSES = {"label_smoothing_cross_entropy": ("cross_entropy", {"smoothing": "label_smoothing"})}
