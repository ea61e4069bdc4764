"""Export a sentence-transformers model's transformer to ONNX, once, into the model cache.

The export needs torch; running the exported model needs only onnxruntime and tokenizers, so an
Embedder replica whose cache is warm never imports torch (faster start, less memory). Run
`python -m deployments.onnx_export` at image build time to ship a warm cache.
"""

import hashlib
import os
import sys
import tempfile
from pathlib import Path

ONNX_OPSET = 17
_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def cached_onnx_path(model_path: Path, cache_dir: Path) -> Path:
    """Where the export of this model folder lives: keyed by the folder and its weights' size and time."""
    weights = sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("pytorch_model.bin"))
    stamp = "|".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    key = hashlib.sha256(f"{model_path.resolve()}|{stamp}|opset{ONNX_OPSET}".encode()).hexdigest()[:16]
    return cache_dir / f"{model_path.name}-{key}" / "model.onnx"


def export_onnx(model_path: Path, target: Path) -> Path:
    """Export unless already there; atomic, so replicas starting together never read half a file."""
    if target.is_file():
        return target
    import torch
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            output = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return output.last_hidden_state  # type: ignore[no-any-return]

    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    example = torch.ones((2, 8), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".onnx.partial")
    os.close(handle)
    try:
        torch.onnx.export(
            LastHiddenState(model),
            (example, example, torch.zeros_like(example)),
            partial,
            input_names=_INPUTS,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*_INPUTS, "last_hidden_state"]},
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT models
        )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def main() -> int:
    from deployments.config import load_settings

    settings = load_settings()
    target = export_onnx(settings.model_path, cached_onnx_path(settings.model_path, settings.onnx_cache_dir))
    print(f"ONNX model ready: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
