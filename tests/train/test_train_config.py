import pytest

from audit.train.config import (
    ConfigError,
    PretrainConfig,
    finetune_config_from_dict,
    load_finetune_config,
    load_pretrain_config,
    pretrain_config_from_dict,
)


def test_presets_load_and_differ():
    tiny, small, base = (load_pretrain_config(name) for name in ("tiny", "small", "base"))
    assert tiny.model.hidden_size < small.model.hidden_size < base.model.hidden_size
    assert small.tokenizer.vocab_size == 8192 and small.corpus.max_length == 128
    # a fixed step count, not a time budget: the default audit must be reproducible (about 2.5 min on 2 cores)
    assert small.train.max_minutes is None and small.train.max_steps == 800
    assert small.canaries is not None and small.canaries.repeats == [1, 4, 16]
    davidson = load_finetune_config("davidson")
    assert davidson.data.label_map == {"0": "abusive", "1": "abusive", "2": "neither"}


def test_file_extends_preset(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('preset = "small"\n[train]\nmax_minutes = 1.5\n', encoding="utf-8")
    config = load_pretrain_config(path)
    assert config.train.max_minutes == 1.5 and config.model.hidden_size == 256


@pytest.mark.parametrize(
    "text, key",
    [
        ("[train]\nlearnig_rate = 0.1\n", "train.learnig_rate"),
        ("[modle]\nhidden_size = 3\n", "modle"),
        ("[canaries]\ncount = 2\nrepeat = [1]\n", "canaries.repeat"),
    ],
)
def test_unknown_key_is_one_line_error_naming_it(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_pretrain_config(path)
    message = str(error.value)
    assert key in message and "\n" not in message


def test_bad_values_and_missing_files():
    with pytest.raises(ConfigError, match="train.batch_size"):
        pretrain_config_from_dict({"train": {"batch_size": 0}})
    with pytest.raises(ConfigError, match="num_attention_heads"):
        pretrain_config_from_dict({"model": {"hidden_size": 30, "num_attention_heads": 4}})
    with pytest.raises(ConfigError, match="max_steps or max_minutes"):
        pretrain_config_from_dict({"train": {"max_steps": None}})
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_pretrain_config("no-such-config.toml")
    with pytest.raises(ConfigError, match="unknown preset"):
        pretrain_config_from_dict({"preset": "huge"})
    with pytest.raises(ConfigError, match="data.label_colum"):
        finetune_config_from_dict({"data": {"label_colum": "y"}})


def test_invalid_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_pretrain_config(path)


def test_defaults_validate():
    assert PretrainConfig().corpus.dataset == "wiki_passages"
