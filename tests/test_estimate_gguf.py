"""A real GGUF file on disk: the llama.cpp estimate uses its exact tensor bytes, not a prediction."""

from __future__ import annotations

import json

from gguf_fixtures import llama_tensors, tensor_nbytes, write_llama_gguf

from lander_tui.cli import main


def _gpu_bytes(tensors):
    return sum(tensor_nbytes(ne, t) for name, ne, t in tensors if name != "token_embd.weight")


def test_gguf_file_weights_are_exact(tmp_path, capsys):
    path = write_llama_gguf(tmp_path / "tiny.gguf", n_layers=4, hidden=512, ff=1024, vocab=1024)
    assert main(["estimate", str(path), "--free-vram", "2000", "-k", "f16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    r = data["results"][0]
    assert r["quant"] == "Q4_K_M" and r["exact_weights"] is True
    expected = _gpu_bytes(llama_tensors(n_layers=4, hidden=512, ff=1024, vocab=1024)) / 2**20
    assert abs(r["weights_mib"] - expected) < 0.01
    # KV: 4 layers x 2 KV heads x 128 dims x (K+V) x 2 bytes per cell
    assert r["kv_cache_mib"] == r["context"] * 4 * 2 * 128 * 2 * 2 / 2**20


def test_tied_gguf_puts_a_copy_of_the_embeddings_on_the_gpu(tmp_path, capsys):
    path = write_llama_gguf(tmp_path / "tied.gguf", n_layers=2, tied=True, vocab=2048)
    main(["estimate", str(path), "--free-vram", "2000", "-k", "f16", "--json"])
    r = json.loads(capsys.readouterr().out)["results"][0]
    tensors = llama_tensors(n_layers=2, vocab=2048, tied=True)
    emb = next(tensor_nbytes(ne, t) for n, ne, t in tensors if n == "token_embd.weight")
    assert abs(r["weights_mib"] - (_gpu_bytes(tensors) + emb) / 2**20) < 0.01


def test_truncated_gguf_is_one_line_error(tmp_path, capsys):
    path = write_llama_gguf(tmp_path / "cut.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert main(["estimate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and len(err.strip().splitlines()) == 1
