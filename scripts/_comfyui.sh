# Sourced by test.sh: find the ComfyUI the real-ComfyUI tests run against and export
# COMFYUI_PATH. In order: $COMFYUI_PATH, ~/comfy/ComfyUI, else the archive named by
# $COMFYUI_ARCHIVE unpacked (once) into the git-ignored .cache/comfyui/. Finding none is
# not an error here: the tests skip loudly, or fail under CI=true.
_saiten_find_comfyui() {
    if [ -n "${COMFYUI_PATH:-}" ]; then
        [ -f "$COMFYUI_PATH/main.py" ] || echo "test.sh: COMFYUI_PATH=$COMFYUI_PATH has no main.py" >&2
        return
    fi
    if [ -f "$HOME/comfy/ComfyUI/main.py" ]; then
        export COMFYUI_PATH="$HOME/comfy/ComfyUI"
        return
    fi
    local archive="${COMFYUI_ARCHIVE:-}"
    if [ -z "$archive" ]; then
        return
    fi
    if [ ! -f "$archive" ]; then
        echo "test.sh: COMFYUI_ARCHIVE=$archive does not exist" >&2
        return
    fi
    local name dest
    name="$(basename "$archive")"
    dest="$ROOT/.cache/comfyui/${name%.tar.gz}"
    if [ ! -f "$dest/ComfyUI/main.py" ]; then
        echo "test.sh: unpacking $archive into $dest" >&2
        rm -rf "$dest.part" && mkdir -p "$dest.part"
        tar xzf "$archive" -C "$dest.part"
        rm -rf "$dest" && mv "$dest.part" "$dest"
    fi
    export COMFYUI_PATH="$dest/ComfyUI"
}
_saiten_find_comfyui
