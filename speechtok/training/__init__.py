"""What every trainer shares: the training loop (`loop`), its config fields (`options`),
batches through a DataLoader (`batches`), the accelerator set-up, the learning-rate schedule,
atomic safetensors checkpoints, config parsing (defaults → YAML → command line) and the loss
curve."""
