"""LoRA fine-tuning, knowing nothing of HTTP or SQLite: `loop.train(config, sink)`.

`config` holds what a run takes and gives (TrainConfig, TrainSink, TrainResult); `loop` the
one loop, over an Objective that `sft` (supervised) and `dpo` implement, reading files through
`examples`; `speed` and `fused_lora` the tricks that make a CPU step fast; `parallel` the
processes that share a batch; `trainable` counts what the LoRA trains. Imports only
`ftutils.local.models` of the rest of `ftutils.local`.
"""
