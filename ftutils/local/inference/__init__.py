"""Chat completions from base and fine-tuned models: `engine.InferenceEngine` behind one
`sampling.SamplingParams`, the batching `scheduler` that lets concurrent requests share forward
passes, `structured` output (response_format) by constrained decoding, and `decoding` (tokens
into streamed text and logprobs). Imports only `ftutils.local.models` of the rest of
`ftutils.local`.
"""
