"""Training our transformer: WordPiece tokenizer, masked-LM or next-token pretraining with canaries, classifier
fine-tuning.

Modules: ``config`` (TOML configs and presets), ``tokenizer``, ``corpus`` (loading, held-out split, packing),
``masking``, ``canaries``, ``checkpoint`` (safetensors + JSON, never pickle), ``pretrain``, ``finetune``,
``errors`` (one-line ``TrainInputError`` subclasses the CLI turns into exit code 2).
"""
