"""serve_backend: which backend serves chat and the API and why, and what the llama.cpp backend refuses
(adapters, a model with no GGUF, a missing llama-cpp-python, an AMX build, images in chat). Runs without
llama-cpp-python: every refusal comes before llama.cpp is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.model import llama_cpp
from tunesmith.serve.backend import choose_backend
from tunesmith.serve.llama_cpp import export_gguf, load_llama_cpp_engine
from tunesmith.utils.errors import ConfigError, MissingExtraError, ModelLoadError


def _cfg(model: Path | str, **extra: object):  # noqa: ANN202 - a Config
    return load_config(None, {"model_name_or_path": str(model), "template": "gemma", "dataset": "unused",
                              "bf16": False, **extra})


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")  # never read: the choices and refusals come first
    return path


def test_auto_picks_llama_cpp_for_a_gguf_when_it_is_installed(gguf_file: Path, tiny_model_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp, "available", lambda: True)
    assert choose_backend(_cfg(gguf_file)) == ("llama.cpp", "serve_backend auto: the model is a .gguf file and "
                                               "llama-cpp-python is installed")
    assert choose_backend(_cfg(gguf_file), chat=True)[0] == "llama.cpp"
    backend, why = choose_backend(_cfg(tiny_model_dir))
    assert backend == "transformers" and "not a .gguf" in why
    backend, why = choose_backend(_cfg(gguf_file, adapters=f"a={tiny_model_dir}"))
    assert backend == "transformers" and "adapters" in why
    monkeypatch.setattr(llama_cpp, "available", lambda: False)
    backend, why = choose_backend(_cfg(gguf_file))
    assert backend == "transformers" and "llama-cpp-python is not installed" in why and "install_llamacpp" in why


def test_an_explicit_backend_is_used_as_asked(gguf_file: Path, tiny_model_dir: Path) -> None:
    assert choose_backend(_cfg(tiny_model_dir, serve_backend="llama.cpp")) == ("llama.cpp", "serve_backend: llama.cpp")
    assert choose_backend(_cfg(gguf_file, serve_backend="transformers"))[0] == "transformers"
    assert choose_backend(_cfg(tiny_model_dir, serve_backend="vllm"))[0] == "vllm"
    backend, why = choose_backend(_cfg(tiny_model_dir, serve_backend="vllm"), chat=True)
    assert backend == "transformers" and "API only" in why


def test_adapters_are_refused_with_the_way_to_merge_them(gguf_file: Path, tiny_adapters: dict[str, Path],
                                                         tiny_model_dir: Path) -> None:
    for extra in ({"adapters": f"alpha={tiny_adapters['alpha']}"},
                  {"adapter_name_or_path": str(tiny_adapters["beta"]), "model_name_or_path": str(tiny_model_dir)}):
        cfg = _cfg(gguf_file, serve_backend="llama.cpp", **extra)
        with pytest.raises(ConfigError) as err:
            load_llama_cpp_engine(cfg)
        text = str(err.value)
        assert "'serve_backend'" in text and "no LoRA adapters" in text and "tunesmith export" in text
        assert "export_quantization=gguf-q8_0" in text and "serve_backend=transformers" in text


def test_a_model_without_a_gguf_is_refused_with_the_fix(tiny_model_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp, "available", lambda: True)
    with pytest.raises(ConfigError) as err:
        load_llama_cpp_engine(_cfg(tiny_model_dir, serve_backend="llama.cpp"))
    text = str(err.value)
    assert "'serve_backend'" in text and "neither a .gguf file nor a 'tunesmith export' folder" in text
    assert "export_quantization=gguf-q8_0" in text
    with pytest.raises(ConfigError, match="'model_name_or_path': GGUF file .*missing.gguf.* not found"):
        load_llama_cpp_engine(_cfg(tmp_path / "missing.gguf", serve_backend="llama.cpp"))


def test_an_export_folder_brings_its_gguf(tmp_path: Path) -> None:
    """The manifest's artifact is used (q8_0 before f16), else gguf/*.gguf; a folder without one has none."""
    import json

    export = tmp_path / "export"
    (export / "gguf").mkdir(parents=True)
    for name in ("m-f16.gguf", "m-q8_0.gguf"):
        (export / "gguf" / name).write_bytes(b"GGUF")
    assert export_gguf(export) == export / "gguf" / "m-f16.gguf"  # no manifest: the first file
    (export / "tunesmith_export.json").write_text(json.dumps({"artifacts": {
        "merged": ".", "gguf-f16": "gguf/m-f16.gguf", "gguf-q8_0": "gguf/m-q8_0.gguf"}}))
    assert export_gguf(export) == export / "gguf" / "m-q8_0.gguf"
    assert export_gguf(tmp_path) is None


def test_missing_llama_cpp_python_says_how_to_install_it(gguf_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp, "available", lambda: False)
    with pytest.raises(MissingExtraError) as err:
        load_llama_cpp_engine(_cfg(gguf_file, serve_backend="llama.cpp"))
    text = str(err.value)
    assert "llama-cpp-python" in text and "scripts/install_llamacpp.sh" in text
    assert "-DGGML_AMX_INT8=OFF" in text and "segfault" in text


def test_an_amx_build_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(llama_cpp.ALLOW_AMX_ENV, raising=False)
    monkeypatch.setattr(llama_cpp, "system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | ")
    assert llama_cpp.amx_int8_build()
    with pytest.raises(ModelLoadError) as err:
        llama_cpp.check_build()
    text = str(err.value)
    assert "AMX_INT8 = 1" in text and "segfault" in text and "ggml_backend_amx_mul_mat" in text
    assert "install_llamacpp.sh" in text and "-DGGML_AMX_INT8=OFF" in text and llama_cpp.ALLOW_AMX_ENV in text
    monkeypatch.setenv(llama_cpp.ALLOW_AMX_ENV, "1")
    llama_cpp.check_build()  # allowed: no error
    monkeypatch.delenv(llama_cpp.ALLOW_AMX_ENV)
    monkeypatch.setattr(llama_cpp, "system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 0 | ")
    assert not llama_cpp.amx_int8_build()
    llama_cpp.check_build()


def test_chat_refuses_images_on_llama_cpp(gguf_file: Path, tmp_path: Path, cli) -> None:  # noqa: ANN001
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    result = cli("chat", "serve_backend=llama.cpp", "--model", str(gguf_file), "--image", str(image))
    assert result.code == 2 and "'--image': the llama.cpp backend reads text only" in result.err_text
    assert "backend: llama.cpp (serve_backend: llama.cpp)" in result.out


@pytest.mark.parametrize("amx", [True, False])
def test_the_install_script_picks_build_flags_from_cpuinfo(amx: bool, tmp_path: Path) -> None:
    """With amx_int8: the AVX / AVX-512 flags one by one and AMX off (the build the error messages name);
    without: GGML_NATIVE=ON."""
    import os
    import subprocess

    script = Path(__file__).resolve().parents[3] / "scripts" / "install_llamacpp.sh"
    cpu = "fpu avx avx2 fma f16c bmi2 avx512f avx512vbmi avx512_vnni avx512_bf16" + (" amx_bf16 amx_int8" * amx)
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {cpu}\n")
    out = subprocess.run(["bash", str(script)], env={**os.environ, "CPUINFO": str(tmp_path / "cpuinfo"),
                                                     "DRY_RUN": "1"}, capture_output=True, text=True, check=True)
    args = out.stdout.strip().removeprefix('CMAKE_ARGS="').removesuffix('"').split()
    if amx:
        assert set(llama_cpp.AMX_FREE_CMAKE_ARGS.split()) <= set(args) and "-DGGML_NATIVE=ON" not in args
    else:
        assert "-DGGML_NATIVE=ON" in args and not any("AMX" in a for a in args)


def test_free_cores_leave_other_processes_their_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """From /proc/stat's busy time less our own: threads for the cores others leave free (at least 1)."""
    free = llama_cpp.FreeCores(2, cpus=2)

    def after(seconds: float, busy_cpus: float, own_cpus: float) -> int | None:
        last = free.last or (0, 0, 0.0, 0.0)
        ticks = int(200 * seconds)  # 2 CPUs x 100 ticks a second
        now = (last[0] + ticks, last[1] + round(ticks * (1 - busy_cpus / 2)), last[2] + own_cpus * seconds,
               last[3] + seconds)
        monkeypatch.setattr(free, "sample", lambda: now)
        return free.threads()

    free.last = (1000, 500, 3.0, 50.0)
    assert after(1.0, busy_cpus=2.0, own_cpus=2.0) == 2, "only we are busy"
    assert after(1.0, busy_cpus=2.0, own_cpus=0.5) == 1, "another process uses 1.5 cores"
    assert after(1.0, busy_cpus=0.1, own_cpus=0.0) == 2, "idle"
    assert after(0.2, busy_cpus=2.0, own_cpus=0.0) is None, "too short a window to judge"
    assert after(2.0, busy_cpus=2.0, own_cpus=0.0) == 1, "a busy machine still gets one thread"


def test_sampling_defaults_come_from_the_folder_without_loading_weights(tmp_path: Path) -> None:
    """engine.model on llama.cpp is the folder's generation_config only (an export carries the user's defaults)."""
    import json

    from tunesmith.model.generate import generation_settings
    from tunesmith.serve.llama_cpp import GenerationDefaults

    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.3, "top_p": 0.9, "top_k": 40, "max_new_tokens": 64}))
    settings, source = generation_settings(_cfg(tmp_path), GenerationDefaults.from_folder(tmp_path))
    assert (settings.temperature, settings.top_p, settings.top_k, settings.max_new_tokens) == (0.3, 0.9, 40, 64)
    assert set(source.values()) == {"model", "default"} and source["temperature"] == "model"
    assert generation_settings(_cfg(tmp_path), GenerationDefaults.from_folder(tmp_path / "none"))[0].temperature == 0
